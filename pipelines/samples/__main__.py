"""Sample-data generators: ``python -m pipelines.samples [NAME --plays N --seed S [--out PATH]]``.

With no arguments, lists the generators. ``--out DIR/`` (or an existing directory) writes the
generator's multi-file layout; ``--out FILE`` writes one NDJSON file; no ``--out`` writes
NDJSON to stdout. Each generator module provides ``write_dir(path, n, seed)`` and
``write_ndjson(fileobj, n, seed)``; register new ones in GENERATORS.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

# name -> (module, size option, one-line description)
GENERATORS = {
    "game_analytics": ("pipelines.samples.game_analytics", "plays",
                       "Firebase Analytics events of a Unity RPG: 4 encodings, dirty keys, broken lines"),
    "log_analytics": ("pipelines.samples.log_analytics", "entries",
                      "Cloud Logging LogEntry exports of a Cloud Run API: requests, app, text and audit logs, "
                      "5xx bursts, duplicates, late and broken lines"),
    "iot_telemetry": ("pipelines.samples.iot_telemetry", "devices",
                      "IoT Core telemetry via Pub/Sub: saved messages, push envelopes, JSON and line protocol "
                      "payloads, redeliveries, retries, late flushes, bad lines, a heat spike"),
    "tweet_sentiment": ("pipelines.samples.tweet_sentiment", "tweets",
                        "Tweets about a phone launch and its recall: Twitter API v1.1 statuses, v2 filtered-stream "
                        "records and a saved search; retweets, notes, notices, keep-alives, duplicates, cut and "
                        "malformed records"),
    "face_dataset": ("pipelines.samples.face_dataset", "variants",
                     "Scraped face photos in <label>/ folders (public-domain/CC0 sources): augmented "
                     "copies per person, exact and near duplicates, EXIF-rotated, RGBA and CMYK files, "
                     "turned, paired and tiny faces, a cat and a coffee, a cut JPEG, an HTML page; "
                     "NDJSON is the manifest (needs opencv-python-headless)"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-l", "--list"):
        for name, (_, _, about) in GENERATORS.items():
            print(f"{name}\t{about}")
        return 0
    name = argv[0]
    if name not in GENERATORS:
        print(f"unknown generator {name!r}; available: {', '.join(GENERATORS)}", file=sys.stderr)
        return 2
    module, size, about = GENERATORS[name]
    parser = argparse.ArgumentParser(prog=f"python -m pipelines.samples {name}", description=about)
    parser.add_argument(f"--{size}", type=int, default=100, dest="size", help="how many (default 100)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="directory (trailing / or existing) for the file layout, else one NDJSON file")
    args = parser.parse_args(argv[1:])
    gen = importlib.import_module(module)
    if args.out is None:
        try:
            gen.write_ndjson(sys.stdout, args.size, args.seed)
            sys.stdout.flush()
        except BrokenPipeError:  # e.g. piped into head
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    elif args.out.endswith(("/", os.sep)) or os.path.isdir(args.out):
        gen.write_dir(args.out, args.size, args.seed)
    else:
        with open(args.out, "w", encoding="utf-8", newline="") as f:
            gen.write_ndjson(f, args.size, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
