"""The game_analytics sample generator: deterministic, realistic, and dirty exactly as it says."""
import collections
import gzip
import io
import itertools
import json
import os

import pytest

from pipelines.samples import __main__ as cli
from pipelines.samples import game_analytics as ga

PLAYS, SEED = 30, 11


def _slots(params):
    return {p["key"].lower(): next((v for v in p["value"].values() if v is not None), None) for p in params}


def encoding(rec):
    return ("ga4" if "event_params" in rec else "legacy" if "user_dim" in rec
            else "functions" if "userDim" in rec else "custom")


def events_of(rec):
    """[(event name, {lower-cased param key: value})] for a record of any of the four encodings."""
    enc = encoding(rec)
    if enc == "ga4":
        return [(rec["event_name"], _slots(rec["event_params"]))]
    if enc == "legacy":
        return [(e["name"], _slots(e["params"])) for e in rec["event_dim"]]
    if enc == "functions":
        return [(e["name"], {k.lower(): next(iter(v.values())) for k, v in e["params"].items()})
                for e in rec["eventDim"]]
    return [(rec["event_name"], {k.lower(): v for k, v in rec["params"].items()})]


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


@pytest.fixture(scope="module")
def ndjson():
    out = io.StringIO()
    ga.write_ndjson(out, PLAYS, SEED)
    return out.getvalue()


@pytest.fixture(scope="module")
def truth():
    return ga.ground_truth(PLAYS, SEED)


def test_deterministic_for_a_seed(ndjson):
    assert ga.generate(PLAYS, SEED) == ga.generate(PLAYS, SEED)
    assert ga.generate(PLAYS, SEED) != ga.generate(PLAYS, SEED + 1)
    again = io.StringIO()
    ga.write_ndjson(again, PLAYS, SEED)
    assert again.getvalue() == ndjson


def test_number_of_plays_and_funnel(ndjson, truth):
    objects, _, _ = split_lines(ndjson)
    events = [ev for rec in objects for ev in events_of(rec)]
    sessions = {p["sessionid"] for _, p in events if "sessionid" in p}
    assert len(sessions) == truth["plays"] == PLAYS
    assert all(len(s) == 36 for s in sessions)
    ended = {p.get("sessionid") for name, p in events if name in ("END_SESSION", "END_SCENE")}
    lost = truth["malformed"]["split_record"] + truth["malformed"]["missing_sessionid"]
    assert truth["completed"] - lost <= len(ended - {None}) <= truth["completed"]
    assert truth["completed"] + truth["abandoned"] == PLAYS
    steps = list(truth["funnel"].values())
    assert steps[0] == PLAYS and all(a > b for a, b in itertools.pairwise(steps)), steps
    assert truth["end_scene"] > 0
    auto = {name for name, _ in events if not name.isupper()}
    assert {"session_start", "screen_view", "user_engagement", "first_open"} <= auto


def test_all_encodings_present(ndjson, truth):
    objects, _, _ = split_lines(ndjson)
    counts = collections.Counter(encoding(rec) for rec in objects)
    assert set(counts) == {"ga4", "legacy", "functions", "custom"}
    assert all(n > 0 for n in truth["events_per_encoding"].values())
    assert sum(truth["events_per_encoding"].values()) == truth["events"]
    ga4 = [rec for rec in objects if encoding(rec) == "ga4"]
    assert {type(r["event_timestamp"]) for r in ga4} == {str, int}
    slots = {s for r in ga4 for p in r["event_params"] for s in p["value"]}
    assert {"string_value", "int_value", "double_value", "float_value"} <= slots
    keys = {k for rec in objects for _, p in events_of(rec) for k in p}
    assert {"pos_x", "pos_z", "pos_y", "pox_z"} <= keys


def test_malformed_lines_are_exactly_the_injected_ones(ndjson, truth):
    objects, others, broken = split_lines(ndjson)
    bad = truth["malformed"]
    assert all(bad[kind] > 0 for kind in ga.MALFORMED_KINDS) and truth["duplicates"] > 0
    assert len(broken) == bad["invalid_json"] + 2 * bad["split_record"]
    assert len(others) == bad["not_object"]
    lines = collections.Counter(json.dumps(rec, sort_keys=True) for rec in objects)
    assert sum(n - 1 for n in lines.values()) == truth["duplicates"]
    events = [ev for rec in objects for ev in events_of(rec)]
    game = [(name, p) for name, p in events if name.isupper()]
    assert sum("sessionid" not in p for _, p in game) == bad["missing_sessionid"]
    mistyped = sum(isinstance(p.get("age"), list) or isinstance(p.get("pos_x"), str)
                   or isinstance(p.get("damage"), str) for _, p in game)
    assert mistyped == bad["wrong_type"]
    ages = {type(p["age"]).__name__ for name, p in game if name == "START_SESSION" and "age" in p}
    assert {"int", "str"} <= ages  # "unknown", or INT64 as a JSON string


def test_directory_layout(tmp_path, truth):
    ga.write_dir(str(tmp_path), PLAYS, SEED)
    assert sorted(os.listdir(tmp_path)) == sorted(ga.file_name(n) for n in ga.FILES.values())
    read = {name: _read(tmp_path / ga.file_name(name)) for name in ga.FILES.values()}
    ga4 = read[ga.FILES["ga4"]]
    assert ga4.endswith("\r\n") and ga4.split("\r\n")[:-1].count("") == truth["layout"]["blank_lines"] > 0
    assert "\r" not in read[ga.FILES["legacy"]]
    payloads = json.loads(read[ga.FILES["functions"]])
    assert isinstance(payloads, list) and all({"userDim", "eventDim"} <= set(p) for p in payloads)
    decoder, custom = json.JSONDecoder(), "\n" + read[ga.FILES["custom"]]
    joined = [line for line in custom.split("\n") if "}{" in line]
    assert len(joined) == truth["layout"]["concatenated_lines"] > 0
    for line in joined:
        first, end = decoder.raw_decode(line)
        second, end = decoder.raw_decode(line, end)
        assert end == len(line) and "event_name" in first and "event_name" in second
    starts = [i for i in range(len(custom)) if custom.startswith("\n{\n", i)]
    assert len(starts) == truth["layout"]["pretty_records"] > 0
    assert all("event_name" in decoder.raw_decode(custom, i + 1)[0] for i in starts)


def _read(path) -> str:
    data = path.read_bytes() if hasattr(path, "read_bytes") else open(path, "rb").read()
    return (gzip.decompress(data) if str(path).endswith(".gz") else data).decode()


def test_bundled_sample_is_the_generator_output():
    expected = ga.generate(ga.SAMPLE_PLAYS, ga.SAMPLE_SEED)
    names = {ga.file_name(n): n for n in expected}
    assert sorted(os.listdir(ga.SAMPLE_DIR)) == sorted(names)
    for written, name in names.items():
        text = _read(os.path.join(ga.SAMPLE_DIR, written))
        assert text == "".join(expected[name]), f"{name}: regenerate the bundled sample"
    assert sum(os.path.getsize(os.path.join(ga.SAMPLE_DIR, n)) for n in names) < 3_000_000


def test_cli(tmp_path, capsys):
    assert cli.main([]) == 0
    assert capsys.readouterr().out.split("\t")[0] == "game_analytics"
    assert cli.main(["nope"]) == 2
    assert cli.main(["game_analytics", "--plays", "4", "--seed", "3", "--out", f"{tmp_path}/d/"]) == 0
    assert sorted(os.listdir(tmp_path / "d")) == sorted(ga.file_name(n) for n in ga.FILES.values())
    assert cli.main(["game_analytics", "--plays", "4", "--seed", "3", "--out", str(tmp_path / "x.ndjson")]) == 0
    out = io.StringIO()
    ga.write_ndjson(out, 4, 3)
    assert (tmp_path / "x.ndjson").read_text() == out.getvalue()
