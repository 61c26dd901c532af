"""A scraped face-recognition photo folder, for the face_dataset job.

The job reads ``<root>/<label>/<file>`` (the label is the parent folder's name), decodes each
file (``transforms.images.decode``), drops exact duplicates (``pixel_sha256``) and near
duplicates (``phash`` within NEAR_BITS = 4 bits; a group keeps the copy with the most pixels,
ties the smallest path), finds faces with ``LocalDetector(min_face_px=24)`` and keeps an image
only when ``reject_reason`` passes (one face at confidence >= 0.5, |roll| <= 20 or unknown,
>= 32 px). This module builds such a folder from the public-domain / CC0 photos in
``photos/`` (provenance in its README.txt) with Pillow and numpy: no scikit-image.

Layout (``write_dir``; the committed sample in face_dataset/ is ``--variants 8 --seed 0``):

``eileen_collins/`` (astronaut.jpg; Haar finds her face at ~95 px, confidence 0.86)
  * ``astronaut.jpg``: the photo as downloaded, the copy its duplicates point to;
  * ``collins_vNN.jpg``: ``variants`` augmented copies (below) -> ``face``;
  * ``astronaut_copy.png``: the same pixels as a PNG -> ``duplicate`` (the pixel hash matches
    although the bytes and the format differ);
  * ``astronaut_q40.jpg``: re-encoded at JPEG quality 40 -> ``duplicate`` of astronaut.jpg
    (pHash 0 bits away; equal pixel counts, so the path decides and "astronaut.jpg" <
    "astronaut_q40.jpg" keeps the good copy: a name sorting first would keep the bad one);
  * ``collins_exif.jpg``: a distinct crop stored turned 90 degrees with EXIF Orientation 6;
    decode turns it upright -> ``face``, its box in upright pixels;
  * ``collins_alpha.png``: RGBA, transparent outside an ellipse (decode composites it on
    white) -> ``face``;
  * ``collins_turned35.jpg``, ``collins_turned40.jpg``: turned 35 and 40 degrees. Haar's
    frontal cascade misses faces turned that far, so no roll is ever measured and no
    ``angle`` comes out: 35 gives ``no_face``, 40 a weak false hit (``low_confidence``);
  * ``collins_pair.jpg``: two different crops side by side -> ``too_many_faces``;
  * ``collins_thumb.jpg``: a 150 px thumbnail on a page, face 29 px -> ``too_small`` (found,
    as the detector looks down to 24 px, then refused under 32);
  * ``collins_cut.jpg``: a JPEG cut in the middle of its pixel data -> ``error``
    ("corrupt image: ...");
  * ``chelsea.jpg``: a cat scraped into the folder -> ``no_face``.

``grace_hopper/`` (grace_hopper.jpg; face ~220 px, confidence 0.64, roll unknown: the eye
cascade does not find her eyes behind the glasses)
  * ``grace_hopper.jpg``: the photo as downloaded;
  * ``hopper_vNN.jpg``: ``variants`` augmented copies -> ``face``;
  * ``grace_hopper_small.jpg``: resized to 60% -> ``duplicate`` (the bigger original is kept);
  * ``grace_hopper_gray.jpg``: the same photo in grayscale -> ``duplicate`` of the colour
    original (pHash reads luma only, which the conversion keeps; equal pixel counts, and
    "grace_hopper.jpg" sorts first). Grayscale as a distinct picture is among the variants;
  * ``hopper_cmyk.jpg``: a distinct crop as an Adobe CMYK JPEG -> ``face`` (mode conversion);
  * ``hopper_page.jpg``: an HTML 404 page saved under an image name -> ``error``
    ("not an image: an HTML page ...");
  * ``coffee.jpg``: a cup of coffee -> ``no_face``.

``cameraman/`` (camera.png: his face is in three-quarter profile behind the camera; the
frontal cascade finds it at no crop or zoom, only weakly with the photo turned ~27 degrees,
so this label ends with no accepted image, as scraped labels sometimes do)
  * ``camera.png``: as downloaded, grayscale -> ``no_face``;
  * ``cameraman_zoom.jpg``: his head enlarged 2.56x -> ``no_face`` too (not a size problem).

Variants (``variants`` per person, drawn from ``random.Random(seed)``): a crop around the face
(1.6 to 4.5 times the face box, as the photo allows; aspect 3:4 to 4:3; the face off-centre),
turned up to 10 degrees either way (``made`` counts counter-clockwise as positive; corners
past the photo's edge take its mirror image, not black), mirrored half the time, 320-448 px
on the long side, then brightness, contrast, saturation, gamma, a warm or cool tint,
grayscale, or nothing; JPEG quality 85-95. A draw is kept only when the job
accepts it with margins (confidence >= 0.6 and no other detection above 0.3, >= 40 px,
|roll| <= 15 or unknown) and its pHash is >= 10 bits from every other image of the sample,
so a slightly different OpenCV or libjpeg turns none into a duplicate or a reject.

``manifest.json`` (top level, so the job's glob ``*/*`` does not read it) says what the job
must do with each image, measured, not assumed: the generator runs the job's own steps
(decode, pixel hash and pHash grouping, LocalDetector(min_face_px=24), reject_reason) on the
bytes it writes. Per ``<label>/<file>``: ``expect`` (face, duplicate, no_face,
low_confidence, angle, too_many_faces, too_small, error), ``detail`` (the reject or decode
error text; for duplicates how they match), ``duplicate_of`` (the kept copy), ``face_box``
(left, top, right, bottom in upright pixels, for faces), ``phash``, ``size`` and ``made``
(how the file was made); then ``counts`` (overall and ``by_label``) and ``measured_with``
(library versions). A crafted file whose outcome differs from its plan fails the build (the
turned and cameraman files are recorded as they come).

``write_ndjson`` writes the manifest's images, one per line with its ``path``, and no image
bytes: the images only come as files. Output is byte-identical per (variants, seed) with the
same Pillow (libjpeg, zlib) and OpenCV; building needs opencv-python-headless (the
``vision`` extra) because it measures with the job's detector. 8 variants take ~4 s.
"""
from __future__ import annotations

import io
import json
import os
import random

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

from transforms import images
from transforms.deadletter import RecordError
from transforms.face_detect import LocalDetector, reject_reason

HERE = os.path.dirname(os.path.abspath(__file__))
PHOTOS = os.path.join(HERE, "photos")
SAMPLE_DIR = os.path.join(HERE, "face_dataset")
GENERATOR = "pipelines/samples/face_dataset.py"
MANIFEST = "manifest.json"
DEFAULT_VARIANTS = 8

# The job's step 3 and 4 settings; the manifest is measured with them.
DETECTOR = {"min_face_px": 24}
FILTER = {"max_faces": 1, "max_angle": 20.0, "reject_labels": ("sunglasses",), "min_face_px": 32,
          "min_confidence": 0.5}
NEAR_BITS = 4

# Margins a variant keeps from those limits (see the module doc).
MIN_BITS = 10
MIN_CONFIDENCE = 0.6
MAX_WEAK = 0.3
MIN_FACE_PX = 40
MAX_ROLL = 15.0
MAX_DRAWS = 30  # per wanted variant, before giving up

OUTCOMES = ("face", "duplicate", "no_face", "low_confidence", "angle", "too_many_faces", "label",
            "too_small", "error")

# label -> (photo, Haar's face box in it (OpenCV 4.14), variant file prefix)
PEOPLE = {
    "eileen_collins": ("astronaut.jpg", (177, 66, 272, 161), "collins"),
    "grace_hopper": ("grace_hopper.jpg", (155, 105, 377, 327), "hopper"),
}
COLOURS = ("none", "brightness", "contrast", "saturation", "gamma", "warm", "cool", "gray")

NOT_FOUND_PAGE = (
    b"<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\">"
    b"<title>404 Not Found</title></head>\n<body>\n<h1>Not Found</h1>\n"
    b"<p>The requested URL /people/hopper/portrait-1984.jpg was not found on this server.</p>\n"
    b"<hr><address>Apache/2.4.41 (Ubuntu) Server at photos.example.org Port 80</address>\n"
    b"</body></html>\n")


def _photo_bytes(name: str) -> bytes:
    with open(os.path.join(PHOTOS, name), "rb") as f:
        return f.read()


def _photo(name: str) -> Image.Image:
    with Image.open(os.path.join(PHOTOS, name)) as im:
        return im.convert("RGB")


def _jpeg(image: Image.Image, quality: int = 90, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality, **options)
    return out.getvalue()


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")  # zlib level 6: optimize=True is 4x slower for 1% less
    return out.getvalue()


def _view(image: Image.Image, face, zoom: float, aspect: float = 1.0, shift=(0.0, 0.0),
          angle: float = 0.0, long_side: int = 400) -> tuple[Image.Image, tuple[int, ...]]:
    """(crop, its box in the photo) around `face`: `zoom` x the face box's side (geometric
    mean of the crop's sides, each at most the photo's), width/height = `aspect`, the face
    centre moved by `shift` (fractions of the crop), the box then slid inside the photo;
    turned `angle` degrees counter-clockwise about the face; scaled to `long_side` px.

    A turned crop's corners that fall outside the photo take its mirror image, not black.
    """
    left, top, right, bottom = face
    side = max(right - left, bottom - top)
    width = min(side * zoom * aspect ** 0.5, image.width)
    height = min(side * zoom / aspect ** 0.5, image.height)
    cx, cy = (left + right) / 2, (top + bottom) / 2
    x0 = min(max(cx - width * (0.5 + shift[0]), 0), image.width - width)
    y0 = min(max(cy - height * (0.5 + shift[1]), 0), image.height - height)
    box = (round(x0), round(y0), round(x0 + width), round(y0 + height))
    if angle:  # sample the turned box straight from the padded photo: one affine map
        reach = 2 + int(np.ceil(max(np.hypot(x - cx, y - cy) for x in box[::2]
                                    for y in box[1::2])))
        pad = min(reach, min(image.size))
        padded = Image.fromarray(np.pad(np.asarray(image), ((pad, pad), (pad, pad), (0, 0)),
                                        mode="symmetric"))
        # output (u, v) -> source: turn (u + box[0] - cx, v + box[1] - cy) by `angle` about
        # the face centre, as Image.rotate does (counter-clockwise on screen)
        cos, sin = np.cos(np.radians(angle)), np.sin(np.radians(angle))
        ox, oy = box[0] - cx, box[1] - cy
        data = (cos, -sin, cx + pad + cos * ox - sin * oy,
                sin, cos, cy + pad + sin * ox + cos * oy)
        crop = padded.transform((box[2] - box[0], box[3] - box[1]), Image.Transform.AFFINE,
                                tuple(float(v) for v in data), Image.Resampling.BICUBIC)
    else:
        crop = image.crop(box)
    scale = long_side / max(crop.size)
    size = (max(1, round(crop.width * scale)), max(1, round(crop.height * scale)))
    return crop.resize(size, Image.Resampling.LANCZOS), box


def _crop(image: Image.Image, face, zoom: float, aspect: float = 1.0, shift=(0.0, 0.0),
          angle: float = 0.0, long_side: int = 400) -> tuple[Image.Image, str]:
    """`_view` and how it was made, for a manifest."""
    crop, box = _view(image, face, zoom, aspect, shift, angle, long_side)
    turn = ", turned %s deg" % angle if angle else ""  # > 0: counter-clockwise
    return crop, "crop %s%s, %dx%d" % (box, turn, crop.width, crop.height)


def _recolour(image: Image.Image, how: str, rng: random.Random) -> tuple[Image.Image, str]:
    """One photometric change, and its description."""
    if how == "brightness":
        f = round(rng.choice((rng.uniform(0.7, 0.88), rng.uniform(1.12, 1.3))), 2)
        return ImageEnhance.Brightness(image).enhance(f), "brightness x%s" % f
    if how == "contrast":
        f = round(rng.choice((rng.uniform(0.7, 0.85), rng.uniform(1.15, 1.35))), 2)
        return ImageEnhance.Contrast(image).enhance(f), "contrast x%s" % f
    if how == "saturation":
        f = round(rng.choice((rng.uniform(0.3, 0.6), rng.uniform(1.3, 1.6))), 2)
        return ImageEnhance.Color(image).enhance(f), "saturation x%s" % f
    if how == "gamma":
        g = round(rng.choice((rng.uniform(0.7, 0.85), rng.uniform(1.2, 1.4))), 2)
        table = [round(255 * (i / 255) ** g) for i in range(256)]
        return image.point(table * 3), "gamma %s" % g
    if how in ("warm", "cool"):
        f = round(rng.uniform(1.08, 1.18), 2)
        gains = (f, 1.0, 1 / f) if how == "warm" else (1 / f, 1.0, f)
        table = [min(255, round(i * g)) for g in gains for i in range(256)]
        return image.point(table), "%s tint (red x%.2f, blue x%.2f)" % (how, gains[0], gains[2])
    if how == "gray":
        return image.convert("L"), "grayscale"
    return image, "no colour change"


def _variant(rng: random.Random, photo: Image.Image, face, source: str) -> tuple[bytes, str]:
    """One random augmented copy of a person's photo: (JPEG bytes, how it was made)."""
    side = max(face[2] - face[0], face[3] - face[1])
    top_zoom = min(4.5, 1.25 * min(photo.size) / side)
    zoom = rng.uniform(1.6, max(1.6, top_zoom))
    aspect = rng.choice((3 / 4, 4 / 5, 1.0, 5 / 4, 4 / 3))
    shift = (rng.uniform(-0.12, 0.12), rng.uniform(-0.12, 0.06))
    angle = round(rng.uniform(-10, 10), 1)
    long_side = rng.randrange(320, 449, 16)
    mirror = rng.random() < 0.5
    how = rng.choice(COLOURS)
    quality = rng.choice((85, 88, 90, 92, 95))
    image, crop = _crop(photo, face, zoom, aspect, shift, angle, long_side)
    if mirror:
        image = ImageOps.mirror(image)
    image, colour = _recolour(image, how, rng)
    made = "%s %s%s, %s, JPEG q%d" % (source, crop, ", mirrored" if mirror else "", colour,
                                       quality)
    return _jpeg(image, quality), made


def _exif_rotated(image: Image.Image) -> bytes:
    """JPEG of `image` stored turned 90 degrees, with the EXIF orientation (6) that undoes it."""
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": decode transposes ROTATE_270
    return _jpeg(image.transpose(Image.Transpose.ROTATE_90), 90, exif=exif.tobytes())


def _alpha(image: Image.Image) -> bytes:
    """RGBA PNG: opaque inside a soft-edged ellipse, transparent (and black) outside."""
    mask = Image.new("L", image.size, 0)
    w, h = image.size
    ImageDraw.Draw(mask).ellipse((w * 0.06, h * 0.03, w * 0.94, h * 0.97), fill=255)
    mask = mask.filter(ImageFilter.GaussianBlur(4))
    rgba = Image.composite(image, Image.new("RGB", image.size), mask).convert("RGBA")
    rgba.putalpha(mask)
    return _png(rgba)


def _crafted() -> list[tuple[str, bytes, str, tuple[str, ...], str | None]]:
    """The fixed cases: (path, bytes, how made, planned outcomes (() = record what comes),
    the copy a planned duplicate must point to)."""
    astro, face_a = _photo("astronaut.jpg"), PEOPLE["eileen_collins"][1]
    hopper, face_h = _photo("grace_hopper.jpg"), PEOPLE["grace_hopper"][1]
    cases = []

    def add(path, data, made, *plan, kept=None):
        cases.append((path, data, made, plan, kept))

    add("eileen_collins/astronaut.jpg", _photo_bytes("astronaut.jpg"),
        "photos/astronaut.jpg as is (skimage.data.astronaut, JPEG q90)", "face")
    add("eileen_collins/astronaut_copy.png", _png(astro),
        "astronaut.jpg's decoded pixels saved as PNG: other bytes, same pixels", "duplicate",
        kept="eileen_collins/astronaut.jpg")
    add("eileen_collins/astronaut_q40.jpg", _jpeg(astro, 40),
        "astronaut.jpg re-encoded at JPEG quality 40 (same size)", "duplicate",
        kept="eileen_collins/astronaut.jpg")
    upright, crop = _crop(astro, face_a, 3.0, 3 / 4, (-0.05, 0.0), 0, 448)
    add("eileen_collins/collins_exif.jpg", _exif_rotated(upright),
        "astronaut.jpg %s, stored turned 90 deg with EXIF Orientation 6, JPEG q90" % crop, "face")
    image, crop = _crop(astro, face_a, 2.6, 1.0, (0.05, 0.0), 0, 288)
    add("eileen_collins/collins_alpha.png", _alpha(image),
        "astronaut.jpg %s, RGBA PNG transparent outside an ellipse" % crop, "face")
    for angle, zoom in ((35, 3.4), (40, 2.6)):
        image, crop = _crop(astro, face_a, zoom, 1.0, (0, 0), angle, 400)
        add("eileen_collins/collins_turned%d.jpg" % angle, _jpeg(image),
            "astronaut.jpg %s, JPEG q90" % crop)
    pair = Image.new("RGB", (512, 320))
    left, crop_l = _crop(astro, face_a, 2.4, 0.8, (0.04, 0.0), 0, 320)
    right, crop_r = _crop(astro, face_a, 3.0, 0.8, (0.04, -0.08), 0, 320)
    pair.paste(left, (0, 0))
    pair.paste(ImageOps.mirror(right), (256, 0))
    add("eileen_collins/collins_pair.jpg", _jpeg(pair),
        "astronaut.jpg %s beside its %s mirrored, on 512x320, JPEG q90" % (crop_l, crop_r),
        "too_many_faces")
    page = Image.new("RGB", (400, 300), (236, 238, 242))
    ImageDraw.Draw(page).rectangle((24, 40, 376, 44), fill=(40, 70, 140))
    page.paste(astro.resize((150, 150), Image.Resampling.LANCZOS), (36, 80))
    add("eileen_collins/collins_thumb.jpg", _jpeg(page),
        "astronaut.jpg as a 150x150 thumbnail (face ~28 px) on a 400x300 page, JPEG q90",
        "too_small")
    image, crop = _crop(astro, face_a, 2.0, 1.0, (0.0, 0.0), 0, 384)
    whole = _jpeg(image)
    add("eileen_collins/collins_cut.jpg", whole[:len(whole) // 2],
        "astronaut.jpg %s, JPEG q90 cut after %d of its %d bytes"
        % (crop, len(whole) // 2, len(whole)), "error")
    add("eileen_collins/chelsea.jpg", _photo_bytes("chelsea.jpg"),
        "photos/chelsea.jpg as is (a cat)", "no_face")

    add("grace_hopper/grace_hopper.jpg", _photo_bytes("grace_hopper.jpg"),
        "photos/grace_hopper.jpg as is (512x600)", "face")
    small = hopper.resize((307, 360), Image.Resampling.LANCZOS)
    add("grace_hopper/grace_hopper_small.jpg", _jpeg(small),
        "grace_hopper.jpg resized to 60% (307x360), JPEG q90", "duplicate",
        kept="grace_hopper/grace_hopper.jpg")
    add("grace_hopper/grace_hopper_gray.jpg", _jpeg(hopper.convert("L")),
        "grace_hopper.jpg in grayscale (512x600, one channel), JPEG q90", "duplicate",
        kept="grace_hopper/grace_hopper.jpg")
    image, crop = _crop(hopper, face_h, 1.9, 4 / 5, (0.05, -0.04), 0, 350)
    add("grace_hopper/hopper_cmyk.jpg", _jpeg(image.convert("CMYK")),
        "grace_hopper.jpg %s, as a CMYK JPEG q90" % crop, "face")
    add("grace_hopper/hopper_page.jpg", NOT_FOUND_PAGE,
        "an HTML 404 page saved as .jpg (a dead link)", "error")
    add("grace_hopper/coffee.jpg", _photo_bytes("coffee.jpg"),
        "photos/coffee.jpg as is (a cup of coffee)", "no_face")

    add("cameraman/camera.png", _photo_bytes("camera.png"),
        "photos/camera.png as is (skimage.data.camera, grayscale PNG)", "no_face")
    with Image.open(os.path.join(PHOTOS, "camera.png")) as camera:
        zoom = camera.crop((120, 50, 320, 250)).resize((512, 512), Image.Resampling.LANCZOS)
    add("cameraman/cameraman_zoom.jpg", _jpeg(zoom),
        "camera.png crop (120, 50, 320, 250) enlarged to 512x512, grayscale JPEG q90")
    return cases


class _Judge:
    """The job's per-image steps (decode, hashes, detection, filter), one image at a time."""

    def __init__(self):
        self.detector = LocalDetector(**DETECTOR)
        self.detector.setup()

    def decode(self, data: bytes):
        """(Decoded, pixel sha256, phash) or the RecordError's reason as a str."""
        try:
            decoded = images.decode(data)
        except RecordError as e:
            return str(e)
        return decoded, images.pixel_sha256(decoded.image), images.phash(decoded.image)

    def detect(self, image: Image.Image) -> dict:
        """The detection and filter outcome: expect, detail, faces."""
        detection = self.detector.detect([image])[0]
        if isinstance(detection, Exception):
            raise detection
        faces = list(detection.faces)
        reject = reject_reason(detection, **FILTER)
        if reject:
            return {"expect": reject[0], "detail": reject[1], "faces": faces}
        face = next(f for f in faces if f.confidence >= FILTER["min_confidence"])
        roll = "unknown" if face.roll is None else "%g" % face.roll
        weak = " (and %d weak)" % (len(faces) - 1) if len(faces) > 1 else ""
        return {"expect": "face", "face_box": list(face.box), "faces": faces,
                "detail": "confidence %g, roll %s%s" % (face.confidence, roll, weak)}


def _with_margins(outcome: dict) -> bool:
    """A variant accepted far enough from every limit (see MIN_CONFIDENCE etc.)."""
    if outcome["expect"] != "face":
        return False
    faces = outcome["faces"]
    best = max(faces, key=lambda f: f.confidence)
    others = [f for f in faces if f is not best]
    left, top, right, bottom = best.box
    return (best.confidence >= MIN_CONFIDENCE and all(f.confidence <= MAX_WEAK for f in others)
            and min(right - left, bottom - top) >= MIN_FACE_PX
            and (best.roll is None or abs(best.roll) <= MAX_ROLL))


def _duplicates(hashed: dict[str, tuple]) -> dict[str, tuple[str, str]]:
    """{path: (kept path, detail)} for every duplicate, as the job groups them: exact copies
    by pixel sha256, then near copies by pHash within NEAR_BITS (transitively); a group keeps
    the most pixels, then the smallest path. `hashed` is {path: (sha256, phash, w, h)}."""
    hamming = images.hamming

    def rank(path):
        _, _, w, h = hashed[path]
        return -(w * h), path

    by_sha: dict[str, list[str]] = {}
    for path in hashed:
        by_sha.setdefault(hashed[path][0], []).append(path)
    heads = sorted(min(paths, key=rank) for paths in by_sha.values())
    parent = {p: p for p in heads}

    def find(p):
        while parent[p] != p:
            parent[p] = parent[parent[p]]
            p = parent[p]
        return p

    for i, a in enumerate(heads):
        for b in heads[i + 1:]:
            if hamming(hashed[a][1], hashed[b][1]) <= NEAR_BITS:
                ra, rb = find(a), find(b)
                if ra != rb:
                    keep, drop = sorted((ra, rb), key=rank)
                    parent[drop] = keep
    out = {}
    for path in hashed:
        kept = find(min(by_sha[hashed[path][0]], key=rank))
        if path == kept:
            continue
        if hashed[path][0] == hashed[kept][0]:
            out[path] = (kept, "exact copy (same pixels)")
        else:
            out[path] = (kept, "pHash %d bits from it" % hamming(hashed[path][1], hashed[kept][1]))
    return out


def build(variants: int = DEFAULT_VARIANTS, seed: int = 0) -> tuple[dict[str, bytes], dict]:
    """({path under the sample root: bytes}, manifest)."""
    if variants < 0:
        raise ValueError("variants must be >= 0, got %r" % (variants,))
    judge = _Judge()
    files: dict[str, bytes] = {}
    made: dict[str, str] = {}
    plans: dict[str, tuple[str, ...]] = {}
    decoded: dict[str, object] = {}
    kept_plan: dict[str, str] = {}
    for path, data, how, plan, kept in _crafted():
        files[path], made[path], plans[path] = data, how, plan
        if kept:
            kept_plan[path] = kept
        decoded[path] = judge.decode(data)
    rng = random.Random(seed)
    detections: dict[str, dict] = {}
    for label, (photo_name, face, prefix) in PEOPLE.items():
        photo = _photo(photo_name)
        for number in range(1, variants + 1):
            path = "%s/%s_v%0*d.jpg" % (label, prefix, max(2, len(str(variants))), number)
            for _ in range(MAX_DRAWS):
                data, how = _variant(rng, photo, face, photo_name)
                result = judge.decode(data)
                if isinstance(result, str):
                    continue
                if any(not isinstance(other, str) and images.hamming(result[2], other[2]) < MIN_BITS
                       for other in decoded.values()):
                    continue
                outcome = judge.detect(result[0].image)
                if _with_margins(outcome):
                    break
            else:
                raise RuntimeError("no acceptable variant for %s in %d draws" % (path, MAX_DRAWS))
            files[path], made[path], plans[path] = data, how, ("face",)
            decoded[path], detections[path] = result, outcome
    hashed = {path: (r[1], r[2], r[0].width, r[0].height)
              for path, r in decoded.items() if not isinstance(r, str)}
    duplicates = _duplicates(hashed)
    entries = {}
    for path in sorted(files):
        result = decoded[path]
        if isinstance(result, str):
            entry = {"expect": "error", "detail": result}
        else:
            entry = {"phash": "%016x" % result[2], "size": [result[0].width, result[0].height]}
            if path in duplicates:
                kept, detail = duplicates[path]
                entry.update(expect="duplicate", duplicate_of=kept, detail=detail)
            else:
                outcome = detections.get(path) or judge.detect(result[0].image)
                entry.update({k: v for k, v in outcome.items() if k != "faces"})
        entry["made"] = made[path]
        if plans[path] and entry["expect"] not in plans[path]:
            raise RuntimeError("%s: planned %s, the job's steps give %s (%s)"
                               % (path, "/".join(plans[path]), entry["expect"], entry["detail"]))
        if kept_plan.get(path, entry.get("duplicate_of")) != entry.get("duplicate_of"):
            raise RuntimeError("%s: planned a duplicate of %s, grouped with %s"
                               % (path, kept_plan[path], entry.get("duplicate_of")))
        entries[path] = entry
    return files, _manifest(entries, variants, seed)


def libraries() -> dict:
    """The versions that decide the sample's bytes (encoders) and outcomes (OpenCV)."""
    import cv2
    from PIL import features

    def version(feature):
        return features.version(feature) if feature in features.features else None

    return {"opencv": cv2.__version__, "pillow": Image.__version__,
            "libjpeg": features.version("jpg"), "libjpeg_turbo": version("libjpeg_turbo"),
            "zlib": features.version("zlib"), "zlib_ng": version("zlib_ng")}


def _manifest(entries: dict, variants: int, seed: int) -> dict:
    counts: dict = {outcome: 0 for outcome in OUTCOMES}
    by_label: dict = {}
    for path, entry in entries.items():
        counts[entry["expect"]] += 1
        label = by_label.setdefault(path.split("/")[0], {})
        label[entry["expect"]] = label.get(entry["expect"], 0) + 1
    counts = {k: v for k, v in counts.items() if v}
    counts["images"] = len(entries)
    counts["by_label"] = by_label
    return {
        "generator": GENERATOR, "seed": seed, "variants": variants, "images": entries,
        "counts": counts,
        "measured_with": {**libraries(), "detector": "LocalDetector(min_face_px=24)",
                          "filter": "reject_reason(max_faces=1, max_angle=20, reject_labels="
                                    "('sunglasses',), min_face_px=32, min_confidence=0.5)",
                          "near_duplicate_bits": NEAR_BITS},
    }


def manifest_text(manifest: dict) -> str:
    return json.dumps(manifest, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def write_dir(path: str, variants: int = DEFAULT_VARIANTS, seed: int = 0) -> None:
    """The sample under `path`: <label>/<file> and manifest.json. Refuses to mix with image
    files of another run left in its label folders (remove them first)."""
    files, manifest = build(variants, seed)
    stale = []
    for label in sorted({name.split("/")[0] for name in files}):
        folder = os.path.join(path, label)
        if os.path.isdir(folder):
            stale += ["%s/%s" % (label, f) for f in sorted(os.listdir(folder))
                      if "%s/%s" % (label, f) not in files]
    if stale:
        raise FileExistsError("%s holds files this sample does not: %s" % (path, ", ".join(stale)))
    for name, data in files.items():
        os.makedirs(os.path.join(path, os.path.dirname(name)), exist_ok=True)
        with open(os.path.join(path, name), "wb") as f:
            f.write(data)
    with open(os.path.join(path, MANIFEST), "w", encoding="utf-8", newline="\n") as f:
        f.write(manifest_text(manifest))


def write_ndjson(fileobj, variants: int = DEFAULT_VARIANTS, seed: int = 0) -> None:
    """The manifest, one image per line ({"path": ..., "expect": ...}), no image bytes."""
    _, manifest = build(variants, seed)
    for path, entry in manifest["images"].items():
        fileobj.write(json.dumps({"path": path, **entry}, sort_keys=True, ensure_ascii=False) + "\n")
