"""The tweet_sentiment sample generator: deterministic, real Twitter API shapes, dirty exactly as it says.

The ground truth is checked against the bytes: an independent reader here splits the files
with the job's own splitter, parses v1.1 statuses, v2 stream records and search results the
way the module docstring's contract says, and recounts tweets, duplicates, filtered records,
errors, folded retweets, keyword matches and per-window counts.
"""
import collections
import datetime as dt
import gzip
import io
import json
import os
import re
import subprocess
import sys
import time

import pytest

from pipelines.samples import __main__ as cli
from pipelines.samples import tweet_sentiment as ts
from transforms.jsonsplit import split_json_records

N, SEED = 300, 7
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
V1_TIME = "%a %b %d %H:%M:%S %z %Y"
V2_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$")
STREAMS = ("stream-v1.json", "stream-v2.json")
SEARCH = "search-v1.json"


def _read(path) -> str:
    data = open(path, "rb").read()
    return (gzip.decompress(data) if str(path).endswith(".gz") else data).decode("utf-8")


def chunks(text):
    return list(split_json_records(io.StringIO(text)))


def rfc(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms // 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"


class Bad(Exception):
    """A record that is JSON but not a tweet: an error."""


def v1_tweet(o: dict, top: bool) -> dict:
    tid = o.get("id_str") or (str(o["id"]) if isinstance(o.get("id"), int) else None)
    if not tid:
        raise Bad("no_id")
    if top and "timestamp_ms" in o:
        ms, exact = int(o["timestamp_ms"]), True
    else:
        try:
            ms, exact = int(dt.datetime.strptime(o["created_at"], V1_TIME).timestamp()) * 1000, False
        except ValueError as e:
            raise Bad("bad_created_at") from e
    text = o["text"] if "text" in o else o.get("full_text")
    if not isinstance(text, str):
        raise Bad("text_not_string")
    if "extended_tweet" in o:
        full, ents = o["extended_tweet"]["full_text"], o["extended_tweet"]["entities"]
    else:
        full, ents = text, o["entities"]
    out = {"id": tid, "ms": ms, "exact": exact, "user_id": o["user"]["id_str"], "user_name": o["user"]["screen_name"],
           "lang": o["lang"], "full_text": full, "hashtags": [h["text"] for h in ents["hashtags"]],
           "quoted_id": o.get("quoted_status_id_str"), "reply_to_id": o.get("in_reply_to_status_id_str"),
           "original": None}
    if "retweeted_status" in o:
        out["original"] = v1_tweet(o["retweeted_status"], False)
    return out


def v2_tweet(d: dict, users: dict, included: dict) -> dict:
    tid = d.get("id")
    if not isinstance(tid, str):
        raise Bad("no_id")
    if not V2_TIME.match(d["created_at"]):
        raise Bad("bad_created_at")
    try:
        ms = int(dt.datetime.strptime(d["created_at"][:19], "%Y-%m-%dT%H:%M:%S").replace(
            tzinfo=dt.UTC).timestamp()) * 1000
    except ValueError as e:
        raise Bad("bad_created_at") from e
    if not isinstance(d.get("text"), str):
        raise Bad("text_not_string")
    note = d.get("note_tweet")
    full, ents = (note["text"], note.get("entities", {})) if note else (d["text"], d.get("entities", {}))
    refs = {r["type"]: r["id"] for r in d.get("referenced_tweets", [])}
    user = users[d["author_id"]]
    out = {"id": tid, "ms": ms, "exact": False, "user_id": user["id"], "user_name": user["username"],
           "lang": d["lang"], "full_text": full, "hashtags": [h["tag"] for h in ents.get("hashtags", [])],
           "quoted_id": refs.get("quoted"), "reply_to_id": refs.get("replied_to"), "original": None}
    if "retweeted" in refs:
        out["original"] = v2_tweet(included[refs["retweeted"]], users, included)
    return out


class Reader:
    """What the job must make of the records, by the contract in the module docstring."""

    def __init__(self):
        self.records = 0
        self.filtered, self.errors = collections.Counter(), collections.Counter()
        self.deliveries = []  # (file, tweet)

    def chunk(self, name: str, c) -> None:
        self.records += 1
        try:
            value = c.value if c.parsed else json.loads(c.text)
        except ValueError:
            self.errors["cut"] += 1
            return
        assert isinstance(value, dict)
        if "limit" in value or "delete" in value or "disconnect" in value:
            self.filtered[next(iter(value))] += 1
            return
        if "errors" in value and "data" not in value:
            self.filtered["operational_disconnect"] += 1
            return
        try:
            if "data" in value:
                inc = value.get("includes", {})
                users = {u["id"]: u for u in inc.get("users", [])}
                tweet = v2_tweet(value["data"], users, {t["id"]: t for t in inc.get("tweets", [])})
            else:
                tweet = v1_tweet(value, True)
        except Bad as e:
            self.errors[str(e)] += 1
            return
        self.deliveries.append((name, tweet))

    def read(self, files: dict) -> "Reader":
        for name, text in files.items():
            for c in chunks(text):
                self.chunk(name, c)
        return self

    def tweet_list(self) -> list[dict]:
        exact, first, in_files = {}, {}, collections.defaultdict(list)
        for name, t in self.deliveries:
            first.setdefault(t["id"], t)
            if name not in in_files[t["id"]]:
                in_files[t["id"]].append(name)
            if t["exact"]:
                exact[t["id"]] = t["ms"]
        out = []
        for tid, t in first.items():
            o = t["original"] or t
            out.append({
                "id": tid, "created_at": rfc(exact.get(tid, t["ms"])), "user_id": t["user_id"],
                "user_name": t["user_name"], "lang": t["lang"], "full_text": o["full_text"], "hashtags": o["hashtags"],
                "is_retweet": t["original"] is not None, "original_id": o["id"],
                "original_created_at": rfc(exact.get(o["id"], o["ms"])), "is_quote": t["quoted_id"] is not None,
                "quoted_id": t["quoted_id"], "reply_to_id": t["reply_to_id"],
                "files": sorted(in_files[tid], key=list(ts.FILES.values()).index)})
        return sorted(out, key=lambda t: (t["created_at"], int(t["id"])))


def keyword_hits(text: str, hashtags, keyword: str) -> bool:
    """An independent matcher: str.find over whitespace-collapsed, casefolded text."""
    tags = {h.casefold() for h in hashtags}
    kw = keyword.casefold()
    if kw.startswith("#"):
        return kw[1:] in tags
    if kw in tags:
        return True
    text = " ".join(text.casefold().split())
    at = text.find(kw)
    while at >= 0:
        before = text[at - 1] if at else " "
        after = text[at + len(kw)] if at + len(kw) < len(text) else " "
        if not (before.isalnum() or before == "_") and not (after.isalnum() or after == "_"):
            return True
        at = text.find(kw, at + 1)
    return False


@pytest.fixture(scope="module")
def truth():
    return ts.ground_truth(N, SEED)


@pytest.fixture(scope="module")
def files():
    return {name: "".join(text) for name, text in ts.generate(N, SEED).items()}


@pytest.fixture(scope="module")
def sample_truth():
    return ts.ground_truth(ts.SAMPLE_TWEETS, ts.SAMPLE_SEED)


@pytest.fixture(scope="module")
def sample_files():
    return {name: _read(os.path.join(ts.SAMPLE_DIR, ts.file_name(name))) for name in ts.FILES.values()}


@pytest.fixture(scope="module")
def sample_values(sample_files):
    return {name: [c.value for c in chunks(text) if c.parsed] for name, text in sample_files.items()}


def test_bundled_sample_is_the_generator_output(tmp_path):
    ts.write_dir(str(tmp_path), ts.SAMPLE_TWEETS, ts.SAMPLE_SEED)
    names = sorted(os.listdir(tmp_path))
    assert names == sorted(os.listdir(ts.SAMPLE_DIR)) == sorted(ts.file_name(n) for n in ts.FILES.values())
    for name in names:
        assert (tmp_path / name).read_bytes() == open(os.path.join(ts.SAMPLE_DIR, name), "rb").read(), \
            f"{name}: regenerate with python -m pipelines.samples tweet_sentiment --tweets " \
            f"{ts.SAMPLE_TWEETS} --seed {ts.SAMPLE_SEED} --out {ts.SAMPLE_DIR}/"
    assert sum(os.path.getsize(os.path.join(ts.SAMPLE_DIR, n)) for n in names) < 2_000_000


def test_deterministic_for_a_seed(files, truth):
    again = ts.generate(N, SEED)
    assert {name: "".join(t) for name, t in again.items()} == files
    assert ts.generate(N, SEED + 1) != again
    assert ts.ground_truth(N, SEED) == truth
    with pytest.raises(ValueError):
        ts.generate(ts.MIN_TWEETS - 1, SEED)
    small = ts.ground_truth(ts.MIN_TWEETS, 3)  # the smallest still has every fault
    assert small["tweets"] == ts.MIN_TWEETS
    assert all(small["filtered_by_kind"].values()) and all(small["errors_by_kind"].values())
    assert all(small["duplicates_by_kind"].values()) and small["note_tweets"] and small["quotes"]


@pytest.mark.parametrize("which", ["small", "sample"])
def test_records_are_what_the_splitter_yields(which, truth, files, sample_truth, sample_files):
    truth, files = (truth, files) if which == "small" else (sample_truth, sample_files)
    for name, text in files.items():
        got = chunks(text)
        assert len(got) == truth["records_per_file"][name], name
        assert text.count("\n") == truth["lines_per_file"][name]
        assert sum(line == "" for line in text.replace("\r\n", "\n").split("\n")[:-1]) == truth["keep_alives"][name]
    assert truth["records"] == truth["tweets_read"] == sum(truth["records_per_file"].values())
    # a cut record: two lines, one chunk, one error; keep-alives: lines, no chunk
    assert sum(truth["lines_per_file"].values()) == \
        truth["records"] + truth["errors_by_kind"]["cut"] + sum(truth["keep_alives"].values())
    unparsed = [c for text in files.values() for c in chunks(text) if not c.parsed]
    assert len(unparsed) == truth["errors_by_kind"]["cut"]
    for c in unparsed:
        assert c.text.count("\n") == 1 and c.error is None
        with pytest.raises(ValueError):
            json.loads(c.text)


@pytest.mark.parametrize("which", ["small", "sample"])
def test_ground_truth_is_what_the_bytes_say(which, truth, files, sample_truth, sample_files):
    truth, files = (truth, files) if which == "small" else (sample_truth, sample_files)
    reader = Reader().read(files)
    assert reader.records == truth["records"]
    assert dict(reader.errors) == {k: v for k, v in truth["errors_by_kind"].items() if v}
    assert sum(reader.filtered.values()) == truth["filtered"]
    assert reader.filtered["limit"] == truth["filtered_by_kind"]["limit"]
    assert reader.filtered["delete"] == truth["filtered_by_kind"]["delete"]
    assert reader.filtered["disconnect"] == truth["filtered_by_kind"]["disconnect"]
    assert reader.filtered["operational_disconnect"] == truth["filtered_by_kind"]["operational_disconnect"]
    listed = reader.tweet_list()
    assert len(listed) == truth["tweets"] == truth["tweets_param"]
    assert len(reader.deliveries) - len(listed) == truth["duplicates"]
    fields = listed[0].keys()
    assert listed == [{k: t[k] for k in fields} for t in truth["tweet_list"]]
    originals = {t["original_id"] for t in listed}
    assert len(originals) == truth["originals"] == len(truth["original_list"])
    assert sum(t["is_retweet"] for t in listed) == truth["retweets"]
    assert truth["errors"] == sum(truth["errors_by_kind"].values())
    assert truth["filtered"] == sum(truth["filtered_by_kind"].values())
    assert truth["duplicates"] == sum(truth["duplicates_by_kind"].values())


@pytest.mark.parametrize("which", ["small", "sample"])
def test_identities(which, truth, sample_truth):
    t = truth if which == "small" else sample_truth
    assert t["records"] == t["tweets"] + t["duplicates"] + t["filtered"] + t["errors"]
    assert t["records"] == t["originals"] + (t["duplicates"] + t["retweets_folded"]) + t["filtered"] + t["errors"]
    assert t["retweets_folded"] == t["tweets"] - t["originals"]
    assert t["retweets"] == t["retweets_folded"] + t["retweet_only_originals"]
    assert all(t["identities"].values())
    ids = [x["id"] for x in t["tweet_list"]]
    assert len(ids) == len(set(ids)) == t["tweets"]
    by_original = collections.Counter(x["original_id"] for x in t["tweet_list"])
    for o in t["original_list"]:
        assert by_original[o["id"]] == o["retweets"] + o["delivered"]
    assert sum(not o["delivered"] for o in t["original_list"]) == t["retweet_only_originals"] > 0
    for x in t["tweet_list"]:
        assert x["is_retweet"] == (x["original_id"] != x["id"])
        if not x["is_retweet"]:
            assert x["original_created_at"] == x["created_at"]
        else:
            assert x["original_created_at"] <= x["created_at"]
    # the original's fields agree in every tweet that folds into it
    folded = {o["id"]: o for o in ts.fold_retweets(t["tweet_list"])}
    assert folded.keys() == {o["id"] for o in t["original_list"]}
    for o in t["original_list"]:
        f = folded[o["id"]]
        assert (f["created_at"], f["full_text"], f["hashtags"], f["intended"]) == \
            (o["created_at"], o["full_text"], o["hashtags"], o["intended"])
    for x in t["tweet_list"]:
        o = folded[x["original_id"]]
        assert (x["full_text"], x["hashtags"], x["original_created_at"], x["intended"]) == \
            (o["full_text"], o["hashtags"], o["created_at"], o["intended"])


@pytest.mark.parametrize("which", ["small", "sample"])
def test_keywords_and_windows(which, truth, sample_truth):
    t = truth if which == "small" else sample_truth
    assert t["track"] == list(ts.TRACK) and t["window_s"] == 60
    for x in t["tweet_list"] + t["original_list"]:
        assert x["keywords"] == [kw for kw in ts.TRACK if keyword_hits(x["full_text"], x["hashtags"], kw)], x
    for kw in ts.TRACK:
        assert t["keyword_tweets"][kw] == [x["id"] for x in t["tweet_list"] if kw in x["keywords"]]
        assert t["keyword_originals"][kw] == [o["id"] for o in t["original_list"] if kw in o["keywords"]]
        assert t["keyword_originals"][kw], kw  # every keyword matches something
    chatter = [o for o in t["original_list"] if o["topic"] == "chatter"]
    assert chatter and not any(o["keywords"] for o in chatter)

    def by_hand(items):  # 60 s windows aligned to the epoch: the minute of the time
        out = collections.defaultdict(collections.Counter)
        for x in items:
            for kw in x["keywords"]:
                out[x["created_at"][:16] + ":00Z"][kw] += 1
        return {w: {kw: c[kw] for kw in ts.TRACK if c[kw]} for w, c in sorted(out.items())}

    assert t["windows"] == by_hand(t["original_list"])
    assert t["windows"] == ts.window_counts(ts.fold_retweets(t["tweet_list"]))
    assert t["windows_unfolded"] == by_hand(t["tweet_list"]) == ts.window_counts(t["tweet_list"])
    assert all(o["window"] == o["created_at"][:16] + ":00Z" for o in t["original_list"])
    assert sum(sum(w.values()) for w in t["windows"].values()) == sum(map(len, t["keyword_originals"].values()))
    first, last = min(t["windows"]), max(t["windows"])
    assert t["start"][:16] <= first and last < t["end"][:16]


def test_keyword_matching_rules():
    def hit(text, tags=()):
        return ts.matches(text, list(tags))

    assert hit("Love my Nova X's camera") == ["nova x"]
    assert hit("NOVA X day") == hit("nova\n x day") == hit("Nova  X!") == ["nova x"]
    assert hit("Is the Nova XL coming?") == hit("my NovaX") == hit("supernova x") == []
    assert hit("#NovaX rocks", ["NovaX"]) == ["#novax"]
    assert hit("#novax", ["novax"]) == ["#novax"] and hit("NOVAX", []) == []  # the word is not the tag
    assert hit("#NovaXRecall now", ["NovaXRecall"]) == ["#novaxrecall"]  # not recall, not #novax
    assert hit("Recall: details", []) == hit("#Recall", ["Recall"]) == ["recall"]
    assert hit("Nova X recalled") == ["nova x"]  # no stemming
    assert hit("@Orbitel help") == ["orbitel"] and hit("@OrbitelSupport help") == []
    assert hit("battery, batteries") == ["battery"]
    assert hit("Nova X のバッテリー") == ["nova x"] and hit("Nova Xのカメラ") == []  # の is a word character
    assert ts.matches("Recall the battery", [], track=["battery", "recall"]) == ["battery", "recall"]
    assert ts.window_counts([{"created_at": "2026-11-26T14:00:59.999Z", "full_text": "recall", "hashtags": []},
                             {"created_at": ts.START + 60_000, "full_text": "recall", "hashtags": []}]) == \
        {"2026-11-26T14:00:00Z": {"recall": 1}, "2026-11-26T14:01:00Z": {"recall": 1}}


def test_times(sample_truth, sample_values):
    t = sample_truth
    by_id = {x["id"]: x for x in t["tweet_list"]}
    in_v1 = {x["id"] for x in t["tweet_list"] if "stream-v1.json" in x["files"]}
    for x in t["tweet_list"]:
        assert re.fullmatch(r"2026-11-26T1[45]:\d\d:\d\d\.\d{3}Z", x["created_at"])
        ms = ts._ms_of(x["created_at"])
        assert ts.snowflake_ms(x["id"]) // 1000 == ms // 1000  # the id knows the time
        if x["id"] not in in_v1:
            assert ms % 1000 == 0  # created_at only: whole seconds
    exact = 0
    for o in sample_values["stream-v1.json"]:
        if "id_str" in o and "timestamp_ms" in o:
            assert int(o["timestamp_ms"]) == ts.snowflake_ms(o["id_str"])
            assert "retweeted_status" not in o or "timestamp_ms" not in o["retweeted_status"]
            if o["id_str"] in by_id:
                assert by_id[o["id_str"]]["created_at"] == rfc(int(o["timestamp_ms"]))
                exact += int(o["timestamp_ms"]) % 1000 != 0
            assert dt.datetime.strptime(o["created_at"], V1_TIME).timestamp() == int(o["timestamp_ms"]) // 1000
    assert exact > 100
    assert all(o["created_at"].startswith("Thu Nov 26 1") for o in sample_values["stream-v1.json"] if "created_at" in o
               and o["created_at"] != ts.BAD_V1_TIME)


def test_sentiment_mix(sample_truth):
    launch, recall = sample_truth["periods"]["launch"], sample_truth["periods"]["recall"]
    assert launch["positive"] > 2 * launch["negative"] and launch["positive"] > launch["neutral"]
    assert recall["negative"] > 2 * recall["positive"] and recall["negative"] > recall["neutral"]
    topics = collections.defaultdict(collections.Counter)
    for o in sample_truth["original_list"]:
        topics[o["topic"]][o["intended"]] += 1
    assert topics["launch"].most_common(1)[0][0] == "positive"
    assert topics["fire"]["positive"] == 0 and topics["recall"].most_common(1)[0][0] == "negative"
    assert set(topics["chatter"]) == set(ts.SENTIMENTS)
    assert sum(sample_truth["intended"].values()) == sample_truth["tweets"]
    windows = sample_truth["sentiment_windows"]
    assert sum(sum(w.values()) for w in windows.values()) == sample_truth["originals"]
    recalls = [o["created_at"] for o in sample_truth["original_list"] if "#novaxrecall" in o["keywords"]]
    assert min(recalls) >= "2026-11-26T14:50"  # nobody says #NovaXRecall before the fires


def test_vader_scores_english_as_intended(sample_truth):
    vader = pytest.importorskip("vaderSentiment.vaderSentiment")
    analyzer = vader.SentimentIntensityAnalyzer()
    wrong = []
    checked = 0
    for o in sample_truth["original_list"]:
        if o["lang"] not in ("en", "und"):
            continue
        checked += 1
        c = analyzer.polarity_scores(o["full_text"])["compound"]
        got = "positive" if c >= 0.05 else "negative" if c <= -0.05 else "neutral"
        if got != o["intended"]:
            wrong.append((o["intended"], got, o["full_text"]))
    assert checked > 800 and len(wrong) <= checked // 100, wrong[:10]


def test_shapes_and_faults(sample_truth, sample_files, sample_values):
    t = sample_truth
    assert all(n >= 3 for n in t["errors_by_kind"].values()), t["errors_by_kind"]
    assert all(n >= 1 for n in t["filtered_by_kind"].values()) and t["filtered_by_kind"]["limit"] >= 5
    assert all(n >= 3 for n in t["duplicates_by_kind"].values()), t["duplicates_by_kind"]
    assert set(t["langs"]) == set(ts.LANGS) and min(t["langs"].values()) >= 20
    assert t["quotes"] >= 20 and t["replies"] >= 50 and t["truncated_v1"] >= 20 and t["note_tweets"] >= 3
    assert all(set(shapes) == {"original", "reply", "quote", "retweet"} for shapes in t["shapes"].values())
    v1, v2, search = (sample_values[n] for n in ("stream-v1.json", "stream-v2.json", SEARCH))
    # v1.1 stream
    statuses = [o for o in v1 if "user" in o]
    truncated = [o for o in statuses if o["truncated"]]
    assert len(truncated) >= 20
    for o in truncated:
        assert len(o["text"]) <= 140 and re.search(r"… https://t\.co/\w{10}$", o["text"])
        assert len(o["extended_tweet"]["full_text"]) > 140
        assert o["extended_tweet"]["full_text"].startswith(o["text"].rsplit("…", 1)[0])
        assert o["entities"]["urls"][-1]["expanded_url"].endswith("/status/" + o["id_str"])
    assert any(o["extended_tweet"]["entities"]["hashtags"] for o in truncated)
    retweets = [o for o in statuses if "retweeted_status" in o]
    assert len(retweets) > 100
    for o in retweets:
        rt = o["retweeted_status"]
        assert o["text"].startswith(f"RT @{rt['user']['screen_name']}: ") and len(o["text"]) <= 140
        assert "timestamp_ms" not in rt and not o["truncated"]
        assert o["entities"]["user_mentions"][0]["indices"] == [3, 4 + len(rt["user"]["screen_name"])]
    assert any(o["text"].endswith("…") and o["retweeted_status"]["truncated"] for o in retweets)
    assert any("quoted_status" in o and o["is_quote_status"] for o in statuses)
    assert all(isinstance(o["id"], int) and str(o["id"]) == o["id_str"] for o in statuses if "id" in o)
    assert {"limit", "delete", "disconnect"} <= {k for o in v1 for k in o}
    for o in v1:
        if "limit" in o:
            assert isinstance(o["limit"]["track"], int) and o["limit"]["timestamp_ms"].isdigit()
        if "delete" in o:
            s = o["delete"]["status"]
            assert str(s["id"]) == s["id_str"] and str(s["user_id"]) == s["user_id_str"]
    raw = sample_files["stream-v1.json"]
    assert "https:\\/\\/t.co\\/" in raw and "\\ud83d" in raw and "\\u2026" in raw  # \/, \uXXXX escapes
    assert not re.search(r"[^\x00-\x7f]", raw)
    # v2 stream
    tweets = [o for o in v2 if "data" in o]
    assert all(o["matching_rules"] and o["includes"]["users"][0]["id"] == o["data"].get("author_id")
               for o in tweets if "id" in o["data"])
    assert any(r["tag"] is None for o in tweets for r in o["matching_rules"])
    notes = [o for o in tweets if "note_tweet" in o["data"]]
    assert len(notes) >= 3
    for o in notes:
        assert len(o["data"]["note_tweet"]["text"]) > 280 >= len(o["data"]["text"])
        assert o["data"]["note_tweet"]["text"].startswith(o["data"]["text"][:-1])
    rts = [o for o in tweets if any(r["type"] == "retweeted" for r in o["data"].get("referenced_tweets", []))]
    assert rts and all(o["data"]["text"].startswith("RT @") and o["includes"]["tweets"] for o in rts)
    assert any("note_tweet" in inc for o in rts for inc in o["includes"]["tweets"])
    assert any(r["type"] == "quoted" for o in tweets for r in o["data"].get("referenced_tweets", []))
    assert all(V2_TIME.match(o["data"]["created_at"]) for o in tweets if o["data"]["created_at"] != ts.BAD_V2_TIME)
    disconnects = [o for o in v2 if "errors" in o]
    assert disconnects and all(e["title"] == "operational-disconnect" for o in disconnects for e in o["errors"])
    assert "😍" in sample_files["stream-v2.json"] and "\\u" not in sample_files["stream-v2.json"]  # UTF-8
    # search capture
    assert all("full_text" in o and "text" not in o and not o["truncated"] and "timestamp_ms" not in o
               and "extended_tweet" not in o and o["metadata"]["result_type"] == "recent" for o in search)
    firsts = list(dict.fromkeys(o["id"] for o in search))
    assert firsts == sorted(firsts, reverse=True)  # newest first; a page repeats the end of the last one
    assert len(search) - len(firsts) == t["duplicates_by_kind"]["search_pages"]
    assert sample_files[SEARCH].startswith('{"created_at": "Thu Nov 26 15:')  # json.dumps defaults, newest first
    assert any(len(o["full_text"]) > 140 for o in search)
    everything = "".join(sample_files.values())
    for needle in ("https://t.co/", "@Orbitel", "#NovaX", "#NovaXRecall", "Nova XL", "@OrbitelSupport"):
        assert needle in everything.replace("\\/", "/"), needle


def test_entity_indices_point_into_the_text(sample_values):
    checked = 0

    def check(text, ents, kind="v1"):
        nonlocal checked
        for h in ents.get("hashtags", []):
            s, e, tag = (*h["indices"], h["text"]) if kind == "v1" else (h["start"], h["end"], h["tag"])
            assert text[s:e] == "#" + tag
            checked += 1
        for m in ents.get("user_mentions" if kind == "v1" else "mentions", []):
            s, e, name = (*m["indices"], m["screen_name"]) if kind == "v1" else (m["start"], m["end"], m["username"])
            assert text[s:e] == "@" + name
        for u in ents.get("urls", []):
            s, e = u["indices"] if kind == "v1" else (u["start"], u["end"])
            assert text[s:e] == u["url"]

    def v1(o):
        check(o.get("text", o.get("full_text")), o["entities"])
        if "extended_tweet" in o:
            check(o["extended_tweet"]["full_text"], o["extended_tweet"]["entities"])
        for key in ("retweeted_status", "quoted_status"):
            if key in o:
                v1(o[key])

    def v2(d):
        if isinstance(d.get("text"), str):
            check(d["text"], d.get("entities", {}), "v2")
        if "note_tweet" in d:
            check(d["note_tweet"]["text"], d["note_tweet"].get("entities", {}), "v2")

    for o in sample_values["stream-v1.json"] + sample_values[SEARCH]:
        if "user" in o and isinstance(o.get("text", o.get("full_text")), str):
            v1(o)
    for o in sample_values["stream-v2.json"]:
        if "data" in o:
            v2(o["data"])
            for inc in o["includes"].get("tweets", []):
                v2(inc)
    assert checked > 500


def test_big_rule_ids_survive(sample_files):
    ids = set()
    for c in chunks(sample_files["stream-v2.json"]):
        if c.parsed and "matching_rules" in c.value:
            for rule in json.loads(c.text)["matching_rules"]:
                ids.add((type(rule["id"]).__name__, rule["id"], rule["tag"]))
    assert ids == {(type(r["id"]).__name__, r["id"], r["tag"]) for r in ts.RULES.values()}
    big = ts.RULES["nova"]["id"]
    assert big > 2**64 and int(float(big)) != big and str(big) in sample_files["stream-v2.json"]
    assert f'"id":{big},' in sample_files["stream-v2.json"]  # a bare integer, not a string
    assert ts.RULES["chatter"]["id"] > 2**53 and int(float(ts.RULES["chatter"]["id"])) != ts.RULES["chatter"]["id"]
    assert isinstance(ts.RULES["recall"]["id"], str)


@pytest.mark.parametrize("which", ["small", "sample"])
def test_line_ends(which, files, truth, sample_files, sample_truth):
    files, truth = (files, truth) if which == "small" else (sample_files, sample_truth)
    for name in STREAMS:
        text = files[name]
        assert text.endswith("\r\n") and "\r" not in text.replace("\r\n", "")
        assert text.count("\n") - text.count("\r\n") == sum(  # the stray newlines, nothing else
            1 for c in chunks(text) if not c.parsed)
        assert "\r\n\r\n" in text  # keep-alives
    assert "\r" not in files[SEARCH] and files[SEARCH].endswith("}\n") and "\n\n" not in files[SEARCH]
    assert open(os.path.join(ts.SAMPLE_DIR, ts.file_name(SEARCH)), "rb").read()[4:8] == b"\0\0\0\0"  # mtime 0


def test_ndjson_stream(files, truth):
    out = io.StringIO()
    ts.write_ndjson(out, N, SEED)
    stream = out.getvalue()
    assert stream.endswith("\r\n")
    got = chunks(stream)
    assert len(got) == truth["records"]
    assert collections.Counter(c.text for c in got) == \
        collections.Counter(c.text for text in files.values() for c in chunks(text))
    assert stream.split("\r\n").count("") - 1 == sum(truth["keep_alives"].values())
    reader = Reader().read({"all": stream})
    assert len(reader.deliveries) == truth["tweets"] + truth["duplicates"]


def test_scales_to_100k_tweets():
    start = time.process_time()
    out = ts.generate(100_000, 1)
    spent = time.process_time() - start
    assert spent < 15, f"{spent:.1f} s of CPU for 100k tweets"
    assert sum(len(c) for c in out["stream-v1.json"]) > 50_000_000


def test_cli(tmp_path, capsys):
    assert cli.main([]) == 0
    assert "tweet_sentiment\t" in capsys.readouterr().out
    env = dict(os.environ, PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, "-m", "pipelines.samples", "tweet_sentiment", "--tweets", "150",
                          "--seed", "2", "--out", f"{tmp_path}/d/"], cwd=ROOT, env=env, capture_output=True)
    assert out.returncode == 0, out.stderr
    expected = ts.generate(150, 2)
    assert sorted(os.listdir(tmp_path / "d")) == sorted(ts.file_name(n) for n in expected)
    for name, text in expected.items():
        assert _read(tmp_path / "d" / ts.file_name(name)) == "".join(text)
    out = subprocess.run(f"{sys.executable} -m pipelines.samples tweet_sentiment | head -3",
                         shell=True, cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0 and out.stderr == "" and len(out.stdout.splitlines()) == 3
