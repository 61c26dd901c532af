"""The iot_telemetry sample generator: deterministic, real Pub/Sub shapes, dirty exactly as it says.

The ground truth is checked against the bytes: an independent reader here splits the files
with the job's own splitter, decodes every record (base64, JSON, line protocol) and counts
readings, duplicates, filtered points and errors the way the job's contract says.
"""
import base64
import collections
import gzip
import io
import json
import os
import re
import subprocess
import sys

import pytest

from pipelines.samples import __main__ as cli
from pipelines.samples import iot_telemetry as it
from transforms.jsonsplit import split_json_records
from transforms.timestamps import epoch_micros, parse_rfc3339_micros

N, SEED = 8, 3
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ATTRIBUTES = {"deviceId", "deviceNumId", "deviceRegistryId", "deviceRegistryLocation", "projectId", "subFolder"}
RFC = re.compile(r"^2026-11-26T(09|10):\d\d:\d\d(\.(\d+))?(Z|\+00:00)$")
PUBLISH = re.compile(r"^2026-11-26T(09|10):\d\d:\d\d\.\d{3}Z$")


def _read(path) -> str:
    data = open(path, "rb").read()
    return (gzip.decompress(data) if str(path).endswith(".gz") else data).decode("utf-8")


def chunks(text):
    return list(split_json_records(io.StringIO(text)))


def flatten(obj, prefix=""):
    for key, value in obj.items():
        if isinstance(value, dict):
            yield from flatten(value, prefix + key + ".")
        else:
            yield prefix + key, value


def number(value) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    raise ValueError(f"not a number: {value!r}")


def lp_points(text):
    """Line protocol (no escapes in this data) -> (us, metrics) per line, None for a bad line."""
    for line in text.split("\n"):
        try:
            _, fields, ts = line.split(" ")
            metrics = []
            for field in fields.split(","):
                key, value = field.split("=")
                if value.startswith('"'):
                    raise ValueError("string field")
                metrics.append((key, float(int(value[:-1])) if value.endswith("i") else float(value)))
            yield int(ts) // 1000, metrics
        except ValueError:
            yield None


class Reader:
    """What the job must make of the records: unique readings, duplicates, filtered, errors."""

    def __init__(self):
        self.seen, self.readings = set(), []
        self.duplicates = self.filtered = self.errors = self.broken = 0
        self.forms, self.times, self.payloads = collections.Counter(), collections.Counter(), []

    def point(self, reg, dev, us, metrics):
        if not metrics:
            self.filtered += 1
            return
        key = (reg, dev, us, tuple(sorted(metrics)))
        if key in self.seen:
            self.duplicates += len(metrics)
            return
        self.seen.add(key)
        self.readings += [(reg, dev, name, us, value) for name, value in metrics]

    def record(self, chunk):
        try:
            value = chunk.value if chunk.parsed else json.loads(chunk.text)
        except ValueError:
            self.errors += 1
            self.broken += 1
            return
        assert isinstance(value, dict)
        if "message" in value:
            msg = value["message"]
            assert value["subscription"] == it.SUBSCRIPTION
            assert msg["messageId"] == msg["message_id"] and msg["publishTime"] == msg["publish_time"]
            self.forms["push"] += 1
        elif "data" in value:
            msg = value
            self.forms["snake" if "message_id" in msg else "camel_typed" if "@type" in msg else "camel"] += 1
            if "@type" in msg:
                assert msg["@type"] == it.PUBSUB_TYPE
        else:
            self.forms["plain"] += 1
            self.json_payload(value, {}, None)
            return
        attrs = msg.get("attributes", {})
        mid = msg.get("messageId", msg.get("message_id"))
        publish = msg.get("publishTime", msg.get("publish_time"))
        assert re.fullmatch(r"\d{16,17}", mid) and PUBLISH.match(publish)
        try:
            payload = base64.b64decode(msg["data"], validate=True).decode("utf-8")
        except ValueError:  # binascii.Error is one
            self.errors += 1
            return
        self.payloads.append((attrs, mid, publish, payload))
        if payload.startswith("{"):
            self.json_payload(json.loads(payload), attrs, parse_rfc3339_micros(publish))
            return
        try:
            json.loads(payload)
            self.errors += 1  # JSON, but not an object
            return
        except ValueError:
            pass
        for point in lp_points(payload):
            if point is None:
                self.errors += 1
            else:
                self.times["lp_ns"] += 1
                self.point(attrs["deviceRegistryId"], attrs["deviceId"], *point)

    def json_payload(self, obj, attrs, publish_us):
        dev = attrs.get("deviceId") or obj.get("device_id") or obj.get("deviceId")
        reg = attrs.get("deviceRegistryId") or obj.get("registry_id")
        keys = [k for k in it.TIME_KEYS if k in obj]
        if dev is None or (not keys and publish_us is None):
            self.errors += 1
            return
        assert len(keys) <= 1
        try:
            metrics = [(k, number(v)) for k, v in flatten(obj) if k not in it.RESERVED]
        except ValueError:
            self.errors += 1
            return
        if keys:
            t = obj[keys[0]]
            self.times[time_kind(t)] += 1
            us = epoch_micros(t)
        else:
            self.times["publish_time"] += 1
            us = publish_us
        self.point(reg, dev, us, metrics)


def time_kind(t) -> str:
    if isinstance(t, str):
        m = RFC.match(t)
        assert m, t
        return f"rfc3339_{len(m[3] or '')}_{'z' if m[4] == 'Z' else 'offset'}"
    if isinstance(t, float):
        return "epoch_s_float"
    return "epoch_ms" if t > 10**11 else "epoch_s"


def read_all(files: dict[str, str]) -> Reader:
    reader = Reader()
    for name in sorted(files):
        for chunk in chunks(files[name]):
            reader.record(chunk)
    return reader


def windows_by_hand(readings, device):
    """Temperature means of the 5-minute windows starting on each minute, for one device."""
    temps = [(us, v) for reg, dev, name, us, v in readings if (reg, dev) == device and name == "temperature"]
    starts = sorted({us - us % it.MINUTE - j * it.MINUTE for us, _ in temps for j in range(5)})
    out = {}
    for s in starts:
        values = [v for us, v in temps if s <= us < s + 5 * it.MINUTE]
        out[s] = sum(values) / len(values)
    return out


@pytest.fixture(scope="module")
def truth():
    return it.ground_truth(N, SEED)


@pytest.fixture(scope="module")
def files():
    return {name: "".join(text) for name, text in it.generate(N, SEED).items()}


@pytest.fixture(scope="module")
def sample_truth():
    return it.ground_truth(it.SAMPLE_DEVICES, it.SAMPLE_SEED)


@pytest.fixture(scope="module")
def sample_files():
    return {name: _read(os.path.join(it.SAMPLE_DIR, it.file_name(name))) for name in it.FILES.values()}


def test_bundled_sample_is_the_generator_output(tmp_path):
    it.write_dir(str(tmp_path), it.SAMPLE_DEVICES, it.SAMPLE_SEED)
    names = sorted(os.listdir(tmp_path))
    assert names == sorted(os.listdir(it.SAMPLE_DIR)) == sorted(it.file_name(n) for n in it.FILES.values())
    for name in names:
        assert (tmp_path / name).read_bytes() == open(os.path.join(it.SAMPLE_DIR, name), "rb").read(), \
            f"{name}: regenerate with python -m pipelines.samples iot_telemetry --devices " \
            f"{it.SAMPLE_DEVICES} --seed {it.SAMPLE_SEED} --out {it.SAMPLE_DIR}/"
    assert sum(os.path.getsize(os.path.join(it.SAMPLE_DIR, n)) for n in names) < 1_500_000


def test_deterministic_for_a_seed(files):
    again = it.generate(N, SEED)
    assert {name: "".join(t) for name, t in again.items()} == files
    assert it.generate(N, SEED + 1) != again
    assert it.ground_truth(N, SEED) == it.ground_truth(N, SEED)
    with pytest.raises(ValueError):
        it.generate(it.MIN_DEVICES - 1, SEED)
    with pytest.raises(ValueError):
        it.generate(N, SEED, minutes=it.MIN_MINUTES - 1)


@pytest.mark.parametrize("which", ["small", "sample"])
def test_ground_truth_is_what_the_bytes_say(which, truth, files, sample_truth, sample_files):
    truth, files = (truth, files) if which == "small" else (sample_truth, sample_files)
    reader = read_all(files)
    assert truth["readings_read"] == truth["readings"] + truth["duplicates"] + truth["filtered"] + truth["errors"]
    assert truth["errors"] == sum(truth["errors_by_kind"].values())
    assert truth["readings"] == len(truth["readings_list"]) == len(set(truth["readings_list"]))
    assert sorted(reader.readings, key=repr) == sorted(truth["readings_list"], key=repr)
    assert (reader.duplicates, reader.filtered, reader.errors) == \
        (truth["duplicates"], truth["filtered"], truth["errors"])
    assert reader.broken == truth["errors_by_kind"]["cut_line"]  # a cut line is one corrupt record
    assert truth["filtered"] == truth["faults"]["heartbeats"]
    assert sum(reader.forms.values()) + reader.broken == truth["records"]
    assert all(isinstance(v, float) and isinstance(us, int) for _, _, _, us, v in truth["readings_list"])


@pytest.mark.parametrize("which", ["small", "sample"])
def test_records_are_what_the_splitter_yields(which, truth, files, sample_truth, sample_files):
    truth, files = (truth, files) if which == "small" else (sample_truth, sample_files)
    for name, text in files.items():
        assert len(chunks(text)) == truth["records_per_file"][name], name
    assert sum(truth["records_per_file"].values()) == truth["records"]
    assert sum(text.count("\n") for text in files.values()) == truth["lines"] == \
        truth["records"] + truth["errors_by_kind"]["cut_line"]
    assert sum(truth["records_by_form"].values()) == truth["records"]


def test_sample_has_every_form_and_fault(sample_truth, sample_files):
    t = sample_truth
    assert t["devices"] == 20 and len(t["device_list"]) == 20
    assert set(t["records_by_form"]) == set(it.FORMS) and min(t["records_by_form"].values()) > 50
    assert all(n >= 3 for n in t["errors_by_kind"].values()), t["errors_by_kind"]
    assert all(n >= 1 for n in t["faults"].values()) and t["faults"]["redeliveries"] >= 3
    assert t["faults"]["retries"] >= 3 and t["faults"]["late_messages"] >= 3 and t["filtered"] >= 3
    kinds = collections.Counter((d["format"], d["transport"]) for d in t["device_list"])
    assert kinds == {("json", "pubsub"): 12, ("line_protocol", "gateway"): 5, ("json", "plain"): 3}
    assert {d["registry"] for d in t["device_list"]} == set(it.REGISTRIES)
    assert set(t["time_formats"]) == {"rfc3339_z", "rfc3339_offset", "epoch_s", "epoch_s_float", "epoch_ms",
                                      "publish_time", "lp_ns"}
    reader = read_all(sample_files)
    digits = {k.split("_")[1] for k in reader.times if k.startswith("rfc3339")}
    assert digits == {"0", "2", "3", "6", "9"}
    assert set(reader.forms) == set(it.FORMS)
    assert t["lp_batched_messages"] > 10
    assert any(len(p.split("\n")) == 3 for _, _, _, p in reader.payloads if not p.startswith(("{", "[")))
    texts = [p for _, _, _, p in reader.payloads]
    assert set(it.NOT_OBJECTS) <= set(texts)
    everything = "\n".join(texts) + sample_files["payloads.json"]
    assert re.search(r'"temperature": ?"hot"', everything) and re.search(r'"temperature": ?null', everything)
    assert any('status="ok"' in p for p in texts) and any(" temperature 17956" in p for p in texts)
    assert any("\n" in p and 'status="ok"' in p for p in texts)  # a bad line among good ones
    plain = sample_files["payloads.json"]
    assert '"device_id"' in plain and '"deviceId"' in plain and '"registry_id"' in plain
    assert sum(1 for _, _, _, p in reader.payloads if '"fan_on":true' in p) > 0
    assert any('"battery":{"voltage"' in p for p in texts)


def test_pubsub_messages(sample_files, sample_truth):
    reader = read_all(sample_files)
    by_id = collections.defaultdict(set)
    for attrs, mid, publish, payload in reader.payloads:
        by_id[mid].add((json.dumps(attrs, sort_keys=True), publish, payload))
        if attrs:
            assert ATTRIBUTES <= set(attrs) and attrs["projectId"] == "acme-iot"
            assert it.REGISTRIES[attrs["deviceRegistryId"]] == attrs["deviceRegistryLocation"]
            assert attrs["subFolder"] == ("influx" if "gatewayId" in attrs else "")
            is_lp = not payload.startswith(("{", "[")) and payload != "hello from pi"
            if payload.startswith("{") or is_lp:
                assert ("gatewayId" in attrs) == is_lp
                assert attrs["gatewayId"] == it.GATEWAYS[attrs["deviceRegistryId"]] if is_lp else True
    assert all(len(v) == 1 for v in by_id.values())  # a messageId is one message
    cut_messages = sum(not c.parsed for name, text in sample_files.items() if name != "payloads.json"
                       for c in chunks(text))
    assert len(by_id) == sample_truth["messages"] - sample_truth["errors_by_kind"]["bad_base64"] - cut_messages
    # retries: the same payload of the same device under a new messageId, published later
    by_payload = collections.defaultdict(list)
    for (attrs, publish, payload), in by_id.values():
        timed = not payload.startswith(("{", "[")) or any(f'"{k}":' in payload for k in it.TIME_KEYS)
        if payload not in it.NOT_OBJECTS and timed:  # without a time, equal values can recur
            by_payload[(attrs, payload)].append(parse_rfc3339_micros(publish))
    retried = [sorted(ps) for ps in by_payload.values() if len(ps) > 1]
    assert len(retried) == sample_truth["faults"]["retries"]
    assert all(5 * it.SECOND <= ps[1] - ps[0] <= 65 * it.SECOND for ps in retried)
    # latency: publishTime is 0.1 to 3 s after the payload time (first copy, not late-flushed)
    for (attrs, payload), ps in by_payload.items():
        if payload.startswith("{") and '"deviceId"' in attrs:
            obj = json.loads(payload)
            key = next((k for k in it.TIME_KEYS if k in obj), None)
            if key and obj.get("temperature") not in ("hot", None) and len(obj) > 2:
                assert 100_000 <= min(ps) - epoch_micros(obj[key]) <= 3_000_000


def test_redeliveries_and_out_of_order(sample_files, sample_truth):
    lines = collections.Counter()
    for name, text in sample_files.items():
        lines.update((name, c.text) for c in chunks(text) if c.parsed)
    again = collections.Counter(name for (name, _), n in lines.items() if n > 1 for _ in range(n - 1))
    assert again["payloads.json"] == sample_truth["faults"]["plain_repeats"]
    assert sum(again.values()) - again["payloads.json"] == sample_truth["faults"]["redeliveries"]
    behind = 0
    for text in sample_files.values():
        newest = 0
        for chunk in chunks(text):
            if not chunk.parsed:
                continue
            msg = chunk.value.get("message", chunk.value)
            if "data" not in msg or not isinstance(msg["data"], str):
                continue
            try:
                payload = base64.b64decode(msg["data"], validate=True).decode()
            except ValueError:
                continue
            for point in (lp_points(payload) if payload[:1] not in "{[" and " " in payload else []):
                if point:
                    behind += point[0] < newest - 90 * it.SECOND
                    newest = max(newest, point[0])
    assert behind >= sample_truth["faults"]["late_messages"] >= 3


def test_file_layout(sample_files):
    assert open(os.path.join(it.SAMPLE_DIR, "messages-snake.json.gz"), "rb").read()[4:8] == b"\0\0\0\0"
    for name, text in sample_files.items():
        if name in it.CRLF:
            assert text.endswith("\r\n") and "\r" not in text.replace("\r\n", "")
        else:
            assert text.endswith("\n") and "\r" not in text
    snake = [c.value for c in chunks(sample_files["messages-snake.json"]) if c.parsed]
    assert snake and all({"data", "message_id", "publish_time"} <= set(o) for o in snake)
    assert all(not k[0].isupper() and "Id" not in k and "Time" not in k for o in snake for k in o)
    camel = [c.value for c in chunks(sample_files["messages-camel.json"]) if c.parsed]
    assert all({"data", "messageId", "publishTime"} <= set(o) for o in camel)
    assert all(line.startswith('{"message":{') for line in sample_files["push-envelopes.json"].splitlines())
    plain = [c.value for c in chunks(sample_files["payloads.json"]) if c.parsed]
    assert all("data" not in o and "message" not in o for o in plain)


def test_the_spike_fires_and_clears_for_one_device(sample_truth):
    t = sample_truth
    assert t["spike_device"] == ("greenhouse", "gh-pi-01")
    firing, cleared = t["spike_windows"]["FIRING"], t["spike_windows"]["CLEARED"]
    assert "2026-11-26T09:20:00Z" < firing < cleared < "2026-11-26T09:40:00Z"
    assert [(e["device"], e["state"], e["window_start"]) for e in t["alerts"]] == \
        [("gh-pi-01", "FIRING", firing), ("gh-pi-01", "CLEARED", cleared)]
    readings = t["readings_list"]
    means = windows_by_hand(readings, t["spike_device"])
    named = {it.window_name(s): m for s, m in means.items()}
    assert named.keys() == t["spike_window_means"].keys()
    assert all(abs(named[w] - m) < 1e-9 for w, m in t["spike_window_means"].items())
    hot = [s for s, m in means.items() if m > 30]
    assert hot == list(range(hot[0], hot[-1] + 1, it.MINUTE)) and len(hot) >= 4  # one stretch
    assert it.window_name(hot[1]) == firing  # fires on the second hot window
    assert it.window_name(hot[-1] + it.MINUTE) == cleared
    assert all(abs(m - 30) > 0.5 for m in means.values())  # no borderline window
    assert max(m for s, m in means.items() if s < hot[0] - 5 * it.MINUTE) < 24
    devices = {(reg, dev) for reg, dev, name, _, _ in readings if name == "temperature"}
    assert len(devices) == 20
    for device in sorted(devices - {t["spike_device"]}, key=repr):
        assert max(windows_by_hand(readings, device).values()) < 27
    temps = [v for reg, dev, name, _, v in readings if name == "temperature" and (reg, dev) != t["spike_device"]]
    assert 18 <= min(temps) and max(temps) <= 26 and t["max_other_mean"] < 27


def test_sliding_alerts_rules():
    m = it.MINUTE
    base = it.START + 10 * m
    temps = [31.0] * 5 + [20.0] * 6  # one reading a minute
    readings = [("r", "d", "temperature", base + i * m, v) for i, v in enumerate(temps)]
    events = it.sliding_alerts(readings)
    # windows [s, s + 5 min): base-4m holds only the first reading (hot), base-3m two: fires;
    # base+1m holds four 31s and a 20 (28.8): clears
    assert [(e["state"], e["window_start"]) for e in events] == \
        [("FIRING", it.window_name(base - 3 * m)), ("CLEARED", it.window_name(base + m))]
    assert it.sliding_alerts([("r", "d", "humidity", base, 99.0)]) == []
    tumbling = dict(it.RULE, size_s=60, period_s=60)
    gap = [("r", "d", "temperature", base, 35.0), ("r", "d", "temperature", base + 2 * m, 35.0)]
    assert it.sliding_alerts(gap, tumbling) == []  # an empty window between breaks the streak
    steady = [("r", "d", "temperature", base, 35.0), ("r", "d", "temperature", base + m, 35.0),
              ("r", "d", "temperature", base + 2 * m, 30.0)]
    assert [(e["state"], e["window_start"]) for e in it.sliding_alerts(steady, tumbling)] == \
        [("FIRING", it.window_name(base + m)), ("CLEARED", it.window_name(base + 2 * m))]  # 30 is not > 30


def test_ndjson_stream_and_minutes(files, truth):
    out = io.StringIO()
    it.write_ndjson(out, N, SEED)
    stream = out.getvalue()
    assert "\r" not in stream
    assert sorted(stream.split("\n")[:-1]) == sorted(
        line for text in files.values() for line in text.replace("\r\n", "\n").split("\n")[:-1])
    assert len(chunks(stream)) == truth["records"]
    short = it.ground_truth(5, 1, minutes=30)
    assert short["end"] == "2026-11-26T09:30:00Z" and short["spike_windows"].keys() == {"FIRING", "CLEARED"}
    assert short["readings_read"] == short["readings"] + short["duplicates"] + short["filtered"] + short["errors"]
    assert max(us for *_, us, _ in short["readings_list"]) < it.START + 30 * it.MINUTE


def test_cli(tmp_path, capsys):
    assert cli.main([]) == 0
    assert "iot_telemetry\t" in capsys.readouterr().out
    env = dict(os.environ, PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, "-m", "pipelines.samples", "iot_telemetry", "--devices", "3",
                          "--seed", "2", "--out", f"{tmp_path}/d/"], cwd=ROOT, env=env, capture_output=True)
    assert out.returncode == 0, out.stderr
    expected = it.generate(3, 2)
    assert sorted(os.listdir(tmp_path / "d")) == sorted(it.file_name(n) for n in expected)
    for name, text in expected.items():
        assert _read(tmp_path / "d" / it.file_name(name)) == "".join(text)
    out = subprocess.run(f"{sys.executable} -m pipelines.samples iot_telemetry --devices 3 | head -3",
                         shell=True, cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0 and out.stderr == "" and len(out.stdout.splitlines()) == 3
