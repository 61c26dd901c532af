"""The face_dataset sample generator: the committed sample regenerates from its seed, and what
its manifest promises is what the job's own steps give on the committed bytes.

The check here is written apart from the generator's: it reads the files from disk, decodes
them with `images.decode`, groups duplicates with one union-find over "same pixel sha256 or
pHash within 4 bits" (the same components as the job's exact-then-near passes), and runs
LocalDetector(min_face_px=24) + reject_reason with the job's settings spelled out. Only the
Haar runs are shared (`Detections`): detecting each distinct picture once keeps the module
at a few seconds, and a detector is deterministic per pixels.
"""
import io
import itertools
import json
import os

import pytest
from PIL import Image

from pipelines.samples import __main__ as cli
from pipelines.samples import face_dataset as fd
from transforms import images
from transforms.deadletter import RecordError
from transforms.face_detect import LocalDetector, reject_reason

SAMPLE = fd.SAMPLE_DIR
PEOPLE = ("eileen_collins", "grace_hopper")
REASONS = {"face", "duplicate", "no_face", "low_confidence", "angle", "too_many_faces", "label",
           "too_small", "error"}
with open(os.path.join(SAMPLE, fd.MANIFEST), encoding="utf-8") as _f:
    MANIFEST = json.load(_f)
ENTRIES = MANIFEST["images"]


def read_tree(root) -> dict:
    """{"<label>/<file>": bytes} of every file one folder down, as the job's glob */* sees."""
    out = {}
    for label in sorted(os.listdir(root)):
        folder = os.path.join(root, label)
        if os.path.isdir(folder):
            for name in sorted(os.listdir(folder)):
                with open(os.path.join(folder, name), "rb") as f:
                    out[label + "/" + name] = f.read()
    return out


COMMITTED = read_tree(SAMPLE)


class Detections:
    """The job's LocalDetector, run once per distinct picture (keyed by its pixel hash)."""

    def __init__(self):
        self.inner = LocalDetector(min_face_px=24, scale_factor=1.1, min_neighbors=5,
                                   max_detect_px=1024)
        self.cache = {}

    def setup(self):
        if self.inner._faces is None:
            self.inner.setup()

    def close(self):
        pass

    def detect(self, batch):
        out = []
        for image in batch:
            key = (images.pixel_sha256(image), image.mode)
            if key not in self.cache:
                self.cache[key] = self.inner.detect([image])[0]
            out.append(self.cache[key])
        return out


@pytest.fixture(scope="module")
def detections():
    shared = Detections()
    shared.setup()
    return shared


def same_libraries() -> bool:
    """Whether this machine encodes and detects as the one that made the sample."""
    made = MANIFEST["measured_with"]
    return all(made[name] == version for name, version in fd.libraries().items())


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory, detections):
    path = tmp_path_factory.mktemp("face_dataset")

    def local_detector(**options):
        assert options == {"min_face_px": 24}  # the generator builds the job's detector
        return detections

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fd, "LocalDetector", local_detector)
        fd.write_dir(str(path), MANIFEST["variants"], MANIFEST["seed"])
    with open(os.path.join(path, fd.MANIFEST), encoding="utf-8") as f:
        return read_tree(path), json.load(f), (path / fd.MANIFEST).read_bytes()


@pytest.fixture(scope="module")
def measured(detections, regenerated):
    """{path: outcome} measured here from the committed bytes, the job's way."""
    decoded, errors = {}, {}
    for path, data in COMMITTED.items():
        try:
            decoded[path] = images.decode(data)
        except RecordError as e:
            errors[path] = str(e)
    info = {p: (images.pixel_sha256(d.image), images.phash(d.image), d.width * d.height)
            for p, d in decoded.items()}
    parent = {p: p for p in info}

    def root(p):
        while parent[p] != p:
            p = parent[p]
        return p

    for a, b in itertools.combinations(sorted(info), 2):
        if info[a][0] == info[b][0] or images.hamming(info[a][1], info[b][1]) <= 4:
            parent[root(a)] = root(b)
    groups = {}
    for p in info:
        groups.setdefault(root(p), []).append(p)
    kept = {p: min(members, key=lambda m: (-info[m][2], m))
            for members in groups.values() for p in members}
    out = {p: {"expect": "error", "detail": reason} for p, reason in errors.items()}
    for path, d in decoded.items():
        out[path] = {"phash": "%016x" % info[path][1], "size": [d.width, d.height]}
        if kept[path] != path:
            out[path].update(expect="duplicate", duplicate_of=kept[path],
                             bits=images.hamming(info[path][1], info[kept[path]][1]),
                             exact=info[path][0] == info[kept[path]][0])
            continue
        detection = detections.detect([d.image])[0]
        reject = reject_reason(detection, max_faces=1, max_angle=20, reject_labels=("sunglasses",),
                               min_face_px=32, min_confidence=0.5)
        if reject:
            out[path].update(expect=reject[0], detail=reject[1])
        else:
            face = [f for f in detection.faces if f.confidence >= 0.5]
            out[path].update(expect="face", face_box=list(face[0].box), faces=face)
    return out


def test_layout_and_manifest_shape():
    assert sorted(COMMITTED) == sorted(ENTRIES)
    assert os.path.isfile(os.path.join(SAMPLE, fd.MANIFEST))  # at the top: */* skips it
    assert all(path.count("/") == 1 and not path.endswith(fd.MANIFEST) for path in COMMITTED)
    assert {p.split("/")[0] for p in COMMITTED} == {"eileen_collins", "grace_hopper", "cameraman"}
    assert MANIFEST["generator"] == "pipelines/samples/face_dataset.py"
    assert (MANIFEST["variants"], MANIFEST["seed"]) == (fd.DEFAULT_VARIANTS, 0)
    for path, entry in ENTRIES.items():
        assert entry["expect"] in REASONS, path
        assert ("duplicate_of" in entry) == (entry["expect"] == "duplicate"), path
        assert ("face_box" in entry) == (entry["expect"] == "face"), path
        assert entry["detail"] and entry["made"], path
    counts = MANIFEST["counts"]
    assert counts["images"] == len(ENTRIES)
    for reason in REASONS:
        assert counts.get(reason, 0) == sum(e["expect"] == reason for e in ENTRIES.values())
    text = open(os.path.join(SAMPLE, fd.MANIFEST), encoding="utf-8").read()
    assert text == fd.manifest_text(MANIFEST)  # sorted keys, indent 1: diffs stay readable
    assert sum(map(len, COMMITTED.values())) < 2_000_000
    photos = [os.path.join(fd.PHOTOS, n) for n in os.listdir(fd.PHOTOS)]
    assert sum(os.path.getsize(p) for p in photos) < 400_000


def test_regenerates_the_committed_sample(regenerated):
    files, manifest, text = regenerated
    assert sorted(files) == sorted(COMMITTED)
    fresh = {k: v for k, v in manifest.items() if k != "measured_with"}
    old = {k: v for k, v in MANIFEST.items() if k != "measured_with"}
    if same_libraries():
        assert files == COMMITTED
        assert fresh == old
        return
    # Another libjpeg or OpenCV: bytes may move; lossless files keep their pixels, and every
    # image its outcome (the variants keep margins from every limit for this).
    for path in files:
        if files[path] != COMMITTED[path] and path.endswith(".png"):
            new, was = images.decode(files[path]), images.decode(COMMITTED[path])
            assert images.pixel_sha256(new.image) == images.pixel_sha256(was.image), path
        assert manifest["images"][path]["expect"] == ENTRIES[path]["expect"], path


def test_manifest_outcomes_hold_on_the_committed_bytes(measured):
    for path, entry in ENTRIES.items():
        got = measured[path]
        assert got["expect"] == entry["expect"], (path, got, entry["detail"])
        if entry["expect"] == "error":
            assert got["detail"] == entry["detail"], path
            continue
        if entry["expect"] == "duplicate":
            assert got["duplicate_of"] == entry["duplicate_of"], path
            assert entry["detail"] == ("exact copy (same pixels)" if got["exact"]
                                       else "pHash %d bits from it" % got["bits"]), path
            assert measured[entry["duplicate_of"]]["expect"] != "duplicate"  # kept, not chained
        elif entry["expect"] == "face":
            assert got["face_box"] == entry["face_box"], path
        else:
            assert got["detail"] == entry["detail"], path
        assert (got["phash"], got["size"]) == (entry["phash"], entry["size"]), path


def test_every_planned_case_is_there():
    expect = {p: e["expect"] for p, e in ENTRIES.items()}
    assert expect["eileen_collins/astronaut_copy.png"] == "duplicate"
    assert ENTRIES["eileen_collins/astronaut_copy.png"]["detail"] == "exact copy (same pixels)"
    for path, kept in (("eileen_collins/astronaut_q40.jpg", "eileen_collins/astronaut.jpg"),
                       ("grace_hopper/grace_hopper_small.jpg", "grace_hopper/grace_hopper.jpg"),
                       ("grace_hopper/grace_hopper_gray.jpg", "grace_hopper/grace_hopper.jpg")):
        assert (expect[path], ENTRIES[path]["duplicate_of"]) == ("duplicate", kept), path
        assert ENTRIES[path]["detail"].startswith("pHash "), path
    for path in ("eileen_collins/collins_exif.jpg", "eileen_collins/collins_alpha.png",
                 "grace_hopper/hopper_cmyk.jpg", "eileen_collins/astronaut.jpg",
                 "grace_hopper/grace_hopper.jpg"):
        assert expect[path] == "face", path
    assert expect["eileen_collins/collins_pair.jpg"] == "too_many_faces"
    assert expect["eileen_collins/collins_thumb.jpg"] == "too_small"
    assert expect["eileen_collins/chelsea.jpg"] == expect["grace_hopper/coffee.jpg"] == "no_face"
    assert expect["eileen_collins/collins_turned35.jpg"] in ("angle", "no_face", "low_confidence")
    assert ENTRIES["eileen_collins/collins_cut.jpg"]["detail"].startswith("corrupt image: ")
    assert ENTRIES["grace_hopper/hopper_page.jpg"]["detail"].startswith("not an image: an HTML")
    assert expect["cameraman/camera.png"] == "no_face"


def test_special_files_are_what_they_say():
    with Image.open(io.BytesIO(COMMITTED["eileen_collins/collins_exif.jpg"])) as im:
        stored = im.size
        assert im.getexif().get(0x0112) == 6
    upright = images.decode(COMMITTED["eileen_collins/collins_exif.jpg"])
    assert upright.exif_rotated and (upright.width, upright.height) == stored[::-1]
    assert upright.height > upright.width  # a portrait crop, stored as landscape
    with Image.open(io.BytesIO(COMMITTED["eileen_collins/collins_alpha.png"])) as im:
        assert im.mode == "RGBA" and im.getextrema()[3] == (0, 255)
    with Image.open(io.BytesIO(COMMITTED["grace_hopper/hopper_cmyk.jpg"])) as im:
        assert im.mode == "CMYK"
    with Image.open(io.BytesIO(COMMITTED["grace_hopper/grace_hopper_gray.jpg"])) as im:
        assert im.mode == "L"
    copy = COMMITTED["eileen_collins/astronaut_copy.png"]
    original = COMMITTED["eileen_collins/astronaut.jpg"]
    assert copy[:8] == b"\x89PNG\r\n\x1a\n" and copy != original
    cut = COMMITTED["eileen_collins/collins_cut.jpg"]
    assert cut.startswith(b"\xff\xd8\xff") and not cut.endswith(b"\xff\xd9")
    assert COMMITTED["grace_hopper/hopper_page.jpg"].startswith(b"<!DOCTYPE html>")
    assert original == open(os.path.join(fd.PHOTOS, "astronaut.jpg"), "rb").read()


def test_accepted_faces_are_distinct_and_enough(measured):
    faces = sorted(p for p, got in measured.items() if got["expect"] == "face")
    hashes = {p: images.phash(images.decode(COMMITTED[p]).image) for p in faces}
    for a, b in itertools.combinations(faces, 2):  # across labels too
        assert images.hamming(hashes[a], hashes[b]) > 4, (a, b)
    for label in PEOPLE:
        accepted = [p for p in faces if p.startswith(label + "/")]
        assert len(accepted) >= 6, label
    for path in faces:
        (face,) = measured[path]["faces"]
        assert face.roll is None or abs(face.roll) <= 20
        left, top, right, bottom = face.box
        assert min(right - left, bottom - top) >= 32 and face.confidence >= 0.5
    box = measured["eileen_collins/astronaut.jpg"]["face_box"]
    assert all(abs(a - b) <= 8 for a, b in zip(box, (177, 66, 272, 161), strict=True))


def test_registered_with_the_cli():
    module, size, about = cli.GENERATORS["face_dataset"]
    assert module == "pipelines.samples.face_dataset" and size == "variants" and about


def test_write_ndjson_is_the_manifest(monkeypatch):
    monkeypatch.setattr(fd, "build", lambda n, seed: (COMMITTED, MANIFEST))
    out = io.StringIO()
    fd.write_ndjson(out, 8, 0)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line.pop("path") for line in lines] == list(ENTRIES)
    assert lines == list(ENTRIES.values())


def test_write_dir_refuses_to_mix_with_another_run(tmp_path, monkeypatch):
    monkeypatch.setattr(fd, "build", lambda n, seed: ({"a/x.jpg": b"1"}, {"images": {}}))
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "stale.jpg").write_bytes(b"0")
    with pytest.raises(FileExistsError, match="a/stale.jpg"):
        fd.write_dir(str(tmp_path), 1, 0)
    (tmp_path / "a" / "stale.jpg").unlink()
    fd.write_dir(str(tmp_path), 1, 0)
    assert (tmp_path / "a" / "x.jpg").read_bytes() == b"1"
    assert json.loads((tmp_path / "manifest.json").read_text()) == {"images": {}}
