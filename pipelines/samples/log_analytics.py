"""Synthetic Cloud Logging exports of a small Cloud Run web API, for the log_analytics job.

``shop-api`` (Flask on gunicorn, Cloud Run, europe-west1) writes to Cloud Logging through
several loggers, and a log sink exports what they write. This module fabricates one hour
(2026-11-26 10:00-11:00 UTC) of those ``LogEntry`` objects, in the JSON form of the v2 API:

* request logs (``run.googleapis.com/requests``): ``httpRequest`` with ``status`` an int,
  ``responseSize``/``requestSize`` INT64 as JSON strings, ``latency`` a Duration string
  ("0.005192s", "60.369159188s"), ``remoteIp`` IPv4 or IPv6, with or without a port;
  severity INFO/WARNING/ERROR by status; a ``cloud_run_revision`` resource; trace and span;
* structured app logs (``struct_log``, the Python client library): ``jsonPayload`` with
  ``message`` (or ``text``), ``component``, ``user_id``, ``order_id``..., DEBUG to CRITICAL,
  often under the trace of the request that wrote them;
* text logs (``stdout``, ``stderr``): ``textPayload``, gunicorn lines and multi-line Python
  tracebacks, many without a severity (that is DEFAULT);
* audit logs (``cloudaudit.googleapis.com/activity``): an ``AuditLog`` ``protoPayload``.

The hour tells a story: revision 00042 is deployed at 10:21:47 and fails (500s) until the
rollback at 10:25:05; at 10:47 the database goes away (503/504). BURST_MINUTES are the
minutes where more than half the requests fail, so an error-rate alert must fire there.

What a sink really delivers is irregular, and so is this: at-least-once duplicates (same
logName, insertId and timestamp), entries that arrive minutes late, timestamps with 3 to 9
fractional digits, ``receiveTimestamp`` or ``severity`` absent, ``status`` sent as "503",
``responseSize`` sent as a number, wrong types (``"status": "teapot"``, ``"latency": "fast"``),
truncated lines, a record cut in two by a stray newline inside a string, and JSON values that
are not objects. ``ground_truth`` says exactly what was put in, including the per-minute
counts a correct windowed job must produce.

Layouts (``write_dir``): one NDJSON file per log as a Cloud Storage sink writes them (there
``LOG_ID/2026/11/26/10:00:00_10:59:59_S0.json``: one compact JSON LogEntry per line, keys in
alphabetical order), ``requests.json`` gzipped, ``stderr.json`` with CRLF line ends (it went
through a Windows machine), and the first two minutes (before the sink existed) as a
pretty-printed JSON array saved with the Logs Explorer download button, newest first.
``write_ndjson`` writes everything as one stream in arrival order, as a Pub/Sub subscriber
that dumps each message's ``data`` (a LogEntry) on its own line would see it.
Standard library only and deterministic per seed, so the bundled sample regenerates byte
for byte.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import random
import re
import string
import urllib.parse

from pipelines.samples import files

PROJECT, REGION, SERVICE = "acme-shop-prod", "europe-west1", "shop-api"
SECOND = 10**9
MINUTE = 60 * SECOND
START = int(_dt.datetime(2026, 11, 26, 10, tzinfo=_dt.UTC).timestamp()) * SECOND
END = START + 60 * MINUTE
SINK_START = START + 2 * MINUTE  # the sink was created at 10:02; earlier entries were downloaded
DEPLOY, ROLLBACK = START + 21 * MINUTE + 47_300_000_000, START + 25 * MINUTE + 5_100_000_000
BURST_MINUTES = (22, 23, 24, 47)  # minutes after 10:00 where most requests fail
BURST_FAIL_SHARE = 0.6
LATE_S = 60  # an entry arriving this long after its timestamp counts as late
REVISIONS = ("shop-api-00041-kav", "shop-api-00042-bix")
SAMPLE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "log_analytics")
SAMPLE_ENTRIES, SAMPLE_SEED = 3000, 26  # the bundled SAMPLE_DIR
MIN_ENTRIES = 40  # fewer cannot hold every kind, burst and fault

LOG_IDS = {"requests": "run.googleapis.com/requests", "struct_log": "struct_log", "stdout": "stdout",
           "stderr": "stderr", "activity": "cloudaudit.googleapis.com/activity"}
KINDS = {"requests": "request", "struct_log": "struct", "stdout": "text", "stderr": "text",
         "activity": "audit"}
DOWNLOAD = "download"
FILES = {"requests": "requests.json", "struct_log": "struct_log.json", "stdout": "stdout.json",
         "stderr": "stderr.json", "activity": "activity.json", DOWNLOAD: "logs_explorer_download.json"}
GZIPPED = ("requests.json",)
CRLF = ("stderr.json",)
MALFORMED_KINDS = ("invalid_json", "split_record", "not_object", "wrong_type")
WRONG_TYPES = (("status", "teapot"), ("latency", "fast"), ("responseSize", "lots"))
NOT_OBJECTS = ("42", '"OK"', "null", "true", "3.5", '"shop-api ready"')
SEVERITIES = ("DEFAULT", "DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL")

HOSTS = ("https://shop-api-k7x2qf4zja-ew.a.run.app", "https://api.acme-shop.example")
SERVER_IPS = ("216.239.32.53", "216.239.34.53", "216.239.36.53", "216.239.38.53")
USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "AcmeShop/3.4.1 (iPhone; iOS 18.1; Scale/3.00)", "okhttp/4.12.0", "python-requests/2.32.3",
    "curl/8.5.0")
UPTIME_UA = "GoogleStackdriverMonitoring-UptimeChecks(https://cloud.google.com/monitoring)"
SCANNER_UA = "Mozilla/5.0 zgrab/0.x"
# method, path, weight, median latency (s), status when fine, response size range (None: no body)
ENDPOINTS = (
    ("GET", "/api/v1/products?page={page}", 30, 0.035, 200, (4000, 22000)),
    ("GET", "/api/v1/products/{sku}", 22, 0.018, 200, (900, 2600)),
    ("GET", "/api/v1/cart", 10, 0.022, 200, (300, 3000)),
    ("POST", "/api/v1/cart/items", 8, 0.045, 201, (200, 900)),
    ("POST", "/api/v1/orders", 4, 0.180, 201, (400, 1200)),
    ("GET", "/api/v1/orders/{order}", 5, 0.025, 200, (500, 1500)),
    ("POST", "/api/v1/auth/login", 5, 0.090, 200, (300, 500)),
    ("OPTIONS", "/api/v1/cart/items", 3, 0.002, 204, None),
    ("GET", "/healthz", 8, 0.002, 200, (2, 2)),
    ("GET", "/static/app.js", 3, 0.004, 304, None),
    ("GET", "/favicon.ico", 1, 0.002, 404, (200, 240)),
    ("GET", "/wp-login.php", 1, 0.003, 404, (200, 240)),
)
CLIENT_ERRORS = {"/api/v1/auth/login": (401, 0.15), "/api/v1/products/{sku}": (404, 0.04),
                 "/api/v1/cart/items": (400, 0.05), "/api/v1/orders/{order}": (403, 0.03)}
SKUS = ("SKU-1042", "SKU-2210", "SKU-3307", "SKU-4711", "SKU-5120", "SKU-6001", "SKU-7734")
PRODUCTS = ("Café crème 250 g", "Teekanne Grüner Tee", "Jalapeño salsa", "Crème brûlée kit",
            "Espresso beans 1 kg", "Smørrebrød board", "Matcha 抹茶 30 g")
AUDITS = (  # serviceName, methodName, resource type, permission
    ("run.googleapis.com", "google.cloud.run.v1.Services.SetIamPolicy", "cloud_run_revision",
     "run.services.setIamPolicy"),
    ("iam.googleapis.com", "google.iam.admin.v1.CreateServiceAccountKey", "service_account",
     "iam.serviceAccountKeys.create"),
    ("storage.googleapis.com", "storage.setIamPermissions", "gcs_bucket", "storage.buckets.setIamPolicy"),
    ("secretmanager.googleapis.com", "google.cloud.secretmanager.v1.SecretManagerService.AddSecretVersion",
     "audited_resource", "secretmanager.versions.add"),
    ("run.googleapis.com", "google.cloud.run.v1.Services.ReplaceService", "cloud_run_revision",
     "run.services.update"),
)
PRINCIPALS = ("deployer@acme-shop-prod.iam.gserviceaccount.com", "alice@acme-shop.example",
              "bob@acme-shop.example")


# Field order of an entry as the Logs Explorer shows (and downloads) it; sink lines sort keys.
ORDER = ("insertId", "httpRequest", "jsonPayload", "textPayload", "protoPayload", "resource", "timestamp",
         "severity", "labels", "logName", "trace", "spanId", "traceSampled", "receiveTimestamp")
TS_DIGITS = {3: 0.12, 4: 0.015, 5: 0.015, 6: 0.25, 7: 0.02, 8: 0.015}  # rest: 9
LATENCY_DIGITS = {1: 0.01, 2: 0.015, 3: 0.1, 4: 0.01, 5: 0.01, 6: 0.25, 7: 0.01, 8: 0.01}  # rest: 9
REMOTE_IPS = {"ipv4_port": 0.1, "ipv6": 0.08, "ipv6_port": 0.04}  # rest: ipv4
REQUEST_QUIRKS = {"status_as_string": 0.03, "size_as_number": 0.03}  # rest: None


@dataclasses.dataclass
class Entry:
    """One log entry as the service wrote it (export faults are applied on top)."""
    ts: int  # event time, ns, truncated to the fractional digits it is written with
    log: str  # key of LOG_IDS
    obj: dict
    status: int | None = None  # requests: HTTP status as generated
    latency: int = 0  # requests: ns, as written
    digits: int = 9  # fractional digits of "timestamp"
    arrival: int = 0  # when Logging received it (receiveTimestamp, written or not)
    bad: str | None = None  # wrong_type | split_record
    touched: bool = False  # carries a fault or a one-off feature: gets no (other) fault
    late: bool = False  # delivered minutes late on purpose
    jitter: int = 0  # ns added to arrival for the order in a file ("roughly by time")


@dataclasses.dataclass
class Item:
    """One record as it goes to a file: an entry's JSON object, or raw (corrupt) text."""
    key: int  # order in the file: arrival plus a little jitter
    entry: Entry | None = None
    raw: str | None = None


def _quota(rng: random.Random, n: int, shares: dict, rest, front: list[int] = ()) -> list:
    """n labels, each of `shares` max(1, round(share * n)) times (as n allows), the rest `rest`;
    shuffled, but the first of each label in `shares` sits at front[0], front[1]... so that a few
    protected entries carry every rare label (faults cannot make one vanish from a small sample)."""
    out = [label for label, share in shares.items() for _ in range(max(1, round(share * n)))][:n]
    out += [rest] * (n - len(out))
    rng.shuffle(out)
    for pos, label in zip(front, [label for label in shares if label in out], strict=False):
        i = out.index(label)
        out[i], out[pos] = out[pos], out[i]
    return out


def _draw(rng: random.Random, pools: list[list], ok):
    """A random element passing ok from the first pool that has one, else None."""
    for pool in pools:
        for _ in range(20 if pool else 0):
            x = rng.choice(pool)
            if ok(x):
                return x
        rest = [x for x in pool if ok(x)]
        if rest:
            return rng.choice(rest)
    return None


def _hex(rng: random.Random, digits: int) -> str:
    return f"{rng.getrandbits(4 * digits):0{digits}x}"


def _alnum(rng: random.Random, k: int) -> str:
    return "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(k))


def timestamp(ns: int, digits: int = 9) -> str:
    """RFC 3339 UTC with `digits` (0-9) fractional digits, truncated."""
    sec, frac = divmod(ns, SECOND)
    base = _dt.datetime.fromtimestamp(sec, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return (f"{base}.{frac:09d}"[:len(base) + 1 + digits] if digits else base) + "Z"


def duration(ns: int, digits: int) -> str:
    """A protobuf Duration in JSON ("0.005192s") with `digits` fractional digits, truncated."""
    sec, frac = divmod(ns, SECOND)
    return f"{sec}.{frac:09d}"[:len(str(sec)) + 1 + digits] + "s"


def _truncate(ns: int, digits: int) -> int:
    return ns - ns % 10 ** (9 - digits)


def minute_of(ns: int) -> str:
    """The one-minute window an event time falls in, as "2026-11-26T10:22:00Z"."""
    return timestamp(ns - ns % MINUTE, 0)


def log_name(log: str) -> str:
    """projects/PROJECT/logs/LOG_ID with the LOG_ID URL-encoded (run.googleapis.com%2Frequests)."""
    return f"projects/{PROJECT}/logs/{urllib.parse.quote(LOG_IDS[log], safe='')}"


def _revision(ts: int) -> str:
    return REVISIONS[DEPLOY <= ts < ROLLBACK]


def _run_resource(rev: str, config: str = SERVICE) -> dict:
    return {"type": "cloud_run_revision",
            "labels": {"service_name": SERVICE, "revision_name": rev, "location": REGION,
                       "project_id": PROJECT, "configuration_name": config}}


def _clock(ts: int) -> str:
    return _dt.datetime.fromtimestamp(ts // SECOND, _dt.UTC).strftime("%Y-%m-%d %H:%M:%S +0000")


TRACEBACKS = {
    "bug": ('  File "/app/shop/api/orders.py", line 142, in create_order\n'
            '    total = pricing.total(cart, currency=payload["currency"])\n', "KeyError: 'currency'"),
    "db": ('  File "/app/shop/db.py", line 88, in session\n    conn = pool.connect()\n'
           '  File "/usr/local/lib/python3.11/site-packages/sqlalchemy/pool/base.py", line 449, in connect\n'
           '    return _ConnectionFairy._checkout(self)\n',
           'sqlalchemy.exc.OperationalError: (psycopg2.OperationalError) connection to server at '
           '"10.23.0.3", port 5432 failed: timeout expired'),
    "payments": ('  File "/app/shop/api/orders.py", line 151, in create_order\n'
                 '    charge = payments.charge(order, idempotency_key=key)\n'
                 '  File "/app/shop/payments.py", line 77, in charge\n'
                 '    raise PaymentGatewayTimeout(f"stripe did not answer in {timeout}s")\n',
                 "shop.payments.PaymentGatewayTimeout: stripe did not answer in 10s"),
}


def _traceback(cause: str) -> str:
    frames, last = TRACEBACKS[cause]
    return ("Traceback (most recent call last):\n"
            '  File "/usr/local/lib/python3.11/site-packages/flask/app.py", line 1511, in wsgi_app\n'
            "    response = self.full_dispatch_request()\n"
            '  File "/usr/local/lib/python3.11/site-packages/flask/app.py", line 919, in full_dispatch_request\n'
            "    rv = self.handle_user_exception(e)\n" + frames + last)


def _cause(ts: int) -> str:
    return "bug" if DEPLOY <= ts < ROLLBACK else "db" if ts >= START + 46 * MINUTE else "payments"


class _Sim:
    """The hour of traffic: requests first, then what the app and its operators logged around them."""

    def __init__(self, rng: random.Random, n: int):
        self.rng, self.ids = rng, set()
        self.instances = {rev: [_hex(rng, 64) for _ in range(rng.randint(2, 4))] for rev in REVISIONS}
        self.clients = [self._client() for _ in range(max(8, n // 40))]

    def _client(self) -> dict:
        rng = self.rng
        v4 = rng.choice(("203.0.113", "198.51.100", "192.0.2")) + f".{rng.randrange(1, 255)}"
        v6 = f"2001:db8:{rng.randrange(1, 0xffff):x}::{rng.randrange(1, 0xffff):x}"
        return {"v4": v4, "v6": v6, "ua": rng.choice(USER_AGENTS), "user": f"u_{rng.randrange(10**5):05d}",
                "http2": rng.random() < 0.3}

    def insert_id(self, log: str, ts: int) -> str:
        while True:
            iid = (f"{ts // SECOND:08x}{_hex(self.rng, 16)}" if log in ("requests", "stdout", "stderr")
                   else "-" + _alnum(self.rng, 12) if log == "activity" else _alnum(self.rng, 14))
            if iid not in self.ids:
                self.ids.add(iid)
                return iid

    def labels(self, ts: int) -> dict:
        return {"instanceId": self.rng.choice(self.instances[_revision(ts)])}

    # -- requests ---------------------------------------------------------------------------
    def request_times(self, count: int) -> list[int]:
        """Stratified over the hour, plus retry storms in the burst minutes."""
        rng = self.rng
        extra = min(count // 2, max(3 * len(BURST_MINUTES), round(0.05 * count)))
        base = count - extra
        times = [START + int((i + rng.random()) * 60 * MINUTE / base) for i in range(base)]
        times += [START + BURST_MINUTES[i % len(BURST_MINUTES)] * MINUTE + rng.randrange(MINUTE)
                  for i in range(extra)]
        return sorted(times)

    def requests(self, count: int, front: list[int]) -> list[Entry]:
        rng, times = self.rng, self.request_times(count)
        failing = set()
        for m in BURST_MINUTES:  # a fixed share of each burst minute fails
            idx = [i for i, t in enumerate(times) if (t - START) // MINUTE == m]
            rng.shuffle(idx)
            failing.update(idx[:math.ceil(BURST_FAIL_SHARE * len(idx))])
        lat_digits = _quota(rng, count, LATENCY_DIGITS, 9, front)
        ips = _quota(rng, count, REMOTE_IPS, "ipv4", front)
        quirks = _quota(rng, count, REQUEST_QUIRKS, None, front)
        out = []
        for i, t in enumerate(times):
            method, path, _, median, status, sizes = rng.choices(ENDPOINTS, [e[2] for e in ENDPOINTS])[0]
            lat = median * math.exp(rng.gauss(0, 0.6))
            if rng.random() < 0.02:
                lat *= rng.uniform(10, 80)  # the tail: cold starts, slow queries
            if i in failing:
                weights = (0.7, 0.2, 0.1) if (t - START) // MINUTE < 40 else (0.1, 0.6, 0.3)
                status = rng.choices((500, 503, 504), weights)[0]
            elif path in CLIENT_ERRORS and rng.random() < CLIENT_ERRORS[path][1]:
                status = CLIENT_ERRORS[path][0]
            elif rng.random() < 0.005:
                status = 429
            elif rng.random() < 0.004:
                status = rng.choice((500, 502, 503))
            if status == 504:
                lat = 60 + rng.uniform(0, 0.5)  # the service's request timeout
            elif status >= 500:
                lat = rng.uniform(0.001, 0.3) if rng.random() < 0.85 else rng.uniform(1, 12)
            d = lat_digits[i]
            e = Entry(t, "requests", {}, status=status,
                      latency=max(10 ** (9 - d), _truncate(int(lat * SECOND), d)))
            e.obj = self._request_obj(e, method, path, sizes, d, ips[i], quirks[i])
            out.append(e)
        for i in front:
            out[i].touched = True
        e = next((e for e in out if isinstance(e.obj["httpRequest"]["status"], str) and e.status >= 500), None)
        e = e or rng.choice([e for e in out if e.status >= 500])  # "503" as a string, at least once
        e.obj["httpRequest"]["status"], e.touched = str(e.status), True
        return out

    def _request_obj(self, e: Entry, method: str, path: str, sizes, lat_digits: int, ip: str, quirk) -> dict:
        rng = self.rng
        client = rng.choice(self.clients)
        url = path.format(page=rng.randint(1, 12), sku=rng.choice(SKUS), order=f"ord_{_hex(rng, 8)}")
        ua = UPTIME_UA if path == "/healthz" else SCANNER_UA if path == "/wp-login.php" else client["ua"]
        hr = {"requestMethod": method, "requestUrl": rng.choice(HOSTS) + url}
        if method == "POST":
            hr["requestSize"] = str(rng.randint(180, 2400))
        hr["status"] = str(e.status) if quirk == "status_as_string" else e.status
        size = rng.randint(180, 620) if e.status >= 400 else rng.randint(*sizes) if sizes else 0
        if quirk == "size_as_number":  # a hand-rolled producer: a JSON number, even 0
            hr["responseSize"] = size
        elif size:  # a zero INT64 is left out, as proto3 JSON does
            hr["responseSize"] = str(size)
        if rng.random() < 0.97:
            hr["userAgent"] = ua
        port = rng.randrange(1024, 65536)
        hr["remoteIp"] = {"ipv4": client["v4"], "ipv4_port": f"{client['v4']}:{port}", "ipv6": client["v6"],
                          "ipv6_port": f"[{client['v6']}]:{port}"}[ip]
        if rng.random() < 0.7:
            hr["serverIp"] = rng.choice(SERVER_IPS)
        if ua.startswith("Mozilla/5.0 (") and rng.random() < 0.5:
            hr["referer"] = "https://shop.acme-shop.example/"
        hr["latency"] = duration(e.latency, lat_digits)
        hr["protocol"] = "HTTP/2" if client["http2"] else "HTTP/1.1"
        obj = {"insertId": self.insert_id("requests", e.ts), "httpRequest": hr,
               "resource": _run_resource(_revision(e.ts)),
               "severity": "ERROR" if e.status >= 500 else "WARNING" if e.status >= 400 else "INFO",
               "labels": self.labels(e.ts), "logName": log_name("requests"),
               "trace": f"projects/{PROJECT}/traces/{_hex(rng, 32)}", "spanId": _hex(rng, 16)}
        if rng.random() < 0.1:
            obj["traceSampled"] = True
        return obj

    def _near(self, req: Entry, share: float = 1.0) -> int:
        """A moment inside the request (app logs are written while it runs)."""
        return min(END - 1, req.ts + int(self.rng.random() * share * req.latency))

    # -- structured app logs -------------------------------------------------------------------
    def structs(self, count: int, requests: list[Entry]) -> list[Entry]:
        rng = self.rng
        front = rng.sample(range(count), 6)
        sevs = _quota(rng, count, {"DEBUG": 0.15, "NOTICE": 0.04, "WARNING": 0.15, "ERROR": 0.08,
                                   "CRITICAL": 0.015, None: 0.03}, "INFO", front)
        keys = _quota(rng, count, {"text": 0.2}, "message", front)
        failed = [r for r in requests if r.status >= 500]
        warned = [r for r in requests if 400 <= r.status < 500]
        out = []
        for sev, key in zip(sevs, keys, strict=True):
            if sev in ("ERROR", "CRITICAL") and failed:
                req = rng.choice(failed)
            elif sev == "WARNING" and warned and rng.random() < 0.5:
                req = rng.choice(warned)
            else:
                req = rng.choice(requests) if rng.random() < 0.6 else None
            ts = self._near(req) if req else START + rng.randrange(60 * MINUTE)
            component, message, fields = self._struct_payload(sev or "INFO", ts)
            obj = {"insertId": self.insert_id("struct_log", ts),
                   "jsonPayload": {key: message, "component": component, **fields},
                   "resource": _run_resource(_revision(ts))}
            if sev:
                obj["severity"] = sev
            if rng.random() < 0.5:
                obj["labels"] = {"python_logger": f"shop.{component}"}
            obj["logName"] = log_name("struct_log")
            if req:
                obj["trace"], obj["spanId"] = req.obj["trace"], req.obj["spanId"]
            out.append(Entry(ts, "struct_log", obj, touched=len(out) in front))
        return out

    def _struct_payload(self, sev: str, ts: int) -> tuple[str, str, dict]:
        rng = self.rng
        user, order, sku = rng.choice(self.clients)["user"], f"ord_{_hex(rng, 8)}", rng.choice(SKUS)
        cause = _cause(ts)
        if sev == "CRITICAL":
            return ("db", "could not connect to Cloud SQL instance",
                    {"instance": f"{PROJECT}:{REGION}:shop-db", "error": "timeout expired", "attempt": rng.randint(1, 5)})
        if sev == "ERROR":
            if cause == "bug":
                return "orders", "order creation failed", {"user_id": user, "order_id": order,
                                                           "error": "KeyError: 'currency'", "revision": REVISIONS[1]}
            if cause == "db":
                return "db", "connection pool exhausted", {"pool_size": 20, "waiting": rng.randint(5, 60)}
            return "payments", "payment gateway timeout", {"order_id": order, "user_id": user,
                                                           "provider": "stripe", "timeout_s": 10}
        if sev == "WARNING":
            return rng.choice((
                ("payments", "payment retry", {"order_id": order, "attempt": rng.randint(2, 4), "provider": "stripe"}),
                ("inventory", "low stock", {"sku": sku, "remaining": rng.randint(0, 5)}),
                ("auth", "login failed", {"user_id": user, "reason": rng.choice(("bad_password", "locked"))})))
        if sev == "DEBUG":
            return rng.choice((
                ("db", "query executed", {"duration_ms": round(rng.uniform(0.4, 40), 2), "rows": rng.randint(0, 50),
                                          "statement": "SELECT id, name, price_cents FROM products WHERE sku = %(sku)s"}),
                ("cache", "cache miss", {"key": f"product:{sku}", "ttl_s": 300})))
        if sev == "NOTICE":
            return rng.choice((("auth", "password reset requested", {"user_id": user}),
                               ("inventory", "stock sync finished", {"updated": rng.randint(1, 80),
                                                                     "duration_ms": rng.randint(200, 4000)})))
        return rng.choice((
            ("orders", "order created", {"order_id": order, "user_id": user, "amount_cents": rng.randint(399, 25000),
                                         "currency": "EUR", "items": rng.randint(1, 6)}),
            ("cart", "item added to cart", {"user_id": user, "sku": sku, "qty": rng.randint(1, 3),
                                            "product": rng.choice(PRODUCTS)}),
            ("auth", "user logged in", {"user_id": user, "method": rng.choice(("password", "google"))})))

    # -- stdout / stderr -----------------------------------------------------------------------
    def texts(self, count: int, requests: list[Entry]) -> list[Entry]:
        rng = self.rng
        logs = _quota(rng, count, {"stderr": 0.45}, "stdout")
        tracebacks = _quota(rng, logs.count("stderr"), {True: 0.4}, False)
        failed = [r for r in requests if r.status == 500] or [r for r in requests if r.status >= 500]
        in_burst = [r for r in requests if r.status >= 500 and (r.ts - START) // MINUTE in BURST_MINUTES]
        orders = [r for r in requests if r.obj["httpRequest"]["requestMethod"] == "POST"] or requests
        # the first instance boots at 10:00, the first of revision 00042 right after the deploy
        out, boots, first_traceback = [], [START + rng.randrange(50) * SECOND, DEPLOY], True
        for log in logs:
            sev, touched = None, False
            if log == "stderr" and tracebacks.pop():
                req = rng.choice([r for r in in_burst if r.status == 500] or in_burst) if first_traceback else rng.choice(failed)
                first_traceback = False
                ts, text, touched = self._near(req, 0.95), _traceback(_cause(req.ts)), True
                sev = "ERROR" if rng.random() < 0.5 else None
            elif log == "stderr":
                ts = START + rng.randrange(60 * MINUTE)
                text = rng.choice((
                    f"[{_clock(ts)}] [1] [CRITICAL] WORKER TIMEOUT (pid:{rng.randint(7, 40)})",
                    "/app/shop/db.py:61: SADeprecationWarning: The Query.get() method is considered legacy "
                    "as of the 1.x series of SQLAlchemy and becomes a legacy construct in 2.0.",
                    f"WARNING:shop.payments:charge for ord_{_hex(rng, 8)} took {rng.uniform(3, 9):.1f}s"))
                sev = "WARNING" if rng.random() < 0.3 else None
            else:
                if boots or rng.random() < 0.25:  # an instance boots
                    ts = min(END - 1, (boots.pop(0) if boots else rng.choice((DEPLOY, ROLLBACK, START + rng.randrange(
                        60 * MINUTE)))) + rng.randrange(2 * SECOND, 9 * SECOND))
                    text = rng.choice((f"[{_clock(ts)}] [1] [INFO] Starting gunicorn 23.0.0",
                                       f"[{_clock(ts)}] [1] [INFO] Listening at: http://0.0.0.0:8080 (1)",
                                       f"[{_clock(ts)}] [{rng.randint(7, 40)}] [INFO] Booting worker with pid: "
                                       f"{rng.randint(7, 40)}"))
                elif rng.random() < 0.5:
                    req = rng.choice(orders)
                    ts, text = self._near(req), f"order ord_{_hex(rng, 8)}: confirmation email queued"
                else:
                    ts = START + rng.randrange(60 * MINUTE)
                    text = rng.choice((f"warming product cache: {rng.randint(900, 1500)} items in "
                                       f"{rng.uniform(0.3, 1.5):.2f}s", f"stock sync: {rng.randint(1, 80)} SKUs updated"))
                sev = "INFO" if rng.random() < 0.4 else None
            obj = {"insertId": self.insert_id(log, ts), "textPayload": text, "resource": _run_resource(_revision(ts))}
            if sev:
                obj["severity"] = sev
            obj["labels"], obj["logName"] = self.labels(ts), log_name(log)
            out.append(Entry(ts, log, obj, touched=touched))
        return out

    # -- audit ---------------------------------------------------------------------------------
    def audits(self, count: int) -> list[Entry]:
        rng = self.rng
        plan = [("deploy", DEPLOY), ("rollback", ROLLBACK)]
        if count >= 5:
            plan.append(("denied", START + rng.randrange(30 * MINUTE, 40 * MINUTE)))
        rest = count - len(plan)
        plan += [("other", START + int((i + rng.random()) * 60 * MINUTE / rest)) for i in range(rest)]
        out = []
        for i, (what, t) in enumerate(plan):
            service, method, rtype, permission = AUDITS[-1] if what != "other" else AUDITS[i % (len(AUDITS) - 1)]
            out.append(Entry(t, "activity", self._audit(what, t, service, method, rtype, permission),
                             touched=what != "other"))
        return out

    def _audit(self, what, ts, service, method, rtype, permission) -> dict:
        rng = self.rng
        if rtype == "cloud_run_revision":
            name, resource = f"namespaces/{PROJECT}/services/{SERVICE}", _run_resource("", "")
        elif rtype == "service_account":
            name = "projects/-/serviceAccounts/109384756201928374651"
            resource = {"type": rtype, "labels": {"email_id": f"{SERVICE}@{PROJECT}.iam.gserviceaccount.com",
                                                  "project_id": PROJECT, "unique_id": "109384756201928374651"}}
        elif rtype == "gcs_bucket":
            name = f"projects/_/buckets/{PROJECT}-exports"
            resource = {"type": rtype, "labels": {"bucket_name": f"{PROJECT}-exports", "location": REGION,
                                                  "project_id": PROJECT}}
        else:
            name = "projects/412345678901/secrets/stripe-api-key"
            resource = {"type": rtype, "labels": {"method": method, "project_id": PROJECT, "service": service}}
        who = "intern@acme-shop.example" if what == "denied" else PRINCIPALS[0] if what != "other" else rng.choice(PRINCIPALS)
        payload = {"@type": "type.googleapis.com/google.cloud.audit.AuditLog",
                   "status": {"code": 7, "message": f"Permission '{permission}' denied on resource '{name}' "
                                                    "(or it may not exist)."} if what == "denied" else {},
                   "authenticationInfo": {"principalEmail": who},
                   "requestMetadata": {"callerIp": rng.choice(("203.0.113.250", "2001:db8:ffff::10")),
                                       "callerSuppliedUserAgent": "google-cloud-sdk gcloud/502.0.0 command/gcloud.run."
                                       "deploy,gzip(gfe)" if what == "deploy" else "google-cloud-sdk gcloud/502.0.0,gzip(gfe)"},
                   "serviceName": service, "methodName": method,
                   "authorizationInfo": [{"resource": name, "permission": permission, "granted": what != "denied",
                                          "resourceAttributes": {}}],
                   "resourceName": name}
        if what in ("deploy", "rollback"):
            rev = REVISIONS[what == "deploy"]
            payload["request"] = {"@type": "type.googleapis.com/google.cloud.run.v1.ReplaceServiceRequest",
                                  "name": name, "service": {"spec": {"template": {"metadata": {"name": rev}}, "traffic": [
                                      {"revisionName": rev, "percent": 100}]}}}
            payload["resourceLocation"] = {"currentLocations": [REGION]}
        return {"insertId": self.insert_id("activity", ts), "protoPayload": payload, "resource": resource,
                "severity": "ERROR" if what == "denied" else "NOTICE", "logName": log_name("activity")}


def _finish(rng: random.Random, entries: list[Entry], front: list[int]) -> None:
    """Timestamps (3 to 9 digits), receive times (absent from a few), Explorer field order."""
    digits = _quota(rng, len(entries), TS_DIGITS, 9, front)
    no_receive = _quota(rng, len(entries), {True: 0.03}, False, front)
    for e, d, absent in zip(entries, digits, no_receive, strict=True):
        e.ts, e.digits = _truncate(e.ts, d), d
        delay = rng.randrange(2, 40) * 10**6 + rng.randrange(10**6)
        if rng.random() < 0.05:
            delay += rng.randrange(2 * SECOND)
        e.arrival, e.jitter = e.ts + e.latency + delay, rng.randrange(-300, 300) * 10**6
        e.obj["timestamp"] = timestamp(e.ts, d)
        if not absent or e.log == "activity":
            e.obj["receiveTimestamp"] = timestamp(e.arrival)
        e.obj = {k: e.obj[k] for k in ORDER if k in e.obj}


def line(obj) -> str:
    """One record as a sink writes it: compact, keys sorted, UTF-8 kept."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _inject(rng: random.Random, entries: list[Entry], n: int) -> tuple[list[Item], dict]:
    """Export faults, only in what the sink wrote (the Explorer download is clean). Returns the
    extra records (duplicates, truncated copies, non-objects) and the counts."""
    sink = [e for e in entries if e.ts >= SINK_START]
    by_log = {log: [e for e in sink if e.log == log] for log in LOG_IDS}
    logs, k, extra = list(LOG_IDS), max(3, n // 150), []
    counts = dict.fromkeys(("wrong_type", "split_record", "invalid_json", "not_object", "duplicates",
                            "late_injected"), 0)

    def keep(e: Entry) -> bool:  # the failures that make a burst minute are never destroyed
        return not (e.log == "requests" and e.status >= 500 and (e.ts - START) // MINUTE in BURST_MINUTES)

    def take(prefer: str, ok=lambda e: True) -> Entry | None:
        e = _draw(rng, [by_log[prefer], sink], lambda e: not e.touched and ok(e))
        if e is not None:
            e.touched = True
        return e

    for j in range(k):
        field, value = WRONG_TYPES[j % len(WRONG_TYPES)]
        e = take("requests", lambda e, f=field: e.log == "requests" and f in e.obj["httpRequest"] and keep(e))
        if e:
            e.obj["httpRequest"][field], e.bad = value, "wrong_type"
            counts["wrong_type"] += 1
        e = take(("struct_log", "stdout", "requests")[j % 3],
                 lambda e: "receiveTimestamp" in e.obj and e.ts < END - 8 * MINUTE)
        if e:  # a client that buffered, or a sink that retried: minutes late, among newer entries
            e.arrival += rng.randrange(150, 480) * SECOND + rng.randrange(SECOND)
            e.obj["receiveTimestamp"], e.late = timestamp(e.arrival), True
            counts["late_injected"] += 1
        e = take(logs[j % len(logs)], keep)
        if e:  # a stray newline inside a string value: the line falls in two
            e.bad = "split_record"
            counts["split_record"] += 1
        e = take(logs[(j + 1) % len(logs)])
        if e:  # a writer killed mid-line; the whole record comes again after it
            text = line(e.obj)
            cut = rng.choice([m.end() for m in re.finditer(r'"[A-Za-z@]+":', text) if m.end() < len(text) // 2])
            extra.append(Item(e.arrival + e.jitter - 1, raw=text[:cut], entry=e))
            counts["invalid_json"] += 1
        host = rng.choice(by_log[logs[(j + 2) % len(logs)]] or sink)
        extra.append(Item(rng.randrange(SINK_START, END), raw=rng.choice(NOT_OBJECTS), entry=host))
        counts["not_object"] += 1
    for j in range(max(3, n // 100)):  # at-least-once delivery
        e = take(logs[j % len(logs)])
        if e:
            extra.append(Item(e.arrival + e.jitter + rng.randrange(SECOND // 2, 90 * SECOND), entry=e))
            counts["duplicates"] += 1
    return extra, counts


def _split(text: str) -> str:
    m = re.search(r'"insertId":"([^"]+)"', text)
    cut = m.start(1) + len(m.group(1)) // 2
    return text[:cut] + "\n" + text[cut:]


def _text(item: Item) -> str:
    if item.raw is not None:
        return item.raw
    text = line(item.entry.obj)
    return _split(text) if item.entry.bad == "split_record" else text


def _file(e: Entry) -> str:
    return FILES[DOWNLOAD] if e.ts < SINK_START else FILES[e.log]


def _build(n: int, seed: int) -> tuple[dict, list[Entry], dict]:
    """(file name -> [Item] in file order, the entries, ground truth)."""
    if n < MIN_ENTRIES:
        raise ValueError(f"log_analytics needs at least {MIN_ENTRIES} entries, got {n}")
    rng = random.Random(seed)
    sim = _Sim(rng, n)
    sizes = {"activity": max(3, round(0.008 * n)), "text": max(4, round(0.1 * n)), "struct_log": max(6, round(0.25 * n))}
    n_requests = n - sum(sizes.values())
    front = rng.sample(range(n_requests), max(len(LATENCY_DIGITS), len(TS_DIGITS)))  # requests to protect
    requests = sim.requests(n_requests, front)
    entries = (requests + sim.structs(sizes["struct_log"], requests) + sim.texts(sizes["text"], requests)
               + sim.audits(sizes["activity"]))
    _finish(rng, entries, front)
    extra, counts = _inject(rng, entries, n)
    files = {name: [] for name in FILES.values()}
    for e in entries:
        files[_file(e)].append(Item(e.arrival + e.jitter, entry=e))
    for it in extra:
        files[_file(it.entry)].append(dataclasses.replace(it, entry=None if it.raw else it.entry))
    for name, items in files.items():
        if name == FILES[DOWNLOAD]:  # the Logs Explorer lists newest first
            items.sort(key=lambda it: (it.entry.ts, it.entry.obj["insertId"]), reverse=True)
        else:
            items.sort(key=lambda it: it.key)
    return files, entries, _truth(n, entries, files, counts)


def _is_5xx(e: Entry) -> bool:
    return e.log == "requests" and e.status >= 500


def _per_minute(entries: list[Entry]) -> dict:
    out = {minute_of(START + m * MINUTE): {"entries": 0, "requests": 0, "5xx": 0} for m in range(60)}
    for e in entries:
        counts = out[minute_of(e.ts)]
        counts["entries"] += 1
        counts["requests"] += e.log == "requests"
        counts["5xx"] += _is_5xx(e)
    return out


def _truth(n: int, entries: list[Entry], files: dict, faults: dict) -> dict:
    readable = [e for e in entries if e.bad != "split_record"]  # what a reader can still recover
    valid = [e for e in readable if e.bad is None]
    requests = [e for e in readable if e.log == "requests"]
    hr = [e.obj["httpRequest"] for e in requests]

    def tally(values) -> dict:
        out = {}
        for v in values:
            out[v] = out.get(v, 0) + 1
        return dict(sorted(out.items(), key=lambda kv: str(kv[0])))

    latency_digits = [len(h["latency"].split(".")[1]) - 1 for h in hr if h["latency"].endswith("s")
                      and h["latency"][:-1].replace(".", "").isdigit()]
    ips = tally("ipv6_port" if ip.startswith("[") else ("ipv4", "ipv4_port")[ip.count(":")] if ip.count(":") < 2
                else "ipv6" for ip in (h["remoteIp"] for h in hr))
    return {
        "entries": n, "start": timestamp(START, 0), "end": timestamp(END, 0), "sink_start": timestamp(SINK_START, 0),
        "kinds": {kind: sum(KINDS[e.log] == kind for e in entries) for kind in ("request", "struct", "text", "audit")},
        "per_log": {LOG_IDS[log]: sum(e.log == log for e in entries) for log in LOG_IDS},
        "records_per_file": {name: len(items) for name, items in files.items()},
        "duplicates": faults["duplicates"],
        "late": sum(e.arrival - e.ts >= LATE_S * SECOND for e in readable),  # 504s (60 s) and injected
        "late_injected": faults["late_injected"],
        "malformed": {kind: faults[kind] for kind in MALFORMED_KINDS},
        "wrong_type_fields": tally(f for e in readable if e.bad == "wrong_type"
                                   for f, v in WRONG_TYPES if e.obj["httpRequest"].get(f) == v),
        # the rest is counted over the entries a reader can recover (split records lost)
        "quirks": {
            "status_as_string": sum(isinstance(h["status"], str) and h["status"].isdigit() for h in hr),
            "status_5xx_as_string": sum(isinstance(h["status"], str) and h["status"][:1] == "5" for h in hr),
            "response_size_as_number": sum(isinstance(h.get("responseSize"), int) for h in hr),
            "no_response_size": sum("responseSize" not in h for h in hr),
            "severity_absent": sum("severity" not in e.obj for e in readable),
            "no_receive_timestamp": sum("receiveTimestamp" not in e.obj for e in readable),
            "with_labels": sum("labels" in e.obj for e in readable),
            "timestamp_digits": tally(e.digits for e in readable),
            "latency_digits": tally(latency_digits),
            "remote_ip": ips,
            "tracebacks": sum(e.obj.get("textPayload", "").startswith("Traceback") for e in readable),
            "payload_text_key": sum("text" in e.obj.get("jsonPayload", {}) for e in readable),
        },
        "severities": tally(e.obj.get("severity", "DEFAULT") for e in valid),
        "burst_minutes": [minute_of(START + m * MINUTE) for m in BURST_MINUTES],
        "valid_entries": len(valid),
        # what a strict windowed job keeps: JSON objects, first copy of each (logName, insertId,
        # timestamp), no wrong types; by event time in one-minute windows
        "per_minute": _per_minute(valid),
        "per_minute_generated": _per_minute(entries),
    }


def generate(entries: int, seed: int) -> dict[str, list[str]]:
    """File name -> text chunks exactly as written (join them to get the file)."""
    files, _, _ = _build(entries, seed)
    out = {}
    for name, items in files.items():
        if name == FILES[DOWNLOAD]:
            out[name] = [json.dumps([it.entry.obj for it in items], indent=2, ensure_ascii=False) + "\n"]
        else:
            eol = "\r\n" if name in CRLF else "\n"
            out[name] = [_text(it) + eol for it in items]
    return out


def ground_truth(entries: int, seed: int) -> dict:
    """What the generator put in: per-kind counts, faults, duplicates, per-minute counts."""
    return _build(entries, seed)[2]


def file_name(name: str) -> str:
    """The name a generated file is written under."""
    return files.gz_name(name, GZIPPED)


def write_dir(path: str, entries: int, seed: int) -> None:
    files.write_files(path, generate(entries, seed), GZIPPED)


def write_ndjson(fileobj, entries: int, seed: int) -> None:
    """Every record on its own line (LF), all logs interleaved in arrival order, faults kept:
    the stream a Pub/Sub sink delivers (each message's data is one LogEntry)."""
    files, _, _ = _build(entries, seed)
    items = [it for items in files.values() for it in items]
    for it in sorted(items, key=lambda it: it.key):
        fileobj.write(_text(it) + "\n")
