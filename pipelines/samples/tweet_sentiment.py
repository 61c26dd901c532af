"""Synthetic tweets about a phone launch and its recall, for the tweet_sentiment job.

The story, 2026-11-26 14:00:00Z to 16:00:00Z: the (fictional) maker Orbitel puts its "Nova X"
phone on sale at 14:00 and the launch is mostly cheered (``#NovaX``, "love the camera"). From
14:50 people report batteries overheating and catching fire; at ANNOUNCE (15:12:30) Orbitel
announces a recall and the talk turns mostly negative (``#NovaXRecall``, recall, battery,
fire, refund). Unrelated chatter (Thanksgiving, football, Black Friday) runs all along and
matches none of the TRACK keywords. English tweets are written with clear sentiment words, so
an offline lexicon model (VADER 3.3.2, compound >= 0.05 positive, <= -0.05 negative) scores
them as ``intended``; some are Spanish, German or Japanese, some ``lang: "und"`` (only
hashtags, mentions, emoji and links). Tweets carry ``https://t.co/...`` links, @mentions,
hashtags, emoji, line breaks (``\\n`` escapes), replies and quote tweets. Tweet ids are
snowflakes: ``id >> 22`` plus TWITTER_EPOCH is the tweet's creation time in ms.

Three captures, one JSON record per line (``<dir>/*.json*``):

* ``stream-v1.json``, CRLF: the v1.1 streaming API (``statuses/filter``) as curl saved it:
  compact JSON with non-ASCII as ``\\uXXXX`` and ``/`` as ``\\/``. Statuses have
  ``created_at`` ("Thu Nov 26 14:03:12 +0000 2026", second precision), ``id`` and ``id_str``,
  ``text``, ``truncated``, ``user``, ``entities`` (hashtags ``{"text", "indices"}``, urls,
  user_mentions, symbols), ``lang``, ``source``, counts, ``timestamp_ms`` (a string, ms).
  Tweets longer than 140 characters are ``truncated``: ``text`` is cut to 140 ending in
  "… https://t.co/xxxxxxxxxx" and ``extended_tweet`` holds ``full_text``,
  ``display_text_range`` and the full ``entities``. A retweet's own ``text`` is
  "RT @user: ..." cut to 140 ending in "…"; ``retweeted_status`` nests the whole original
  (with no ``timestamp_ms``: nested statuses never have one). Quote tweets nest
  ``quoted_status``. Also: ``{"limit": {"track": N, "timestamp_ms"}}``,
  ``{"delete": {"status": {...}, "timestamp_ms"}}`` and ``{"disconnect": {...}}`` notices.
* ``stream-v2.json``, CRLF: the v2 filtered stream: ``{"data": {...}, "includes": {"users":
  [...], "tweets": [...]}, "matching_rules": [...]}``, compact UTF-8. ``data`` keys sorted as
  the API writes them: ``author_id``, ``created_at`` ("2026-11-26T14:03:12.000Z": the API
  always writes .000), ``entities`` (hashtags ``{"start", "end", "tag"}``), ``id``, ``lang``,
  ``referenced_tweets`` (``retweeted``, ``quoted``, ``replied_to``), ``text``. Texts are not
  truncated up to 280 characters; longer "note tweets" cut ``text`` and give the whole in
  ``note_tweet.text`` (with ``note_tweet.entities``). A retweet's ``text`` is "RT @user: ..."
  cut to 140 ending in "…"; the original is in ``includes.tweets``. RULES: rule ids are a
  string, a bare JSON integer above 2**64 and one above 2**53 (a double cannot hold either;
  parse with Python's json, not via float), tags a string or null. Also errors-only records
  ``{"errors": [{"title": "operational-disconnect", ...}]}``.
* ``search-v1.json.gz``, gzipped, LF: a saved v1.1 search (``search/tweets``,
  ``tweet_mode=extended``) as a Python script dumps it (``json.dumps``: ", " and ": "
  separators): newest first, ``full_text`` and ``display_text_range`` instead of ``text``
  (never ``truncated``, no ``extended_tweet``; a retweet's ``full_text`` is cut like its
  ``text`` in the stream), ``metadata``, no ``timestamp_ms``, no notices. Some of its tweets
  were also captured by the v1 stream, and overlapping result pages repeat a few.

Faults, all counted in ``ground_truth``: keep-alive blank lines (``\\r\\n`` alone, not records:
the reader skips them); filtered records (FILTERED_KINDS: limit, delete, v1 disconnect, v2
operational-disconnect); duplicates (DUPLICATE_KINDS: after each disconnect the reconnected
stream replays the last few tweets byte for byte; search pages overlap; search and v1 stream
overlap); errors (ERROR_KINDS): a record cut in two by a stray newline inside its text (the
shared splitter joins the halves into ONE chunk that does not parse: one error), a status
with neither ``id`` nor ``id_str`` (v1) or a ``data`` without ``id`` (v2), ``created_at``
that does not parse ("Thu Nov 26 25:71:09 +0000 2026", "2026-11-26T25:71:09.000Z"; such a
v1 status has no ``timestamp_ms`` either, so it has no time at all) and ``text`` that is not
a string (null in v1, a number in v2). Deletion notices do not remove the deleted tweet from
the truth. Each cut or malformed record is a tweet of its own that appears nowhere else.

Definitions the job is compared against (``ground_truth`` and the reference functions below):

* A tweet is a valid top-level status (v1) or ``data`` object (v2); its id is ``id_str``
  (v2 ``id``). ``tweets`` counts unique ids; every further delivery of an id is a duplicate.
  ``records = tweets + duplicates + filtered + errors``.
* Full text: v1 ``extended_tweet.full_text``, else ``full_text`` (search), else ``text``; v2
  ``note_tweet.text``, else ``text``. Hashtags: the ``entities`` belonging to that text
  (``extended_tweet.entities``, ``note_tweet.entities``, else ``entities``), without ``#``.
  For a retweet both are the ORIGINAL's (its own text is cut).
* Time: a tweet's time is its ``timestamp_ms`` when any v1 stream record of that tweet as the
  top-level status carries one, else its ``created_at`` (v1: seconds; v2: .000). All of them
  agree to the second, so a 60 s window never depends on which record is read.
* Retweets fold into their original: ``originals`` = the unique ids after mapping each
  retweet to its original's id (an original counts even when only its retweets were
  delivered; its time and text then come from the nested copy). A quote or a reply is a
  tweet of its own. ``retweets_folded = tweets - originals``: the unique tweet ids that
  landed on an original already counted (its own delivery or another retweet of it);
  ``retweets = retweets_folded + retweet_only_originals``. Hence
  ``records = originals + (duplicates + retweets_folded) + filtered + errors``.
* Keywords (``matches``): casefolded, a ``#tag`` keyword matches a tweet whose hashtags
  include that tag exactly (``#novax`` matches #NovaX and #novax, not #NovaXRecall nor the
  word "novax"); a plain keyword of one or more words matches the full text where its words,
  separated by any whitespace, stand between non-word characters (Python ``\\w``, Unicode),
  or a hashtag equal to it. No stemming: ``recall`` matches "Recall", "#Recall", "recall:",
  not "recalled" nor "#NovaXRecall"; ``nova x`` matches "NOVA X", "Nova X's", not "NovaX" nor
  "Nova XL"; ``orbitel`` matches "@Orbitel", not "@OrbitelSupport".
* Windows (``window_counts``): tumbling WINDOW_S windows aligned to the epoch, by each
  original's time; per window and keyword the number of originals whose full text matches.
  ``windows_unfolded`` counts every unique tweet at its own time instead (a retweet matched
  against its original's text).

Layout: ``write_dir(path, tweets, seed)`` writes the three files; ``write_ndjson(fileobj,
tweets, seed)`` writes every record (and keep-alive) of both streams in arrival order, then
the search capture, as one CRLF stream. ``generate(tweets, seed)`` returns the files'
text chunks; ``tweets`` is the number of unique valid tweets (at least MIN_TWEETS), exactly
``ground_truth(...)["tweets"]``; 100,000 (about 155 MB) take seconds. Standard library only and
deterministic per seed, so the bundled sample regenerates byte for byte.
"""
from __future__ import annotations

import bisect
import contextlib
import datetime as _dt
import gc
import json
import os
import random
import re

from pipelines.samples import files

SECOND = 1000  # times are epoch milliseconds, like timestamp_ms and snowflake ids
MINUTE = 60 * SECOND
START = int(_dt.datetime(2026, 11, 26, 14, tzinfo=_dt.UTC).timestamp()) * SECOND
END = START + 120 * MINUTE
FIRST_FIRE = START + 50 * MINUTE  # the first battery fire reports
RECALL_PERIOD = START + 60 * MINUTE  # launch period [START, RECALL_PERIOD), recall period after
ANNOUNCE = START + 72 * MINUTE + 30 * SECOND  # Orbitel announces the recall
TWITTER_EPOCH = 1288834974657  # snowflake: id = (ms - TWITTER_EPOCH) << 22 | worker << 12 | seq
SAMPLE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tweet_sentiment")
SAMPLE_TWEETS, SAMPLE_SEED = 1500, 26  # the bundled SAMPLE_DIR
MIN_TWEETS = 100  # fewer cannot hold every shape and fault
TRACK = ("nova x", "#novax", "#novaxrecall", "orbitel", "recall", "battery")
WINDOW_S = 60
SENTIMENTS = ("positive", "negative", "neutral")
TOPICS = ("launch", "fire", "recall", "chatter")
LANGS = ("en", "es", "de", "ja", "und")
FILES = {"v1": "stream-v1.json", "v2": "stream-v2.json", "search": "search-v1.json"}
GZIPPED = ("search-v1.json",)
CRLF = ("stream-v1.json", "stream-v2.json")
FILTERED_KINDS = ("limit", "delete", "disconnect", "operational_disconnect")
ERROR_KINDS = ("cut", "no_id", "bad_created_at", "text_not_string")
DUPLICATE_KINDS = ("backfill_v1", "backfill_v2", "search_pages", "search_and_stream")
# v2 stream rules; which ones a record lists follows from TRACK-style matching of its text
RULES = {
    "nova": {"id": 1587365452118724608123, "tag": "nova"},  # a bare integer above 2**64
    "recall": {"id": "1587365452118724609", "tag": "recall"},  # a string, as the API writes ids
    "chatter": {"id": 9007199254740993, "tag": None},  # 2**53 + 1: a double rounds it
}
RULE_KEYWORDS = {"nova": ("nova x", "#novax", "orbitel"), "recall": ("recall", "battery", "#novaxrecall")}
_RULE_TRACK = RULE_KEYWORDS["nova"] + RULE_KEYWORDS["recall"]
BAD_V1_TIME, BAD_V2_TIME = "Thu Nov 26 25:71:09 +0000 2026", "2026-11-26T25:71:09.000Z"
TOPIC_SHARE = {"launch": 0.38, "fire": 0.14, "recall": 0.23, "chatter": 0.25}
MIX = {  # intended sentiment shares per topic
    "launch": {"positive": 0.70, "negative": 0.12, "neutral": 0.18},
    "fire": {"positive": 0.0, "negative": 0.80, "neutral": 0.20},
    "recall": {"positive": 0.10, "negative": 0.65, "neutral": 0.25},
    "chatter": {"positive": 0.35, "negative": 0.20, "neutral": 0.45},
}
LANG_SHARE = {"en": 0.82, "es": 0.07, "de": 0.05, "ja": 0.06}  # of users; "und" is per tweet
UND_SHARE = 0.04
LONG_SHARE = 0.12  # two or three sentences: over 140 characters, truncated in v1
V1, V2, SEARCH = "v1", "v2", "search"

POS_EMOJI = ("😍", "😀", "✨", "🎉", "😍😍", "🎉🎉")  # VADER scores these positive
NEG_EMOJI = ("😱", "😢", "😭", "😬", "😨", "😭😭", "😱😱")  # and these negative
DECO_EMOJI = ("🙌", "👏", "❤️", "🤩", "💯")  # positive to people, 0 to VADER
ANGRY_EMOJI = ("😡", "🤬", "💀", "👎")  # negative to people, 0 to VADER
NEUTRAL_EMOJI = ("📱", "👀", "🤔", "📦")
FIRE_EMOJI = ("🔥", "🔥🔥", "🚒")  # VADER: negative
CHATTER_EMOJI = ("🦃", "🏈", "🥧", "☕")
CHATTER_TAGS = ("#Thanksgiving", "#BlackFriday", "#NFL", "#HappyThanksgiving", "#ThanksgivingDay")
COLORS = ("midnight blue", "glacier white", "graphite", "sunset orange")
PRICE = "$1,199"

# Sentences per language, topic and intended sentiment. Slots: {nx} Nova X (spelled several
# ways), {NX} #NovaX, {RC} #NovaXRecall, {orb} Orbitel or @Orbitel, {ORB} @Orbitel, {sup}
# @OrbitelSupport, {who} @someone, {url} a t.co link, {price}, {color}.
BANK = {
    "en": {
        "launch": {
            "positive": (
                "Just got my {nx} and the camera is unreal. Love it!",
                "The {nx} camera is amazing, night shots look incredible.",
                "Unboxed the {nx} today. Gorgeous screen, super fast, and I love the camera.",
                "Wow, {orb} nailed it. The {nx} is the best phone I have ever owned.",
                "Battery life on the {nx} is excellent so far, easily a full day. Very happy.",
                "Preordered the {nx} in {color}, so excited!!",
                "{nx} reviews are great: stunning display, brilliant camera, fair price {url}",
                "Love the camera on the {nx}. Portrait mode is beautiful.",
                "Switched to the {nx} this morning and honestly it's fantastic.",
                "The {nx} feels so premium in the hand. Great job {orb}!",
                "Finally! My {nx} arrived and it is perfect.",
                "Hands-on with the {nx}: smooth, bright, and the zoom is impressive {url}",
                "{who} you have to try the {nx} camera, it's awesome.",
                "Congrats to the {orb} team on the {nx} launch, well deserved!",
                "I love how light the {nx} is. Best upgrade in years.",
                "The {nx} battery is a big win, and charging is super fast too.",
                "Great screen, great camera, great price. The {nx} is a winner.",
            ),
            "negative": (
                "The {nx} launch was a mess. The {orb} store crashed and my order failed.",
                "No headphone jack on the {nx}? Disappointing.",
                "{price} for the {nx}? That's ridiculous pricing.",
                "Hate that the {nx} only comes in three boring colors.",
                "My {nx} preorder got cancelled. Terrible experience, {orb}.",
                "The {nx} is way too expensive for what it is. Bad value, and the battery is sealed in.",
                "Ugly camera bump on the {nx}, sorry but no.",
                "Waited two hours in line for the {nx} and they sold out. Awful.",
            ),
            "neutral": (
                "{orb} {nx} launches today. Specs: 6.7 inch display, 5000 mAh battery, 200 MP camera {url}",
                "Watching the {nx} keynote {url}",
                "The {nx} ships in black, silver and {color}.",
                "Is the Nova XL coming later this year?",
                "{nx} preorders open at 14:00 UTC on the {orb} site {url}",
                "Anyone picking up the {nx} today?",
                "Which storage size of the {nx} should I get, 256 or 512?",
                "Live blog: {orb} presents the {nx} {url}",
                "The {nx} uses a 5000 mAh battery and 65 W charging.",
                "Comparing the {nx} with last year's model {url}",
                "In line at the store for the {nx}.",
            ),
        },
        "fire": {
            "positive": (),
            "negative": (
                "My {nx} caught fire on the charger. Scary!",
                "Reports of {nx} batteries catching fire. This is terrible, stop charging it overnight.",
                "The battery in my {nx} got dangerously hot and smells burnt. Not safe.",
                "Is anyone else's {nx} overheating? Mine burned my hand. Painful and scary.",
                "Saw a video of a {nx} exploding on a desk. Horrible {url}",
                "Two days of excitement and now my {nx} is a fire hazard. Awful.",
                "Why is the {nx} battery swelling, {orb}? Really worried and angry.",
                "My brother's {nx} burst into flames in his car. Unbelievable and dangerous.",
                "Scared to even touch my {nx} now. This is a nightmare.",
            ),
            "neutral": (
                "{orb} says it is investigating reports about the {nx} battery {url}",
                "Reports say some {nx} batteries overheat while charging {url}",
                "Has {orb} said anything about the {nx} battery reports yet?",
                "Waiting for an update from {orb} about the {nx} battery.",
            ),
        },
        "recall": {
            "positive": (
                "Good on {orb} for a fast recall and full refunds. That's how you handle it.",
                "{sup} was great, refund approved in ten minutes. Thank you!",
                "Respect to {orb} for putting safety first with the {nx} recall.",
                "Glad {orb} acted quickly on the recall. Refund already in my account, nice.",
                "Honestly impressed by how well {orb} is handling the recall.",
            ),
            "negative": (
                "{orb} should be ashamed. Battery fires and a recall on launch day? Disgraceful.",
                "So angry. Paid {price} for a phone that might explode. I want a refund {sup}",
                "Worst launch ever: {nx} recall, battery fires, and no refund info. Awful.",
                "Returned my {nx}. What a disaster, I am done with {orb}.",
                "The {nx} recall is a complete failure of quality control. Shameful.",
                "Been on hold with {sup} for an hour about the recall. Terrible support.",
                "{orb} sold me a fire hazard. Never buying from them again, disgusting.",
                "The recall page keeps crashing and there is still no word on refunds. Frustrating.",
                "Cannot believe the {nx} had to be recalled. Such a disappointment.",
                "A recall on day one. Embarrassing and dangerous, {orb}.",
            ),
            "neutral": (
                "{orb} announces a voluntary recall of the {nx} {url}",
                "{nx} recall: owners should power off the phone and contact {orb} {url}",
                "How do I check if my {nx} is part of the recall?",
                "{orb} is recalling all {nx} units sold since launch {url}",
                "Recall details for the {nx}: take it back to the store where you bought it {url}",
                "What happens to preorders now that the {nx} is recalled?",
                "Does the recall cover phones bought in Europe?",
                "Packing up my {nx} for the recall.",
            ),
        },
        "chatter": {
            "positive": (
                "Happy Thanksgiving everyone! So grateful for family and good food.",
                "This pumpkin pie is amazing.",
                "Great game today, what a win!",
                "Best Thanksgiving dinner ever, thanks mom.",
                "Lovely sunny afternoon for a walk.",
                "My team won! Fantastic game.",
                "Found a great deal on a new coffee maker, so happy.",
            ),
            "negative": (
                "Stuck in traffic for two hours. I hate this.",
                "My flight got cancelled. Worst day ever.",
                "Burned the turkey again. What a disaster.",
                "So tired of all these Black Friday ads, annoying.",
                "Terrible defense today, a painful loss.",
                "The store was out of stuffing. Sad.",
            ),
            "neutral": (
                "Heading to my parents' place for dinner.",
                "Black Friday deals start tomorrow {url}",
                "Anyone watching the game tonight?",
                "Kickoff in ten minutes.",
                "Traffic update for the I-95 {url}",
                "Leftovers for lunch tomorrow.",
                "Turkey is in the oven, dinner at six.",
            ),
        },
    },
    "es": {
        "launch": {
            "positive": ("¡Me encanta el {nx}! La cámara es increíble", "El {nx} es precioso, la pantalla es espectacular"),
            "negative": ("{price} por el {nx}? Qué caro, una decepción",),
            "neutral": ("{orb} presenta hoy el {nx} {url}",),
        },
        "fire": {
            "positive": (),
            "negative": ("Mi {nx} se incendió mientras cargaba. ¡Qué miedo!", "La batería del {nx} se calienta muchísimo, es peligroso"),
            "neutral": ("{orb} investiga los informes sobre la batería del {nx} {url}",),
        },
        "recall": {
            "positive": ("Bien por {orb}, reembolso completo y rápido",),
            "negative": ("Vergonzoso. {orb} retira el {nx} y nadie responde sobre el reembolso",),
            "neutral": ("{orb} anuncia la retirada del {nx} {url}",),
        },
        "chatter": {
            "positive": ("¡Qué buen partido hoy!",),
            "negative": ("Odio el tráfico de hoy",),
            "neutral": ("Mañana empieza el Black Friday",),
        },
    },
    "de": {
        "launch": {
            "positive": ("Das {nx} ist der Hammer, die Kamera ist super!", "Endlich mein {nx} ausgepackt. Wunderschönes Display"),
            "negative": ("Viel zu teuer, das {nx}. Enttäuschend",),
            "neutral": ("{orb} stellt heute das {nx} vor {url}",),
        },
        "fire": {
            "positive": (),
            "negative": ("Mein {nx} Akku ist heiß geworden und hat gebrannt. Gefährlich!",),
            "neutral": ("{orb} prüft Berichte über den Akku des {nx} {url}",),
        },
        "recall": {
            "positive": ("Schnelle Erstattung von {orb}, danke!",),
            "negative": ("Rückruf am ersten Tag? Peinlich, {orb}. Ich will mein Geld zurück",),
            "neutral": ("{orb} ruft das {nx} zurück {url}",),
        },
        "chatter": {
            "positive": ("Schönes Wetter heute, herrlich",),
            "negative": ("Der Zug hat schon wieder Verspätung, nervig",),
            "neutral": ("Gleich gibt es Abendessen",),
        },
    },
    "ja": {
        "launch": {
            "positive": ("{nx} のカメラ最高！", "{nx} 買った！画面がめちゃくちゃ綺麗"),
            "negative": ("{nx} 高すぎる…残念",),
            "neutral": ("{orb} が {nx} を発表 {url}",),
        },
        "fire": {
            "positive": (),
            "negative": ("{nx} のバッテリーが発火したらしい…怖い",),
            "neutral": ("{orb} が {nx} のバッテリーについて調査中 {url}",),
        },
        "recall": {
            "positive": ("{orb} の対応が早くて助かった",),
            "negative": ("{nx} リコールとか最悪",),
            "neutral": ("{orb} が {nx} のリコールを発表 {url}",),
        },
        "chatter": {
            "positive": ("今日のご飯美味しかった",),
            "negative": ("電車遅延…最悪",),
            "neutral": ("今から帰ります",),
        },
    },
    "und": {  # no words: hashtags, mentions, emoji, links
        "launch": {
            "positive": ("{NX} 😍😍", "{NX} 🎉🎉🎉", "😍 {url}", "{NX} ✨😍 {url}"),
            "negative": ("{NX} 😭", "{ORB} 😢😢"),
            "neutral": ("{NX} {url}", "👀 {NX}", "{NX} 📱"),
        },
        "fire": {
            "positive": (),
            "negative": ("{NX} 😱", "{NX} 🔥🔥😱", "{ORB} 😨 {url}"),
            "neutral": ("{NX} {url}", "🤔 {NX}"),
        },
        "recall": {
            "positive": ("{RC} 😀",),
            "negative": ("{RC} 😭😭", "{ORB} 😱😱", "{RC} 😨 {url}"),
            "neutral": ("{RC} {url}", "{RC} 👀"),
        },
        "chatter": {
            "positive": ("#Thanksgiving 🦃🎉", "🥧😍"),
            "negative": ("#BlackFriday 😭",),
            "neutral": ("🦃🦃🦃", "#BlackFriday {url}"),
        },
    },
}
LINKS = {  # where t.co links lead, by topic
    "launch": ("https://orbitel.example/nova-x", "https://gadgetwire.example/2026/11/26/nova-x-review",
               "https://www.youtube.com/watch?v=N0vaXk3yn0t", "https://techdaily.example/live/orbitel-nova-x"),
    "fire": ("https://gadgetwire.example/2026/11/26/nova-x-battery-reports", "https://www.youtube.com/watch?v=b4tt3ryF1r3"),
    "recall": ("https://orbitel.example/recall", "https://orbitel.example/support/nova-x-refund",
               "https://techdaily.example/2026/11/26/orbitel-recalls-nova-x"),
    "chatter": ("https://deals.example/black-friday", "https://traffic.example/i-95", "https://www.nfl.example/live"),
}
ORBITEL_LAUNCH = ("The wait is over. Meet Nova X, our best phone yet: a 200 MP camera, an all-day battery and "
                  "a stunning 6.7 inch display. Available now! #NovaX {url}")
ORBITEL_STATEMENT = (  # a note tweet (over 280 characters): the v2 stream only
    "Nova X voluntary recall.\n\nWe have received reports of Nova X batteries overheating while charging. "
    "Orbitel is recalling all Nova X phones sold since launch.\n\nIf you own a Nova X, power it off, unplug "
    "it and visit our recall page to arrange a return and refund: {url}\n\nMore updates will "
    "follow on this account. #NovaXRecall")
SUPPORT_TWEET = "Nova X owners: power off the phone and contact us. Recall and refund details: {url} #NovaXRecall"

FIRST_NAMES = {
    "en": ("Emma", "Liam", "Olivia", "Noah", "Ava", "Ethan", "Mia", "Lucas", "Chloe", "Mason", "Zoë", "Jack",
           "Grace", "Owen", "Priya", "Marcus", "Hannah", "Tyler", "Aisha", "Connor"),
    "es": ("María", "Javier", "Lucía", "Carlos", "Sofía", "Diego", "Valentina", "Andrés"),
    "de": ("Jürgen", "Anna", "Lukas", "Lena", "Felix", "Marie", "Jonas", "Sophie"),
    "ja": ("さくら", "翔太", "陽菜", "大輝", "美咲", "蓮"),
}
LAST_NAMES = {
    "en": ("Smith", "Johnson", "Brown", "Taylor", "Miller", "Wilson", "Clarke", "Walker", "Patel", "Nguyen",
           "O'Brien", "Reyes"),
    "es": ("García", "Martínez", "López", "Fernández", "Sánchez", "Pérez"),
    "de": ("Müller", "Schmidt", "Schneider", "Weiß", "Becker", "Hoffmann"),
    "ja": ("田中", "佐藤", "鈴木", "高橋", "伊藤"),
}
ROMAJI = {"さくら": "sakura", "翔太": "shota", "陽菜": "hina", "大輝": "daiki", "美咲": "misaki", "蓮": "ren",
          "田中": "tanaka", "佐藤": "sato", "鈴木": "suzuki", "高橋": "takahashi", "伊藤": "ito"}
LOCATIONS = {"en": ("Austin, TX", "London", "Toronto", "Chicago", "", "Sydney", "Seattle, WA", "Dublin"),
             "es": ("Madrid", "Ciudad de México", "Buenos Aires", ""), "de": ("Berlin", "München", "Wien", ""),
             "ja": ("東京", "大阪", "")}
SOURCES = (
    ('<a href="http://twitter.com/download/iphone" rel="nofollow">Twitter for iPhone</a>', 0.45),
    ('<a href="http://twitter.com/download/android" rel="nofollow">Twitter for Android</a>', 0.35),
    ('<a href="https://mobile.twitter.com" rel="nofollow">Twitter Web App</a>', 0.15),
    ('<a href="https://about.twitter.com/products/tweetdeck" rel="nofollow">TweetDeck</a>', 0.03),
    ('<a href="https://www.hootsuite.com" rel="nofollow">Hootsuite Inc.</a>', 0.02),
)
SPECIALS = (  # screen name, name, followers, verified
    ("Orbitel", "Orbitel", 2_431_000, True),
    ("OrbitelSupport", "Orbitel Support", 388_000, True),
    ("gadgetwire", "GadgetWire", 912_000, True),
    ("techdaily", "Tech Daily", 455_000, True),
    ("PhoneBuzz", "PhoneBuzz 📱", 120_000, False),
)

HASHTAG = re.compile(r"(?<![\w#&])#(\w*[^\W\d]\w*)")
MENTION = re.compile(r"(?<![\w@])@([A-Za-z0-9_]{1,15})(?![A-Za-z0-9_])")
TCO = re.compile(r"https://t\.co/[A-Za-z0-9]{10}")
SLOT = re.compile(r"\{(\w+)\}")
PART = re.compile(r'"\\u0000(\w+)"')  # a part rendered once, as json.dumps writes its placeholder
ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_SEC_CACHE: dict[int, tuple[str, str]] = {}


def _second(sec: int) -> tuple[str, str]:
    """(RFC 3339 "2026-11-26T14:03:12", v1.1 "Thu Nov 26 14:03:12 +0000 2026") for epoch seconds."""
    out = _SEC_CACHE.get(sec)
    if out is None:
        d = _dt.datetime.fromtimestamp(sec, _dt.UTC)
        clock = f"{d.hour:02d}:{d.minute:02d}:{d.second:02d}"
        out = _SEC_CACHE[sec] = (f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{clock}",
                                 f"{DAYS[d.weekday()]} {MONTHS[d.month - 1]} {d.day:02d} {clock} +0000 {d.year}")
    return out


def rfc3339_ms(ms: int) -> str:
    """Epoch ms -> "2026-11-26T14:03:12.345Z" (how ground_truth writes times)."""
    return f"{_second(ms // SECOND)[0]}.{ms % SECOND:03d}Z"


def v1_time(ms: int) -> str:
    """Epoch ms -> v1.1 created_at, "Thu Nov 26 14:03:12 +0000 2026" (the second only)."""
    return _second(ms // SECOND)[1]


def v2_time(ms: int) -> str:
    """Epoch ms -> v2 created_at, "2026-11-26T14:03:12.000Z" (the API writes whole seconds)."""
    return _second(ms // SECOND)[0] + ".000Z"


def window_start(ms: int, size_s: int = WINDOW_S) -> str:
    """The start of the tumbling window an epoch-ms time falls in: "2026-11-26T14:03:00Z"."""
    size = size_s * SECOND
    return _second((ms - ms % size) // SECOND)[0] + "Z"


def snowflake_ms(tweet_id) -> int:
    """The creation time (epoch ms) a tweet id encodes."""
    return (int(tweet_id) >> 22) + TWITTER_EPOCH


# -- the reference implementation of keyword matching and windows ---------------------------

_MATCHERS: dict[tuple, list] = {}


def _matchers(track) -> list:
    """[(keyword, tag or None, regex or None)] for a track list, compiled once."""
    key = tuple(track)
    out = _MATCHERS.get(key)
    if out is None:
        out = []
        for keyword in key:
            kw = " ".join(keyword.casefold().split())
            if kw.startswith("#"):
                out.append((keyword, kw[1:], None))
            else:
                words = r"\s+".join(re.escape(w) for w in kw.split(" "))
                out.append((keyword, kw, re.compile(r"(?<!\w)" + words + r"(?!\w)")))
        _MATCHERS[key] = out
    return out


def matches(full_text: str, hashtags, track=TRACK) -> list[str]:
    """The keywords of `track` (in its order) that a tweet matches. `hashtags` without '#'.
    A "#tag" keyword: one of the hashtags equals tag, casefolded. A plain keyword (words
    separated by spaces): casefolded, its words separated by any whitespace (\\s+) with no
    word character (\\w) right before or after, somewhere in the full text; or a hashtag
    equal to it."""
    text = full_text.casefold()
    tags = {h.casefold() for h in hashtags}
    return [keyword for keyword, kw, rx in _matchers(track)
            if kw in tags or (rx is not None and rx.search(text) is not None)]


def fold_retweets(tweet_list) -> list[dict]:
    """ground_truth's tweet_list -> one item per original (retweets mapped to their original,
    each original once): {"id", "created_at", "full_text", "hashtags", "intended"}."""
    out = {}
    for t in tweet_list:
        if t["original_id"] not in out:
            out[t["original_id"]] = {"id": t["original_id"], "created_at": t["original_created_at"],
                                     "full_text": t["full_text"], "hashtags": t["hashtags"], "intended": t["intended"]}
    return sorted(out.values(), key=lambda o: (o["created_at"], int(o["id"])))


def _ms_of(rfc: str) -> int:
    """"2026-11-26T14:03:12.345Z" (or without the fraction) -> epoch ms."""
    d = _dt.datetime(int(rfc[0:4]), int(rfc[5:7]), int(rfc[8:10]), int(rfc[11:13]), int(rfc[14:16]),
                     int(rfc[17:19]), tzinfo=_dt.UTC)
    return int(d.timestamp()) * SECOND + (int(rfc[20:23]) if rfc[19] == "." else 0)


def window_counts(items, track=TRACK, size_s: int = WINDOW_S) -> dict[str, dict[str, int]]:
    """{window start: {keyword: count}} over items with "created_at" (RFC 3339 with ms, or
    epoch ms), "full_text" and "hashtags": each item counts once in the window of its time
    for every keyword it matches. Only non-zero counts; windows ascending, keywords in
    `track` order."""
    return _tally((((it["created_at"] if isinstance(it["created_at"], int) else _ms_of(it["created_at"])),
                    matches(it["full_text"], it["hashtags"], track)) for it in items), track, size_s)


def _tally(pairs, track, size_s: int) -> dict[str, dict[str, int]]:
    """(epoch ms, matched keywords) pairs -> window_counts' result."""
    acc: dict[str, dict[str, int]] = {}
    for ms, kws in pairs:
        if kws:
            w = acc.setdefault(window_start(ms, size_s), {})
            for kw in kws:
                w[kw] = w.get(kw, 0) + 1
    return {w: {kw: acc[w][kw] for kw in track if kw in acc[w]} for w in sorted(acc)}


# -- the generator ---------------------------------------------------------------------------


class User:
    __slots__ = ("id", "name", "screen_name", "lang", "created_ms", "followers", "friends", "listed", "favs",
                 "statuses", "verified", "location", "image", "source", "v1")


class Tweet:
    """One tweet as it was posted (records render it in each shape)."""
    __slots__ = ("id", "ms", "user", "lang", "text", "intended", "topic", "original", "quoted", "reply_to",
                 "note", "channel", "source", "likes", "rts", "weight", "ents", "kind")

    def __init__(self, ms, user, lang, text, intended, topic, kind="original"):
        self.id, self.ms, self.user, self.lang, self.text = 0, ms, user, lang, text
        self.intended, self.topic, self.kind = intended, topic, kind
        self.original = self.quoted = self.reply_to = None
        self.note, self.channel, self.source = False, None, user.source
        self.likes = self.rts = 0
        self.weight, self.ents = 1.0, None  # ents: _entities(text)


class Rec:
    """One line of a file: a record (tweet, filtered, error) or a keep-alive."""
    __slots__ = ("key", "kind", "fault", "tweet", "text")

    def __init__(self, key, kind, text, tweet=None, fault=None):
        # key: arrival order in a stream (ms); kind: tweet, filtered, error or keepalive; fault: the
        # FILTERED_KINDS / ERROR_KINDS / DUPLICATE_KINDS entry it counts under (None: a first delivery)
        self.key, self.kind, self.fault, self.tweet, self.text = key, kind, fault, tweet, text


def _entities(text: str, known: dict, links: dict):
    """(hashtags, mentions, urls) of a text as (start, end, value) in code points."""
    tags = [(m.start(), m.end(), m.group(1)) for m in HASHTAG.finditer(text)] if "#" in text else []
    mentions = [(m.start(), m.end(), known[m.group(1).lower()]) for m in MENTION.finditer(text)
                if m.group(1).lower() in known] if "@" in text else []
    urls = [(m.start(), m.end(), m.group()) for m in TCO.finditer(text) if m.group() in links] if "t.co" in text else []
    return tags, mentions, urls


class _Gen:

    def __init__(self, rng: random.Random, n: int):
        self.rng, self.n = rng, n
        self.ids: set[int] = set()
        self.links: dict[str, str] = {}  # t.co -> expanded
        self.known: dict[str, User] = {}  # screen name, lowercased -> user
        self.users_by_lang: dict[str, list[User]] = {}
        self.specials: dict[str, User] = {}
        self.k = max(2, n // 300)
        self.parts: dict[str, dict[str, str]] = {V1: {}, V2: {}, SEARCH: {}}  # key -> JSON text, per shape
        self.templates: dict[str, list[tuple[str, str | None]]] = {}
        self.rules: dict[int, list[dict]] = {}  # original id -> the v2 rules its text matches

    def part(self, shape: str, key: str, make) -> str:
        """A placeholder for a JSON value that repeats (a user, a nested status): rendered once
        per shape with make(), spliced in by dump()."""
        cache = self.parts[shape]
        if key not in cache:
            cache[key] = self.dump(make(), shape)
        return "\0" + key

    def dump(self, obj, shape: str) -> str:
        """A record's JSON text as that shape writes it (v1_line, v2_line, search_line)."""
        text = (v1_line if shape == V1 else v2_line if shape == V2 else search_line)(obj)
        if "\\u0000" in text:
            cache = self.parts[shape]
            text = PART.sub(lambda m: cache[m.group(1)], text)
        return text

    # -- ids, links, users ---------------------------------------------------------------------
    def tweet_id(self, ms: int) -> int:
        while True:
            tid = ((ms - TWITTER_EPOCH) << 22) | (self.rng.getrandbits(10) << 12) | self.rng.getrandbits(12)
            if tid not in self.ids:
                self.ids.add(tid)
                return tid

    def link(self, topic: str) -> str:
        rng = self.rng
        while True:
            url = "https://t.co/" + "".join(rng.choices(ALNUM, k=10))
            if url not in self.links:
                self.links[url] = rng.choice(LINKS[topic])
                return url

    def _user(self, screen: str, name: str, lang: str, followers: int, verified: bool) -> User:
        rng = self.rng
        u = User()
        u.created_ms = START - rng.randrange(200 * 86400, 6000 * 86400) * SECOND
        u.id = (rng.randrange(10**6, 4 * 10**9) if u.created_ms < START - 4000 * 86400 * SECOND
                else ((u.created_ms - TWITTER_EPOCH) << 22) | rng.getrandbits(22))
        u.name, u.screen_name, u.lang, u.verified = name, screen, lang, verified
        u.followers, u.friends = followers, rng.randrange(20, 3000)
        u.listed, u.favs, u.statuses = followers // 200 + rng.randrange(5), rng.randrange(50, 40000), rng.randrange(100, 60000)
        u.location = rng.choice(LOCATIONS.get(lang, ("",)))
        u.image = (f"https://pbs.twimg.com/profile_images/{rng.randrange(10**18, 2 * 10**18)}/"
                   f"{''.join(rng.choices(ALNUM, k=8))}_normal.jpg")
        u.source = _pick(rng, _SOURCE_PICK)
        u.v1 = None
        self.known[screen.lower()] = u
        return u

    def users(self) -> None:
        rng = self.rng
        for screen, name, followers, verified in SPECIALS:
            self.specials[screen] = self._user(screen, name, "en", followers, verified)
        count = max(60, min(self.n // 3, 2000 + self.n // 20))
        langs = list(LANG_SHARE)
        for _ in range(count):
            lang = _pick(rng, _LANG_PICK)
            first, last = rng.choice(FIRST_NAMES[lang]), rng.choice(LAST_NAMES[lang])
            f, la = _ascii(ROMAJI.get(first, first)), _ascii(ROMAJI.get(last, last))
            while True:
                form = rng.randrange(4)
                screen = (f"{f}{la[:1]}{rng.randrange(100)}" if form == 0 else f"{f}_{la}" if form == 1
                          else f"{la}{f[:1]}{rng.randrange(1000)}" if form == 2 else f"{f}{rng.randrange(1970, 2010)}")
                screen = screen[:15]
                if screen.lower() not in self.known:
                    break
                screen = None
            name = f"{last} {first}" if lang == "ja" else f"{first} {last}"
            followers = int(rng.paretovariate(1.2) * 80)
            self.users_by_lang.setdefault(lang, []).append(self._user(screen, name, lang, followers, False))
        self.all_users = [u for lang in langs for u in self.users_by_lang.get(lang, [])]

    def someone(self, lang: str | None = None, not_user: User | None = None) -> User:
        pool = self.users_by_lang.get(lang) if lang else None
        pool = pool or self.all_users
        while True:
            u = self.rng.choice(pool)
            if u is not not_user:
                return u

    # -- text ------------------------------------------------------------------------------------
    def fill(self, template: str, topic: str, author: User) -> str:
        rng = self.rng
        parts = self.templates.get(template)
        if parts is None:  # [(text before a slot, slot name or None)]
            parts, at = [], 0
            for m in SLOT.finditer(template):
                parts.append((template[at:m.start()], m.group(1)))
                at = m.end()
            parts.append((template[at:], None))
            self.templates[template] = parts

        def slot(name):
            if name == "nx":
                r = rng.random()
                return "Nova X" if r < 0.8 else "nova x" if r < 0.88 else "NOVA X" if r < 0.93 else "NovaX" if r < 0.97 else "Nova  X"
            if name == "NX":
                r = rng.random()
                return "#NovaX" if r < 0.8 else "#novax" if r < 0.92 else "#NOVAX"
            if name == "RC":
                return "#NovaXRecall" if rng.random() < 0.85 else "#novaxrecall"
            if name == "orb":
                return "@Orbitel" if rng.random() < 0.5 else "Orbitel"
            if name == "ORB":
                return "@Orbitel"
            if name == "sup":
                return "@OrbitelSupport"
            if name == "who":
                return "@" + self.someone(None, author).screen_name
            if name == "url":
                return self.link(topic)
            if name == "price":
                return PRICE
            if name == "color":
                return rng.choice(COLORS)
            raise KeyError(name)
        return "".join(text + slot(name) if name else text for text, name in parts)

    def compose(self, topic: str, intended: str, lang: str, author: User, sentences: int = 1) -> str:
        """A tweet's text: sentences of the bank, then maybe a hashtag, a link and emoji."""
        rng = self.rng
        bank = BANK[lang][topic][intended] or BANK["en"][topic][intended]
        picks = [rng.choice(bank)] if sentences == 1 else rng.sample(bank, min(sentences, len(bank)))
        if len(picks) < sentences:
            picks += rng.choices(BANK["en"][topic][intended], k=sentences - len(picks))
        parts = [self.fill(p, topic, author) for p in picks]
        if sentences > 1:
            text = ("\n\n" if rng.random() < 0.35 else " ").join(_full_stop(p) for p in parts)
        else:
            text = parts[0]
        if lang == "und":
            return text
        if topic != "chatter" and "#" not in text and rng.random() < 0.4:
            tag = self.fill("{RC}" if topic == "recall" and rng.random() < 0.8 else "{NX}", topic, author)
            text += ("\n" if rng.random() < 0.2 else " ") + tag
        elif topic == "chatter" and rng.random() < 0.3:
            text += " " + rng.choice(CHATTER_TAGS)
        if "t.co/" not in text and rng.random() < 0.15:
            text += " " + self.link(topic)
        if rng.random() < 0.35:
            if topic == "chatter" and intended == "neutral":
                text += " " + rng.choice(CHATTER_EMOJI)
            elif intended == "positive":
                text += " " + rng.choice(POS_EMOJI + DECO_EMOJI)
            elif intended == "negative":
                text += " " + rng.choice(FIRE_EMOJI if topic == "fire" and rng.random() < 0.4 else NEG_EMOJI + ANGRY_EMOJI)
            else:
                text += " " + rng.choice(NEUTRAL_EMOJI)
        return text

    def new(self, ms: int, user: User, topic: str, intended: str, lang: str, sentences: int = 1,
            text: str | None = None, kind: str = "original") -> Tweet:
        if text is None:
            text = self.compose(topic, intended, lang, user, sentences)
            while len(text) > 280:  # a long decoration: one sentence less
                sentences = max(1, sentences - 1)
                text = self.compose(topic, intended, lang, user, sentences)
        t = Tweet(ms, user, lang, text, intended, topic, kind)
        t.id = self.tweet_id(ms)
        t.ents = _entities(text, self.known, self.links)
        return t

    def topic_time(self, topic: str) -> int:
        rng = self.rng
        if topic == "launch":
            return START + min(int(rng.expovariate(1 / (24 * MINUTE))), END - START - 1)
        if topic == "fire":
            return int(rng.triangular(FIRST_FIRE, END - 1, ANNOUNCE))
        if topic == "recall":
            return int(rng.triangular(ANNOUNCE, END - 1, ANNOUNCE + 8 * MINUTE))
        return START + rng.randrange(END - START)

    def original(self, topic: str | None = None, ms: int | None = None, user: User | None = None,
                 kind: str = "original", lang: str | None = None, note: bool = False) -> Tweet:
        rng = self.rng
        topic = topic or _pick(rng, _TOPIC_PICK)
        ms = self.topic_time(topic) if ms is None else ms
        user = user or self.someone()
        lang = lang or ("und" if rng.random() < UND_SHARE else user.lang)
        intended = _pick(rng, _MIX_PICK[topic])
        if note:
            lang = "en"
            text = self.compose(topic, intended, "en", user, 5)
            while len(text) <= 300:
                text += "\n\n" + self.fill(rng.choice(BANK["en"][topic][intended]), topic, user)
            t = self.new(ms, user, topic, intended, lang, text=text, kind=kind)
            t.note = True
            return t
        sentences = 1 if lang != "en" or rng.random() >= LONG_SHARE else rng.choice((2, 3, 3))
        return self.new(ms, user, topic, intended, lang, sentences, kind=kind)

    # -- the two hours -----------------------------------------------------------------------
    def plan(self) -> None:
        rng, n = self.rng, self.n
        n_rt = round(n * 0.25)
        n_quote, n_reply = max(2, round(n * 0.03)), max(3, round(n * 0.07))
        n_note = max(2, n // 400)
        n_orig = n - n_rt - n_quote - n_reply
        sp = self.specials
        launch = self.new(START + 4 * SECOND + rng.randrange(SECOND), sp["Orbitel"], "launch", "positive", "en",
                          text=self.fill(ORBITEL_LAUNCH, "launch", sp["Orbitel"]))
        statement = self.new(ANNOUNCE, sp["Orbitel"], "recall", "neutral", "en",
                             text=self.fill(ORBITEL_STATEMENT, "recall", sp["Orbitel"]))
        statement.note = True
        support = self.new(ANNOUNCE + 95 * SECOND + rng.randrange(SECOND), sp["OrbitelSupport"], "recall", "neutral",
                           "en", text=self.fill(SUPPORT_TWEET, "recall", sp["OrbitelSupport"]))
        launch.channel, statement.channel, support.channel = V1, V2, V1
        launch.weight, statement.weight, support.weight = 60.0, 50.0, 15.0
        news = [sp["gadgetwire"], sp["techdaily"], sp["PhoneBuzz"]]
        originals = [launch, statement, support]
        for i in range(n_orig - len(originals)):
            t = self.original(note=i < n_note)
            if i < n_note:
                t.channel = V2
            originals.append(t)
        # originals nobody captured on their own: only their retweets bring them
        offstage = [self.original(user=rng.choice(news) if i % 2 == 0 else None, note=i == 0)
                    for i in range(max(3, n_rt // 8))]
        for t in originals + offstage:
            if t.weight == 1.0:
                t.weight = (rng.paretovariate(1.6) * (8.0 if t.user.verified else 1.0)
                            * (0.3 if t.topic == "chatter" else 1.0))
        for t in offstage:
            t.weight *= 4.0
        pool = originals + offstage
        timeline = sorted(pool, key=lambda t: t.ms)
        replies_quotes = []
        for j in range(n_reply + n_quote):
            kind = "reply" if j < n_reply else "quote"
            while True:
                target = rng.choice(timeline)
                ms = target.ms + 5 * SECOND + int(rng.expovariate(1 / (5 * MINUTE)))
                if ms < END and not (kind == "quote" and target.note):
                    break
            user = self.someone(None, target.user)
            lang = user.lang
            intended = _pick(rng, _MIX_PICK[target.topic])
            if kind == "reply":
                text = "@" + target.user.screen_name + " " + self.compose(target.topic, intended, lang, user)
                t = self.new(ms, user, target.topic, intended, lang, text=text, kind=kind)
                t.reply_to = target
            else:
                t = self.new(ms, user, target.topic, intended, lang, kind=kind)
                t.quoted = target
            replies_quotes.append(t)
        # retweets: popular originals get most, soon after they were posted
        rt_pool = pool + [t for t in replies_quotes if t.kind == "quote"]
        cum, total = [], 0.0
        for t in rt_pool:
            total += t.weight
            cum.append(total)
        retweets = []
        for _ in range(n_rt):
            for _ in range(30):
                orig = rt_pool[min(bisect.bisect(cum, rng.random() * total), len(rt_pool) - 1)]
                ms = orig.ms + 3 * SECOND + int(rng.expovariate(1 / (7 * MINUTE)))
                if ms < END:
                    break
            else:
                ms = orig.ms + 1 + rng.randrange(max(1, END - orig.ms - 1))
            user = self.someone(None, orig.user)
            t = Tweet(ms, user, orig.lang, None, orig.intended, orig.topic, "retweet")
            t.id = self.tweet_id(ms)
            t.original = orig
            orig.rts += 1
            retweets.append(t)
        for t in pool + replies_quotes:
            t.likes = int(t.rts * (2 + 3 * rng.random())) + rng.randrange(3)
        delivered = originals + replies_quotes + retweets
        for t in delivered:
            base = t.original or t.quoted or t
            if t.channel is not None:
                continue
            if base.note or (t.original is not None and t.original.note):
                t.channel = V2
            elif base.topic == "chatter":
                t.channel = V1 if rng.random() < 0.6 else V2
            else:
                r = rng.random()
                t.channel = V1 if r < 0.45 else V2 if r < 0.8 else SEARCH
        self.delivered = sorted(delivered, key=lambda t: t.ms)
        assert len(self.delivered) == n

    # -- rendering ---------------------------------------------------------------------------
    def v1_user(self, u: User) -> dict:
        if u.v1 is None:
            u.v1 = {"id": u.id, "id_str": str(u.id), "name": u.name, "screen_name": u.screen_name,
                    "location": u.location or None, "url": None, "description": None, "protected": False,
                    "verified": u.verified, "followers_count": u.followers, "friends_count": u.friends,
                    "listed_count": u.listed, "favourites_count": u.favs, "statuses_count": u.statuses,
                    "created_at": v1_time(u.created_ms), "profile_image_url_https": u.image}
        return u.v1

    def v1_entities(self, t: Tweet, text_len: int | None = None, offset: int = 0) -> dict:
        """v1 entities of t's full text: shifted by offset, only those within text_len."""
        tags, mentions, urls = t.ents
        limit = 10**9 if text_len is None else text_len
        ok = [(s + offset, e + offset, v) for s, e, v in tags if e + offset <= limit]
        ments = [(s + offset, e + offset, u) for s, e, u in mentions if e + offset <= limit]
        links = [(s + offset, e + offset, v) for s, e, v in urls if e + offset <= limit]
        return {"hashtags": [{"text": v, "indices": [s, e]} for s, e, v in ok],
                "urls": [self.v1_url(v, s, e) for s, e, v in links],
                "user_mentions": [{"screen_name": u.screen_name, "name": u.name, "id": u.id, "id_str": str(u.id),
                                   "indices": [s, e]} for s, e, u in ments],
                "symbols": []}

    def v1_url(self, url: str, s: int, e: int) -> dict:
        expanded = self.links[url]
        display = expanded.split("://", 1)[1]
        return {"url": url, "expanded_url": expanded,
                "display_url": display if len(display) <= 26 else display[:25] + "…", "indices": [s, e]}

    def v1_status(self, t: Tweet, search: bool, nested: bool = False) -> dict:
        """A v1.1 status: streaming compat form, or (search) tweet_mode=extended."""
        o = {"created_at": v1_time(t.ms), "id": t.id, "id_str": str(t.id)}
        orig = t.original
        if orig is not None:
            prefix = f"RT @{orig.user.screen_name}: "
            full = prefix + orig.text
            shown = full if len(full) <= 140 else full[:139] + "…"
            ents = self.v1_entities(orig, len(shown) - (shown != full), len(prefix))
            u = orig.user
            ents["user_mentions"].insert(0, {"screen_name": u.screen_name, "name": u.name, "id": u.id,
                                             "id_str": str(u.id), "indices": [3, 4 + len(u.screen_name)]})
            extended = None
        else:
            full = t.text
            if len(full) <= 140 or search:
                shown, ents, extended = full, self.v1_entities(t), None
            else:
                cut = full.rfind(" ", 0, 116)
                cut = 115 if cut < 60 else cut
                head = full[:cut].rstrip()
                link = self.link_for(t)
                shown = head + "… " + link
                ents = self.v1_entities(t, len(head))
                ents["urls"].append({"url": link, "expanded_url": f"https://twitter.com/i/web/status/{t.id}",
                                     "display_url": f"twitter.com/i/web/status/{str(t.id)[:7]}…",
                                     "indices": [len(head) + 2, len(head) + 2 + len(link)]})
                start = len(t.reply_to.user.screen_name) + 2 if t.reply_to is not None else 0
                extended = {"full_text": full, "display_text_range": [start, len(full)], "entities": self.v1_entities(t)}
        if search:
            o["full_text"] = shown
            o["truncated"] = False
            start = len(t.reply_to.user.screen_name) + 2 if t.reply_to is not None else 0
            o["display_text_range"] = [start, len(shown)]
            o["entities"] = ents
            o["metadata"] = {"iso_language_code": t.lang, "result_type": "recent"}
        else:
            o["text"] = shown
        o["source"] = t.source
        if not search:
            o["truncated"] = extended is not None
        r = t.reply_to
        o["in_reply_to_status_id"] = r.id if r else None
        o["in_reply_to_status_id_str"] = str(r.id) if r else None
        o["in_reply_to_user_id"] = r.user.id if r else None
        o["in_reply_to_user_id_str"] = str(r.user.id) if r else None
        o["in_reply_to_screen_name"] = r.user.screen_name if r else None
        u = t.user
        o["user"] = self.part(SEARCH if search else V1, f"u{u.id}", lambda: self.v1_user(u))
        o["geo"] = o["coordinates"] = o["place"] = o["contributors"] = None
        if orig is not None:
            o["retweeted_status"] = self.part(SEARCH if search else V1, f"s{orig.id}",
                                              lambda: self.v1_status(orig, search, True))
        q = t.quoted
        if q is not None:
            o["quoted_status_id"], o["quoted_status_id_str"] = q.id, str(q.id)
            o["quoted_status"] = self.part(SEARCH if search else V1, f"s{q.id}", lambda: self.v1_status(q, search, True))
            link = f"https://twitter.com/{q.user.screen_name}/status/{q.id}"
            o["quoted_status_permalink"] = {"url": self.link_for(q), "expanded": link, "display": link[8:33] + "…"}
        o["is_quote_status"] = q is not None
        if extended is not None:
            o["extended_tweet"] = extended
        if not search:
            o["quote_count"] = o["reply_count"] = 0
        o["retweet_count"] = t.rts if nested else 0
        o["favorite_count"] = t.likes if nested else 0
        if not search:
            o["entities"] = ents
        o["favorited"] = o["retweeted"] = False
        if "t.co/" in full:
            o["possibly_sensitive"] = False
        if not search:
            o["filter_level"] = "low"
        o["lang"] = t.lang
        if not search and not nested:
            o["timestamp_ms"] = str(t.ms)
        return o

    def link_for(self, t: Tweet) -> str:
        """The t.co link to a tweet itself (stable per tweet)."""
        url = "https://t.co/" + _base62(t.id)[-10:].rjust(10, "A")
        self.links.setdefault(url, f"https://twitter.com/{t.user.screen_name}/status/{t.id}")
        return url

    def v2_user(self, u: User) -> str:
        return self.part(V2, f"u{u.id}", lambda: {"id": str(u.id), "name": u.name, "username": u.screen_name})

    @staticmethod
    def v2_entities(t: Tweet, limit: int | None = None, offset: int = 0) -> dict:
        tags, mentions, urls = t.ents
        lim = 10**9 if limit is None else limit
        out = {}
        links = [(s + offset, e + offset, v) for s, e, v in urls if e + offset <= lim]
        if links:
            out["urls"] = [{"start": s, "end": e, "url": v} for s, e, v in links]
        hashtags = [(s + offset, e + offset, v) for s, e, v in tags if e + offset <= lim]
        if hashtags:
            out["hashtags"] = [{"start": s, "end": e, "tag": v} for s, e, v in hashtags]
        ments = [(s + offset, e + offset, u) for s, e, u in mentions if e + offset <= lim]
        if ments:
            out["mentions"] = [{"start": s, "end": e, "username": u.screen_name, "id": str(u.id)} for s, e, u in ments]
        return out

    def v2_data(self, t: Tweet, nested: bool = False) -> dict:
        d = {"author_id": str(t.user.id)}
        root = t
        while root.reply_to is not None:
            root = root.reply_to
        d["conversation_id"] = str(root.id)
        d["created_at"] = v2_time(t.ms)
        d["edit_history_tweet_ids"] = [str(t.id)]
        orig = t.original
        if orig is not None:
            prefix = f"RT @{orig.user.screen_name}: "
            full = prefix + orig.text
            text = full if len(full) <= 140 else full[:139] + "…"
            ents = self.v2_entities(orig, len(text) - (text != full), len(prefix))
            u = orig.user
            ents.setdefault("mentions", []).insert(0, {"start": 3, "end": 4 + len(u.screen_name),
                                                       "username": u.screen_name, "id": str(u.id)})
            note = None
        elif t.note:
            cut = t.text.rfind(" ", 0, 275)
            text = t.text[:cut] + "…"
            ents = self.v2_entities(t, cut)
            note = {"text": t.text}
            full_ents = self.v2_entities(t)
            if full_ents:
                note["entities"] = full_ents
        else:
            text, ents, note = t.text, self.v2_entities(t), None
        if ents:
            d["entities"] = ents
        d["id"] = str(t.id)
        if t.reply_to is not None:
            d["in_reply_to_user_id"] = str(t.reply_to.user.id)
        d["lang"] = t.lang
        if note is not None:
            d["note_tweet"] = note
        d["possibly_sensitive"] = False
        d["public_metrics"] = {"retweet_count": t.rts if nested else 0, "reply_count": 0,
                               "like_count": t.likes if nested else 0, "quote_count": 0, "bookmark_count": 0,
                               "impression_count": (t.likes * 40 + 17) if nested else 0}
        refs = []
        if orig is not None:
            refs.append({"type": "retweeted", "id": str(orig.id)})
        if t.quoted is not None:
            refs.append({"type": "quoted", "id": str(t.quoted.id)})
        if t.reply_to is not None:
            refs.append({"type": "replied_to", "id": str(t.reply_to.id)})
        if refs:
            d["referenced_tweets"] = refs
        d["text"] = text
        return d

    def v2_record(self, t: Tweet) -> dict:
        users, tweets = [self.v2_user(t.user)], []
        for ref in (t.original, t.quoted, t.reply_to):
            if ref is not None:
                tweets.append(self.part(V2, f"t{ref.id}", lambda ref=ref: self.v2_data(ref, True)))
                if self.v2_user(ref.user) not in users:
                    users.append(self.v2_user(ref.user))
        for _, _, u in (t.original or t).ents[1]:
            if self.v2_user(u) not in users:
                users.append(self.v2_user(u))
        rec = {"data": self.v2_data(t), "includes": {"users": users}}
        if tweets:
            rec["includes"]["tweets"] = tweets
        base = t.original or t
        rules = self.rules.get(base.id)
        if rules is None:
            hit = set(matches(base.text, [h for _, _, h in base.ents[0]], _RULE_TRACK))
            rules = self.rules[base.id] = ([RULES[r] for r in ("nova", "recall") if hit & set(RULE_KEYWORDS[r])]
                                           or [RULES["chatter"]])
        rec["matching_rules"] = rules
        return rec


def _cumulative(weights: dict) -> tuple[tuple, list[float]]:
    cum, total = [], 0.0
    for w in weights.values():
        total += w
        cum.append(total)
    return tuple(weights), cum


def _pick(rng: random.Random, table: tuple[tuple, list[float]]):
    """A weighted choice from a _cumulative table (random.choices, without recomputing it)."""
    items, cum = table
    return items[min(bisect.bisect(cum, rng.random() * cum[-1]), len(items) - 1)]


_TOPIC_PICK = _cumulative(TOPIC_SHARE)
_MIX_PICK = {topic: _cumulative(mix) for topic, mix in MIX.items()}
_LANG_PICK = _cumulative(LANG_SHARE)
_SOURCE_PICK = _cumulative(dict(SOURCES))


def _full_stop(sentence: str) -> str:
    """A sentence that ends in punctuation, an emoji or CJK, or a link as it is; else with a "."."""
    if sentence[-1] in ".!?…)" or sentence[-1] > "\u3000" or TCO.search(sentence[-23:]):
        return sentence
    return sentence + "."


def _ascii(name: str) -> str:
    out = name.lower().replace("ü", "ue").replace("ö", "oe").replace("ä", "ae").replace("ß", "ss")
    out = out.translate(str.maketrans("áéíóúñë", "aeioune"))
    return re.sub(r"[^a-z0-9_]", "", out)


def _base62(n: int) -> str:
    out = []
    while n:
        n, r = divmod(n, 62)
        out.append(ALNUM[r])
    return "".join(reversed(out))


def v1_line(obj: dict) -> str:
    """A v1.1 stream record as the API writes it: compact, \\uXXXX escapes, "/" as "\\/"."""
    return json.dumps(obj, separators=(",", ":")).replace("/", "\\/")


def v2_line(obj: dict) -> str:
    """A v2 stream record as the API writes it: compact UTF-8."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def search_line(obj: dict) -> str:
    """A search result as a script saves it: json.dumps defaults."""
    return json.dumps(obj)


def _cut(line: str, text: str, ascii_only: bool) -> str:
    """The record with a stray newline before a space in the middle of its text value."""
    enc = json.dumps(text, ensure_ascii=ascii_only)
    if ascii_only:
        enc = enc.replace("/", "\\/")
    at = line.index('"text":' + enc) + len('"text":')
    spaces = [i for i, ch in enumerate(enc) if ch == " " and 6 < i < len(enc) - 6]
    pos = at + spaces[len(spaces) // 2]
    return line[:pos] + "\n" + line[pos:]


class _Files:
    """The records of the three captures, with every fault, in file order."""

    def __init__(self, g: _Gen):
        self.g, self.rng = g, g.rng
        self.recs: dict[str, list[Rec]] = {V1: [], V2: [], SEARCH: []}
        self.counts = {"filtered": dict.fromkeys(FILTERED_KINDS, 0), "errors": dict.fromkeys(ERROR_KINDS, 0),
                       "duplicates": dict.fromkeys(DUPLICATE_KINDS, 0)}

    def tweet_rec(self, t: Tweet, where: str) -> Rec:
        g = self.g
        if where == V1:
            return Rec(t.ms + 40 + self.rng.randrange(2500), "tweet", g.dump(g.v1_status(t, False), V1), t)
        if where == V2:
            return Rec(t.ms + 200 + self.rng.randrange(3000), "tweet", g.dump(g.v2_record(t), V2), t)
        return Rec(0, "tweet", g.dump(g.v1_status(t, True), SEARCH), t)

    def build(self) -> None:
        g = self.g
        for t in g.delivered:
            self.recs[t.channel].append(self.tweet_rec(t, t.channel))
        self.errors()
        self.notices()
        for where in (V1, V2):
            self.recs[where].sort(key=lambda r: r.key)
        self.backfills(V1, "disconnect", max(1, g.n // 1000))
        self.backfills(V2, "operational_disconnect", max(2, g.n // 1000))
        self.search()
        for where in (V1, V2):
            self.keep_alives(where, max(4, g.n // 40))

    def errors(self) -> None:
        g, rng, k = self.g, self.rng, self.g.k
        for j in range(2 * k):  # a stray newline inside the text
            where = (V1, V2)[j % 2]
            t = g.original(topic=rng.choice(("launch", "fire", "recall")), lang="en")
            while t.text.count(" ") < 6 or len(t.text) > 140:
                t = g.original(topic=rng.choice(("launch", "fire", "recall")), lang="en")
            rec = self.tweet_rec(t, where)
            rec.text, rec.kind, rec.fault = _cut(rec.text, t.text, where == V1), "error", "cut"
            rec.tweet = None
            self.recs[where].append(rec)
            self.counts["errors"]["cut"] += 1
        for kind in ERROR_KINDS[1:]:
            for j in range(k):
                where = (V1, V2)[j % 2]
                t = g.original(lang="en")
                while len(t.text) > 140:
                    t = g.original(lang="en")
                if where == V1:
                    obj = g.v1_status(t, False)
                    if kind == "no_id":
                        del obj["id"], obj["id_str"]
                    elif kind == "bad_created_at":
                        obj["created_at"] = BAD_V1_TIME
                        del obj["timestamp_ms"]
                    else:
                        obj["text"] = None
                    text = g.dump(obj, V1)
                else:
                    obj = g.v2_record(t)
                    if kind == "no_id":
                        del obj["data"]["id"]
                    elif kind == "bad_created_at":
                        obj["data"]["created_at"] = BAD_V2_TIME
                    else:
                        obj["data"]["text"] = 40 + rng.randrange(900)
                    text = g.dump(obj, V2)
                self.recs[where].append(Rec(t.ms + rng.randrange(3000), "error", text, fault=kind))
                self.counts["errors"][kind] += 1

    def notices(self) -> None:
        g, rng, n = self.g, self.rng, self.g.n
        times = sorted(START + rng.randrange(10 * MINUTE) if i % 3 == 0 else
                       ANNOUNCE + rng.randrange(15 * MINUTE) if i % 3 == 1 else START + rng.randrange(END - START)
                       for i in range(max(2, n // 100)))
        track = 0
        for ms in times:  # tweets the stream matched but did not deliver, counted since connecting
            track += rng.randrange(5, 140)
            self.recs[V1].append(Rec(ms, "filtered", v1_line({"limit": {"track": track, "timestamp_ms": str(ms)}}),
                                     fault="limit"))
            self.counts["filtered"]["limit"] += 1
        gone = rng.sample([t for t in g.delivered if t.ms < END - 2 * MINUTE], max(2, n // 150))
        for t in gone:
            ms = min(END - 1, t.ms + rng.randrange(30 * SECOND, 20 * MINUTE))
            obj = {"delete": {"status": {"id": t.id, "id_str": str(t.id), "user_id": t.user.id,
                                         "user_id_str": str(t.user.id)}, "timestamp_ms": str(ms)}}
            self.recs[V1].append(Rec(ms, "filtered", v1_line(obj), fault="delete"))
            self.counts["filtered"]["delete"] += 1

    def backfills(self, where: str, kind: str, count: int) -> None:
        """Disconnects; the reconnected stream delivers the last few tweets again."""
        rng, recs = self.rng, self.recs[where]
        tweet_at = [i for i, r in enumerate(recs) if r.kind == "tweet"]
        spots = []
        for j in range(count):
            lo = len(tweet_at) * (j + 1) // (count + 1)
            spots.append((tweet_at[lo + rng.randrange(max(1, len(tweet_at) // (3 * (count + 1))))] + 1, j))
        for pos, j in sorted(spots, reverse=True):  # from the end, so earlier positions hold
            replay = [r for r in recs[max(0, pos - 12):pos] if r.kind == "tweet"][-rng.randint(2, 5):]
            key = recs[pos - 1].key
            if where == V1:
                obj = {"disconnect": {"code": 7, "stream_name": "nova-monitor-statuses4231",
                                      "reason": "admin logout"}}
                notice = Rec(key, "filtered", v1_line(obj), fault=kind)
            else:
                err = ({"title": "operational-disconnect", "disconnect_type": "OperationalDisconnect",
                        "detail": "This stream has been disconnected for operational reasons.",
                        "type": "https://api.twitter.com/2/problems/operational-disconnect"} if j % 2 == 0 else
                       {"title": "operational-disconnect", "disconnect_type": "UpstreamOperationalDisconnect",
                        "detail": "This stream has been disconnected upstream for operational reasons.",
                        "type": "https://api.twitter.com/2/problems/operational-disconnect"})
                notice = Rec(key, "filtered", v2_line({"errors": [err]}), fault=kind)
            copies = [Rec(key, "tweet", r.text, r.tweet, fault=f"backfill_{where}") for r in replay]
            recs[pos:pos] = [notice] + copies
            self.counts["filtered"][kind] += 1
            self.counts["duplicates"][f"backfill_{where}"] += len(copies)

    def search(self) -> None:
        """Newest first; some tweets the v1 stream also had; overlapping pages repeat a few."""
        rng, recs = self.rng, self.recs[SEARCH]
        also = [r.tweet for r in self.recs[V1] if r.kind == "tweet" and r.fault is None
                and r.tweet.topic != "chatter" and r.tweet.original is None]
        for t in rng.sample(also, min(len(also), max(2, self.g.n // 200))):
            recs.append(self.tweet_rec(t, SEARCH))
            recs[-1].fault = "search_and_stream"
            self.counts["duplicates"]["search_and_stream"] += 1
        recs.sort(key=lambda r: -r.tweet.id)
        page = min(100, max(8, len(recs) // 4))
        out = []
        for i, r in enumerate(recs):
            if i and i % page == 0:  # the next page starts with the last results of this one again
                for again in out[-rng.randint(1, 2):]:
                    out.append(Rec(0, "tweet", again.text, again.tweet, fault="search_pages"))
                    self.counts["duplicates"]["search_pages"] += 1
            out.append(r)
        self.recs[SEARCH] = out

    def keep_alives(self, where: str, count: int) -> None:
        recs = self.recs[where]
        for pos in sorted((self.rng.randrange(1, len(recs) + 1) for _ in range(count)), reverse=True):
            recs.insert(pos, Rec(recs[pos - 1].key, "keepalive", ""))


def _build(n: int, seed: int) -> tuple[_Gen, _Files]:
    if n < MIN_TWEETS:
        raise ValueError(f"tweet_sentiment needs at least {MIN_TWEETS} tweets, got {n}")
    with _no_gc():
        rng = random.Random(seed)
        g = _Gen(rng, n)
        g.users()
        g.plan()
        f = _Files(g)
        f.build()
    return g, f


@contextlib.contextmanager
def _no_gc():
    """Millions of small objects that all live to the end: cyclic collections find nothing."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def _hashtags(t: Tweet) -> list[str]:
    return [h for _, _, h in t.ents[0]]


def _truth(n: int, seed: int, g: _Gen, f: _Files) -> dict:
    first: dict[int, Tweet] = {}
    in_files: dict[int, list[str]] = {}
    exact: set[int] = set()  # ids with a v1 stream record as the top-level status (timestamp_ms)
    deliveries = 0
    per_file, lines, keep = {}, {}, {}
    for where, name in FILES.items():
        recs = f.recs[where]
        per_file[name] = sum(r.kind != "keepalive" for r in recs)
        keep[name] = sum(r.kind == "keepalive" for r in recs)
        lines[name] = len(recs) + sum(r.text.count("\n") for r in recs)
        for r in recs:
            if r.kind != "tweet":
                continue
            deliveries += 1
            t = r.tweet
            first.setdefault(t.id, t)
            names = in_files.setdefault(t.id, [])
            if name not in names:
                names.append(name)
            if where == V1:
                exact.add(t.id)

    when: dict[int, int] = {}  # id -> the tweet's time (ms) by the rule: timestamp_ms, else created_at
    originals: dict[int, Tweet] = {}
    folded: dict[int, int] = {}
    for t in first.values():
        o = t.original or t
        for x in (t, o):
            when[x.id] = x.ms if x.id in exact else x.ms - x.ms % SECOND
        originals.setdefault(o.id, o)
        folded[o.id] = folded.get(o.id, 0) + 1
    tweets = sorted(first.values(), key=lambda t: (when[t.id], t.id))
    tags_of = {oid: _hashtags(o) for oid, o in originals.items()}
    kw_of = {oid: matches(o.text, tags_of[oid]) for oid, o in originals.items()}
    stamp = {tid: rfc3339_ms(ms) for tid, ms in when.items()}
    tweet_list = []
    for t in tweets:
        o = t.original or t
        tweet_list.append({
            "id": str(t.id), "created_at": stamp[t.id], "user_id": str(t.user.id),
            "user_name": t.user.screen_name, "lang": t.lang, "full_text": o.text, "hashtags": tags_of[o.id],
            "is_retweet": t.original is not None, "original_id": str(o.id), "original_created_at": stamp[o.id],
            "is_quote": t.quoted is not None, "quoted_id": str(t.quoted.id) if t.quoted else None,
            "reply_to_id": str(t.reply_to.id) if t.reply_to else None,
            "intended": t.intended, "keywords": kw_of[o.id], "files": in_files[t.id],
        })
    original_list = []
    for o in sorted(originals.values(), key=lambda o: (when[o.id], o.id)):
        original_list.append({
            "id": str(o.id), "created_at": stamp[o.id], "user_id": str(o.user.id),
            "user_name": o.user.screen_name, "lang": o.lang, "full_text": o.text, "hashtags": tags_of[o.id],
            "intended": o.intended, "topic": o.topic, "keywords": kw_of[o.id],
            "window": window_start(when[o.id]), "delivered": o.id in first,
            "retweets": folded[o.id] - (o.id in first),
        })
    retweets = sum(t.original is not None for t in tweets)
    n_orig, filtered, errors = len(originals), sum(f.counts["filtered"].values()), sum(f.counts["errors"].values())
    duplicates = deliveries - len(first)
    assert duplicates == sum(f.counts["duplicates"].values())
    records = sum(per_file.values())
    assert records == len(first) + duplicates + filtered + errors

    def mix(items) -> dict:
        out = dict.fromkeys(SENTIMENTS, 0)
        for it in items:
            out[it["intended"]] += 1
        return out

    sentiment_windows: dict[str, dict[str, int]] = {}
    for o in original_list:
        sentiment_windows.setdefault(o["window"], dict.fromkeys(SENTIMENTS, 0))[o["intended"]] += 1
    launch_end = rfc3339_ms(RECALL_PERIOD)

    def tally(values) -> dict:
        out: dict = {}
        for v in values:
            out[v] = out.get(v, 0) + 1
        return dict(sorted(out.items()))

    return {
        "tweets_param": n, "seed": seed, "start": rfc3339_ms(START), "end": rfc3339_ms(END),
        "recall_period": rfc3339_ms(RECALL_PERIOD), "announcement": rfc3339_ms(ANNOUNCE),
        "track": list(TRACK), "window_s": WINDOW_S, "rules": [dict(r) for r in RULES.values()],
        # what split_json_records yields (a cut record is one chunk; keep-alives are none)
        "records": records, "tweets_read": records,
        "records_per_file": per_file, "lines_per_file": lines, "keep_alives": keep,
        "tweets": len(first), "duplicates": duplicates, "filtered": filtered, "errors": errors,
        "filtered_by_kind": dict(f.counts["filtered"]), "errors_by_kind": dict(f.counts["errors"]),
        "duplicates_by_kind": dict(f.counts["duplicates"]),
        "originals": n_orig, "retweets": retweets, "retweets_folded": len(first) - n_orig,
        "retweet_only_originals": sum(not o["delivered"] for o in original_list),
        "identities": {
            "records = tweets + duplicates + filtered + errors": records == len(first) + duplicates + filtered + errors,
            "records = originals + duplicates + retweets_folded + filtered + errors":
                records == n_orig + duplicates + (len(first) - n_orig) + filtered + errors,
            "retweets = retweets_folded + retweet_only_originals":
                retweets == len(first) - n_orig + sum(not o["delivered"] for o in original_list),
        },
        "quotes": sum(t.quoted is not None for t in tweets), "replies": sum(t.reply_to is not None for t in tweets),
        "truncated_v1": len({r.tweet.id for r in f.recs[V1] if r.kind == "tweet" and r.tweet.original is None
                             and len(r.tweet.text) > 140}),
        "note_tweets": sum(1 for t in tweets if t.note), "langs": tally(t.lang for t in tweets),
        "shapes": {name: tally(("retweet" if r.tweet.original else r.tweet.kind) for r in f.recs[w] if r.kind == "tweet")
                   for w, name in FILES.items()},
        "tweet_list": tweet_list,
        "original_list": original_list,
        "keyword_tweets": {kw: [t["id"] for t in tweet_list if kw in t["keywords"]] for kw in TRACK},
        "keyword_originals": {kw: [o["id"] for o in original_list if kw in o["keywords"]] for kw in TRACK},
        # default mode: retweets folded into originals, the original's time decides the window
        "windows": _tally(((when[o.id], kw_of[o.id]) for o in originals.values()), TRACK, WINDOW_S),
        # every unique tweet at its own time, matched against its (original's) full text
        "windows_unfolded": _tally(((when[t.id], kw_of[(t.original or t).id]) for t in tweets), TRACK, WINDOW_S),
        "sentiment_windows": dict(sorted(sentiment_windows.items())),
        "periods": {  # intended sentiment of the originals, by their time
            "launch": mix(o for o in original_list if o["created_at"] < launch_end),
            "recall": mix(o for o in original_list if o["created_at"] >= launch_end),
        },
        "intended": mix(tweet_list),
    }


def generate(tweets: int, seed: int) -> dict[str, list[str]]:
    """File name -> text chunks exactly as written (join them to get the file)."""
    _, f = _build(tweets, seed)
    out = {}
    for where, name in FILES.items():
        eol = "\r\n" if name in CRLF else "\n"
        out[name] = [r.text + eol for r in f.recs[where]]
    return out


def ground_truth(tweets: int, seed: int) -> dict:
    """What the generator put in: records, tweets, duplicates, filtered, errors, originals and
    folded retweets, every tweet and original, keyword matches and per-window counts."""
    g, f = _build(tweets, seed)
    with _no_gc():
        return _truth(tweets, seed, g, f)


def file_name(name: str) -> str:
    """The name a generated file is written under."""
    return files.gz_name(name, GZIPPED)


def write_dir(path: str, tweets: int, seed: int) -> None:
    files.write_files(path, generate(tweets, seed), GZIPPED)


def write_ndjson(fileobj, tweets: int, seed: int) -> None:
    """Both streams' records and keep-alives merged in arrival order, then the search
    capture, as one CRLF stream with every fault kept."""
    _, f = _build(tweets, seed)
    merged = [(r.key, i, r) for i, r in enumerate(f.recs[V1])]
    merged += [(r.key, len(merged) + i, r) for i, r in enumerate(f.recs[V2])]
    merged.sort(key=lambda x: (x[0], x[1]))
    for r in [r for _, _, r in merged] + f.recs[SEARCH]:
        fileobj.write(r.text + "\r\n")
