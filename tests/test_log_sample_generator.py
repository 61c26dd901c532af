"""The log_analytics sample generator: deterministic, real LogEntry JSON, dirty exactly as it says."""
import calendar
import collections
import gzip
import io
import ipaddress
import json
import os
import re
import subprocess
import sys

import pytest

from pipelines.samples import __main__ as cli
from pipelines.samples import log_analytics as la

N, SEED = 300, 5
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOG_NAMES = {la.log_name(log): log for log in la.LOG_IDS}
TS = re.compile(r"^(2026-11-26T10:\d\d:\d\d)\.(\d{3,9})Z$")
RECEIVE = re.compile(r"^2026-11-26T1[01]:\d\d:\d\d\.\d{9}Z$")
LATENCY = re.compile(r"^\d+\.(\d{1,9})s$")


def ns(ts: str) -> int:
    """RFC 3339 (UTC, any fractional digits) -> ns since the epoch, exactly."""
    base, _, frac = ts[:-1].partition(".")
    return calendar.timegm(tuple(map(int, re.split("[-T:]", base))) + (0, 0, 0)) * 10**9 + int(frac.ljust(9, "0"))


def split_lines(text):
    """NDJSON lines -> (objects, non-object JSON values, lines that are not JSON)."""
    objects, others, broken = [], [], []
    for line in text.split("\n")[:-1]:
        try:
            value = json.loads(line)
        except ValueError:
            broken.append(line)
            continue
        (objects if isinstance(value, dict) else others).append(value)
    return objects, others, broken


def unique(objects):
    """First copy of each entry: Cloud Logging's identity is (logName, insertId, timestamp)."""
    return list({(o["logName"], o["insertId"], o["timestamp"]): o for o in reversed(objects)}.values())[::-1]


def status_of(hr):
    s = hr.get("status")
    return int(s) if isinstance(s, int) or (isinstance(s, str) and s.isdigit()) else None


def wrong_fields(o):
    hr = o.get("httpRequest", {})
    return [f for f, v in la.WRONG_TYPES if hr.get(f) == v]


def ip_kind(ip):
    if ip.startswith("["):
        host, port = ip[1:].split("]:")
        kind = "ipv6_port"
    elif ip.count(":") == 1:
        host, port = ip.split(":")
        kind = "ipv4_port"
    else:
        host, port, kind = ip, "1", "ipv6" if ":" in ip else "ipv4"
    addr = ipaddress.ip_address(host)  # raises if it is not an address
    assert addr.version == (6 if "ipv6" in kind else 4) and 0 < int(port) < 65536
    return kind


@pytest.fixture(scope="module")
def ndjson():
    out = io.StringIO()
    la.write_ndjson(out, N, SEED)
    return out.getvalue()


@pytest.fixture(scope="module")
def truth():
    return la.ground_truth(N, SEED)


@pytest.fixture(scope="module")
def entries(ndjson):
    return unique(split_lines(ndjson)[0])


def test_deterministic_for_a_seed(ndjson):
    assert la.generate(N, SEED) == la.generate(N, SEED)
    assert la.generate(N, SEED) != la.generate(N, SEED + 1)
    again = io.StringIO()
    la.write_ndjson(again, N, SEED)
    assert again.getvalue() == ndjson
    with pytest.raises(ValueError):
        la.generate(la.MIN_ENTRIES - 1, SEED)


def test_entry_count_and_kinds(ndjson, truth, entries):
    objects, _, _ = split_lines(ndjson)
    assert truth["entries"] == N == sum(truth["kinds"].values()) == sum(truth["per_log"].values())
    assert len(entries) == N - truth["malformed"]["split_record"]
    assert len(objects) - len(entries) == truth["duplicates"] > 0
    by_log = collections.Counter(LOG_NAMES[o["logName"]] for o in entries)
    assert set(by_log) == set(la.LOG_IDS)
    for log, count in by_log.items():
        assert truth["per_log"][la.LOG_IDS[log]] - truth["malformed"]["split_record"] <= count
        assert count <= truth["per_log"][la.LOG_IDS[log]]
    assert all(n > 0 for n in truth["kinds"].values())
    assert la.log_name("requests") == "projects/acme-shop-prod/logs/run.googleapis.com%2Frequests"
    assert la.log_name("activity") == "projects/acme-shop-prod/logs/cloudaudit.googleapis.com%2Factivity"


def test_every_valid_line_is_a_logentry(entries):
    request_traces = set()
    for o in entries:
        log = LOG_NAMES[o["logName"]]
        assert isinstance(o["insertId"], str) and len(o["insertId"]) >= 12
        assert TS.match(o["timestamp"]), o["timestamp"]
        if "receiveTimestamp" in o:
            assert RECEIVE.match(o["receiveTimestamp"])
            assert ns(o["receiveTimestamp"]) > ns(o["timestamp"])
        assert o.get("severity", "DEFAULT") in la.SEVERITIES
        assert o["resource"]["type"] and isinstance(o["resource"]["labels"], dict)
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in o.get("labels", {}).items())
        payloads = [k for k in ("jsonPayload", "textPayload", "protoPayload") if k in o]
        assert payloads == {"requests": [], "struct_log": ["jsonPayload"], "stdout": ["textPayload"],
                            "stderr": ["textPayload"], "activity": ["protoPayload"]}[log]
        if "trace" in o:
            assert re.fullmatch(r"projects/acme-shop-prod/traces/[0-9a-f]{32}", o["trace"])
            assert re.fullmatch(r"[0-9a-f]{16}", o["spanId"])
        if log in ("requests", "struct_log", "stdout", "stderr"):
            assert o["resource"]["type"] == "cloud_run_revision"
            assert set(o["resource"]["labels"]) == {"service_name", "revision_name", "location", "project_id",
                                                   "configuration_name"}
        if log == "requests":
            hr = o["httpRequest"]
            assert {"requestMethod", "requestUrl", "status", "latency", "remoteIp", "protocol"} <= set(hr)
            assert hr["requestUrl"].startswith("https://") and hr["protocol"] in ("HTTP/1.1", "HTTP/2")
            ip_kind(hr["remoteIp"])
            request_traces.add(o["trace"])
            if wrong_fields(o):
                continue
            assert LATENCY.match(hr["latency"])
            size = hr.get("responseSize", "0")  # INT64: a JSON string, or a number from a sloppy producer
            assert isinstance(size, int) or size.isdigit()
            status = status_of(hr)
            assert o["severity"] == ("ERROR" if status >= 500 else "WARNING" if status >= 400 else "INFO")
        elif log == "struct_log":
            assert ("message" in o["jsonPayload"]) != ("text" in o["jsonPayload"]) and o["jsonPayload"]["component"]
        elif log == "activity":
            p = o["protoPayload"]
            assert p["@type"] == "type.googleapis.com/google.cloud.audit.AuditLog"
            assert p["methodName"] and p["serviceName"].endswith(".googleapis.com") and p["resourceName"]
            assert "@" in p["authenticationInfo"]["principalEmail"]
            assert o["severity"] == ("ERROR" if p["status"] else "NOTICE")
        else:
            assert isinstance(o["textPayload"], str) and o["textPayload"]
    methods = {o["protoPayload"]["methodName"] for o in entries if "protoPayload" in o}
    assert "google.cloud.run.v1.Services.ReplaceService" in methods
    assert any(o.get("trace") in request_traces for o in entries if "jsonPayload" in o)  # app logs under requests


def test_quirks_are_exactly_the_counted_ones(entries, truth):
    requests = [o["httpRequest"] for o in entries if "httpRequest" in o]
    latencies = [LATENCY.match(h["latency"]) for h in requests]
    seen = {
        "status_as_string": sum(isinstance(h["status"], str) and h["status"].isdigit() for h in requests),
        "status_5xx_as_string": sum(isinstance(h["status"], str) and h["status"][:1] == "5" for h in requests),
        "response_size_as_number": sum(isinstance(h.get("responseSize"), int) for h in requests),
        "no_response_size": sum("responseSize" not in h for h in requests),
        "severity_absent": sum("severity" not in o for o in entries),
        "no_receive_timestamp": sum("receiveTimestamp" not in o for o in entries),
        "with_labels": sum("labels" in o for o in entries),
        "timestamp_digits": dict(sorted(collections.Counter(len(TS.match(o["timestamp"])[2]) for o in entries).items())),
        "latency_digits": dict(sorted(collections.Counter(len(m[1]) for m in latencies if m).items())),
        "remote_ip": dict(sorted(collections.Counter(ip_kind(h["remoteIp"]) for h in requests).items())),
        "tracebacks": sum(o.get("textPayload", "").startswith("Traceback (most recent call last):\n") for o in entries),
        "payload_text_key": sum("text" in o.get("jsonPayload", {}) for o in entries),
    }
    assert seen == truth["quirks"]
    q = truth["quirks"]
    assert set(q["timestamp_digits"]) == set(range(3, 10)) and set(q["latency_digits"]) == set(range(1, 10))
    assert set(q["remote_ip"]) == {"ipv4", "ipv4_port", "ipv6", "ipv6_port"}
    assert all(q[k] > 0 for k in ("status_5xx_as_string", "response_size_as_number", "severity_absent",
                                  "no_receive_timestamp", "tracebacks", "payload_text_key"))
    traceback = next(o["textPayload"] for o in entries if o.get("textPayload", "").startswith("Traceback"))
    assert traceback.count("\n") >= 5 and LOG_NAMES[next(
        o["logName"] for o in entries if o.get("textPayload") == traceback)] == "stderr"
    valid = [o for o in entries if not wrong_fields(o)]
    assert collections.Counter(o.get("severity", "DEFAULT") for o in valid) == truth["severities"]
    assert set(truth["severities"]) == set(la.SEVERITIES)


def test_malformed_lines_are_exactly_the_injected_ones(ndjson, entries, truth):
    _, others, broken = split_lines(ndjson)
    bad = truth["malformed"]
    assert all(bad[kind] > 0 for kind in la.MALFORMED_KINDS)
    assert len(broken) == bad["invalid_json"] + 2 * bad["split_record"]
    assert len(others) == bad["not_object"]
    mistyped = collections.Counter(f for o in entries for f in wrong_fields(o))
    assert sum(mistyped.values()) == bad["wrong_type"] and mistyped == truth["wrong_type_fields"]
    assert set(mistyped) == {"status", "latency", "responseSize"}
    assert sum(bool(wrong_fields(o)) for o in entries) == bad["wrong_type"]  # one wrong field each


def test_late_entries_arrive_out_of_order(ndjson, entries, truth):
    delays = [ns(o["receiveTimestamp"]) - ns(o["timestamp"]) for o in entries if "receiveTimestamp" in o]
    late = sum(d >= la.LATE_S * 10**9 for d in delays)
    assert 0 < truth["late_injected"] <= late <= truth["late"]
    newest, behind = 0, 0
    for o in split_lines(ndjson)[0]:  # arrival order
        t = ns(o["timestamp"])
        behind += t < newest - 120 * 10**9
        newest = max(newest, t)
    assert behind >= truth["late_injected"]


def test_per_minute_windows(entries, truth):
    windows = {m: {"entries": 0, "requests": 0, "5xx": 0} for m in truth["per_minute"]}
    for o in entries:
        if wrong_fields(o):
            continue
        w = windows[o["timestamp"][:16] + ":00Z"]
        w["entries"] += 1
        if "httpRequest" in o:
            w["requests"] += 1
            w["5xx"] += status_of(o["httpRequest"]) >= 500
    assert windows == truth["per_minute"] and len(windows) == 60
    assert sum(w["entries"] for w in windows.values()) == truth["valid_entries"]
    assert sum(w["entries"] for w in truth["per_minute_generated"].values()) == N
    burst = [truth["per_minute"][m] for m in truth["burst_minutes"]]
    calm = [w for m, w in truth["per_minute"].items() if m not in truth["burst_minutes"]]
    assert all(2 * w["5xx"] >= w["requests"] > 0 for w in burst)
    assert max(w["5xx"] for w in calm) < min(w["5xx"] for w in burst)


def _read(path) -> str:
    data = open(path, "rb").read()
    return (gzip.decompress(data) if str(path).endswith(".gz") else data).decode("utf-8")


def test_directory_layout(tmp_path, ndjson, truth):
    la.write_dir(str(tmp_path), N, SEED)
    names = {la.file_name(n): n for n in la.FILES.values()}
    assert sorted(os.listdir(tmp_path)) == sorted(names)
    assert (tmp_path / "requests.json.gz").read_bytes()[4:8] == b"\0\0\0\0"  # gzip mtime 0
    read = {name: _read(tmp_path / written) for written, name in names.items()}
    download = json.loads(read[la.FILES[la.DOWNLOAD]])
    assert read[la.FILES[la.DOWNLOAD]].startswith("[\n  {\n")
    assert isinstance(download, list) and len(download) == truth["records_per_file"][la.FILES[la.DOWNLOAD]] > 0
    stamps = [ns(o["timestamp"]) for o in download]
    assert stamps == sorted(stamps, reverse=True) and stamps[0] < ns(truth["sink_start"])  # newest first
    stream = [la.line(o) for o in download]
    lines_minus_records = 0
    for log in la.LOG_IDS:
        name = la.FILES[log]
        text = read[name]
        if name in la.CRLF:
            assert text.endswith("\r\n") and "\r" not in text.replace("\r\n", "")
            text = text.replace("\r\n", "\n")
        else:
            assert text.endswith("\n") and "\r" not in text
        lines_minus_records += text.count("\n") - truth["records_per_file"][name]
        stream += text.split("\n")[:-1]
        objects, _, _ = split_lines(text)
        assert objects and all(LOG_NAMES[o["logName"]] == log for o in objects)
        assert all(ns(o["timestamp"]) >= ns(truth["sink_start"]) for o in objects)
        assert all(la.line(o) in text for o in objects)  # compact, keys sorted, as a sink writes them
        if len(objects) > 20:  # roughly by time: mostly ascending, never sorted outright
            times = [ns(o["timestamp"]) for o in objects]
            ascending = sum(a <= b for a, b in zip(times, times[1:], strict=False)) / (len(times) - 1)
            assert 0.6 < ascending < 1
    assert lines_minus_records == truth["malformed"]["split_record"]
    assert sorted(stream) == sorted(ndjson.split("\n")[:-1])  # the Pub/Sub stream holds the same records


def test_bundled_sample_is_the_generator_output():
    expected = la.generate(la.SAMPLE_ENTRIES, la.SAMPLE_SEED)
    names = {la.file_name(n): n for n in expected}
    assert sorted(os.listdir(la.SAMPLE_DIR)) == sorted(names)
    for written, name in names.items():
        assert _read(os.path.join(la.SAMPLE_DIR, written)) == "".join(expected[name]), \
            f"{name}: regenerate with python -m pipelines.samples log_analytics --entries " \
            f"{la.SAMPLE_ENTRIES} --seed {la.SAMPLE_SEED} --out {la.SAMPLE_DIR}/"
    assert sum(os.path.getsize(os.path.join(la.SAMPLE_DIR, n)) for n in names) < 2_000_000
    truth = la.ground_truth(la.SAMPLE_ENTRIES, la.SAMPLE_SEED)
    assert truth["entries"] == 3000 and min(truth["kinds"].values()) >= 20
    for minute in truth["burst_minutes"]:  # an error-rate alert has to fire in these, and only these
        w = truth["per_minute"][minute]
        assert w["5xx"] >= 20 and w["5xx"] > 0.5 * w["requests"]
    assert all(w["5xx"] <= 0.1 * w["requests"] for m, w in truth["per_minute"].items()
               if m not in truth["burst_minutes"])


def test_cli(tmp_path, capsys):
    assert cli.main([]) == 0
    assert "log_analytics\t" in capsys.readouterr().out
    env = dict(os.environ, PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, "-m", "pipelines.samples", "log_analytics", "--entries", "50",
                          "--seed", "3", "--out", f"{tmp_path}/d/"], cwd=ROOT, env=env, capture_output=True)
    assert out.returncode == 0, out.stderr
    expected = la.generate(50, 3)
    assert sorted(os.listdir(tmp_path / "d")) == sorted(la.file_name(n) for n in expected)
    for name, chunks in expected.items():
        assert _read(tmp_path / "d" / la.file_name(name)) == "".join(chunks)
    assert cli.main(["log_analytics", "--entries", "50", "--seed", "3", "--out", str(tmp_path / "x.ndjson")]) == 0
    ndjson = io.StringIO()
    la.write_ndjson(ndjson, 50, 3)
    assert (tmp_path / "x.ndjson").read_text(encoding="utf-8") == ndjson.getvalue()
