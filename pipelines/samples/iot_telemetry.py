"""Synthetic IoT sensor telemetry as Pub/Sub delivers it, for the iot_telemetry job.

Raspberry-Pi-class sensors in two registries of project ``acme-iot`` (``greenhouse`` in
europe-west1, ``warehouse`` in us-central1) publish telemetry the way Cloud IoT Core did: its
Pub/Sub bridge sets the message attributes ``deviceId``, ``deviceNumId``, ``deviceRegistryId``,
``deviceRegistryLocation``, ``projectId``, ``subFolder`` (``""`` when none; ``influx`` for line
protocol) and, when a gateway relayed the message, ``gatewayId``. This module fabricates
``minutes`` (default 60) of it from 2026-11-26 09:00:00Z; every device reports every 30 s with
a little jitter.

Two payload formats:

* JSON objects (``{"ts": ..., "temperature": 21.5, "humidity": 40, "battery": {"voltage":
  3.31}, "fan_on": false}``). The time key is ``ts``, ``timestamp`` or ``time`` (per device);
  its value RFC 3339 (0, 2, 3, 6 or 9 fraction digits, ``Z`` or ``+00:00``), epoch seconds
  (int or float) or epoch milliseconds (int). Some devices send no time at all: their event
  time is the message's publishTime. RESERVED keys are never metrics; every other leaf is one,
  nested names flattened with dots (``battery.voltage``), booleans 1.0/0.0.
* InfluxDB line protocol from gateway-connected devices: ``environment,device_id=th-17,room=r2
  temperature=22.5,humidity=41i,co2=612i 1795683600100400200`` (ns timestamp; the metric is the
  field key; measurement and tags are not part of it). A gateway sometimes batches 2-3 points
  (lines) into one message. The device is the ``deviceId`` attribute.

Record forms, mixed: saved Pub/Sub messages (``attributes``, base64 ``data``, ``messageId``,
``publishTime``; some with ``"@type"``), the same in snake_case (``message_id``,
``publish_time``), push-subscription envelopes (``{"message": {...both spellings...},
"subscription": ...}``) and plain JSON payload lines from devices that post without Pub/Sub
(device id inside as ``device_id`` or ``deviceId``, some with ``registry_id``).

Faults, all counted in ``ground_truth``: redeliveries (the same line again, same messageId),
device retries (the same payload under a new messageId and a later publishTime), repeated
plain lines, a late gateway flush (minutes of LP messages published late, so files are out of
event-time order), heartbeats with a device and a time but no metric (filtered), and errors, one
unit each: a line cut in two by a stray newline inside a string (the reader's splitter joins
the halves into ONE corrupt record), ``data`` that is not base64, a payload that is neither a
JSON object nor line protocol, a non-numeric metric (``"hot"``, ``null``), a JSON payload with
no device id anywhere, an LP line with a string field or a syntax error (the other lines of
its message stay good points).

One greenhouse device overheats for SPIKE_MINUTES in the middle of the period (33-35 degC,
else 18-26 like every other device), so RULE (``hot: temperature > 30 for 2 windows``, on the
mean of 300 s windows sliding by 60 s) fires for it once and clears; ``sliding_alerts``
computes that from ``readings_list``.

``ground_truth`` says what went in: ``records`` (what ``split_json_records`` yields: a cut
line is one), ``readings_read = readings + duplicates + filtered + errors`` (metric values of
unique points, metric values of repeated points, heartbeat points, error units),
``readings_list`` as ``(registry or None, device, metric, event time us, value)`` (the
payload time, LP ns // 1000, else the publishTime; booleans 1.0/0.0), ``errors_by_kind``,
``faults``, ``spike_device``, ``spike_windows`` and every rule event in ``alerts``.

Layout (``write_dir``): ``messages-camel.json`` (saved messages), ``messages-snake.json.gz``,
``push-envelopes.json`` (CRLF line ends), ``payloads.json`` (plain payload lines), each
roughly in publish order. ``write_ndjson`` writes all records as one LF stream. ``generate``,
``write_dir`` and ``write_ndjson`` take ``(devices, seed, minutes=60)``; 1000 devices for 60
minutes make about 512,000 readings. Standard library only and deterministic per seed, so
the bundled sample regenerates byte for byte.
"""
from __future__ import annotations

import base64
import binascii
import datetime as _dt
import json
import math
import os
import random

from pipelines.samples import files

PROJECT = "acme-iot"
REGISTRIES = {"greenhouse": "europe-west1", "warehouse": "us-central1"}
GATEWAYS = {"greenhouse": "gw-greenhouse-01", "warehouse": "gw-warehouse-01"}
SUBSCRIPTION = f"projects/{PROJECT}/subscriptions/telemetry-push"
PUBSUB_TYPE = "type.googleapis.com/google.pubsub.v1.PubsubMessage"
SECOND = 10**6  # times are epoch microseconds; LP timestamps nanoseconds
MINUTE = 60 * SECOND
START = int(_dt.datetime(2026, 11, 26, 9, tzinfo=_dt.UTC).timestamp()) * SECOND
REPORT_EVERY = 30 * SECOND
JITTER = 400_000  # +- us around each report
SAMPLE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "iot_telemetry")
SAMPLE_DEVICES, SAMPLE_SEED = 20, 11  # the bundled SAMPLE_DIR
MIN_DEVICES, MIN_MINUTES = 3, 20  # fewer cannot hold every kind of device, the spike and its end
SPIKE_MINUTES = 8
RULE = {"name": "hot", "metric": "temperature", "op": ">", "threshold": 30.0, "windows": 2,
        "size_s": 300, "period_s": 60, "action": {"fan": "high"}}

TIME_KEYS = ("ts", "timestamp", "time")
RESERVED = TIME_KEYS + ("device_id", "deviceId", "registry_id")  # payload keys that are not metrics
TIME_FORMATS = ("rfc3339", "epoch_s", "epoch_s_float", "epoch_ms", "none")  # none: publishTime
RFC_DIGITS = (3, 3, 3, 6, 6, 0, 2, 9)  # fraction digits, drawn per message
FILES = {"camel": "messages-camel.json", "snake": "messages-snake.json", "push": "push-envelopes.json",
         "plain": "payloads.json"}
GZIPPED = ("messages-snake.json",)
CRLF = ("push-envelopes.json",)
FORMS = ("camel", "camel_typed", "snake", "push", "plain")
ERROR_KINDS = ("cut_line", "bad_base64", "not_object", "not_numeric", "no_device", "lp_string_field",
               "lp_syntax")
NOT_OBJECTS = ("hello from pi", "[21.5, 40]")
NOT_NUMERIC = ("hot", None)
LP_MEASUREMENTS = ("environment", "climate")

_BASE_CACHE: dict[int, str] = {}


def rfc3339(us: int, digits: int = 6, suffix: str = "Z") -> str:
    """Epoch us -> RFC 3339 UTC with `digits` (0-9) fraction digits, truncated."""
    sec, frac = divmod(us, SECOND)
    base = _BASE_CACHE.get(sec)
    if base is None:
        base = _BASE_CACHE[sec] = _dt.datetime.fromtimestamp(sec, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if not digits:
        return base + suffix
    return f"{base}.{frac:06d}000"[:len(base) + 1 + digits] + suffix


def window_name(us: int) -> str:
    """A window start as the rule's events name it: "2026-11-26T09:26:00Z"."""
    return rfc3339(us, 0)


class Device:
    """A sensor: where it is, how it publishes, and the shape of its readings."""
    __slots__ = ("registry", "id", "num_id", "lp", "plain", "time_fmt", "time_key", "id_key",
                 "reg_in_payload", "spike", "attrs", "measurement", "room", "phase", "base", "amp",
                 "wave", "decimals", "hum", "volt", "percent", "soil", "co2", "greenhouse")

    def info(self) -> dict:
        return {"registry": self.registry, "device": self.id,
                "format": "line_protocol" if self.lp else "json",
                "transport": "plain" if self.plain else "gateway" if self.lp else "pubsub",
                "time": "lp_ns" if self.lp else self.time_fmt, "spike": self.spike}


class Msg:
    """One record before it is rendered: a Pub/Sub message or a plain payload line."""
    __slots__ = ("dev", "form", "typed", "payload", "data", "publish", "mid", "points", "dup",
                 "errors", "error_kind", "filtered", "tlabel", "key", "touched", "cut", "late")

    def __init__(self, dev, form, typed, payload, publish, points, tlabel=None):
        self.dev, self.form, self.typed, self.payload = dev, form, typed, payload
        self.data = base64.b64encode(payload.encode()).decode() if form != "plain" else None
        self.publish, self.mid, self.points, self.dup = publish, None, points, False
        self.errors, self.error_kind, self.filtered, self.tlabel = 0, None, 0, tlabel
        self.key = publish
        self.touched = self.cut = self.late = False


def _devices(rng: random.Random, n: int) -> list[Device]:
    n_lp, n_plain = max(1, round(n * 0.25)), max(1, round(n * 0.15))
    n_json = n - n_lp - n_plain
    width = max(2, len(str(n)))
    counters: dict[str, int] = {}
    json_fmts = [TIME_FORMATS[(i + 1) % len(TIME_FORMATS)] for i in range(n_json)]  # [0]: rfc3339
    json_fmts[0] = "rfc3339"
    plain_fmts = [("rfc3339", "epoch_ms", "epoch_s_float", "epoch_s")[i % 4] for i in range(n_plain)]
    regs = list(REGISTRIES)
    out = []
    for i in range(n):
        d = Device()
        kind = "json" if i < n_json else "lp" if i < n_json + n_lp else "plain"
        j = i if kind == "json" else i - n_json if kind == "lp" else i - n_json - n_lp
        d.registry = regs[j % 2]
        d.greenhouse = d.registry == "greenhouse"
        d.lp, d.plain, d.spike = kind == "lp", kind == "plain", i == 0
        prefix = {"json": "gh-pi" if d.greenhouse else "wh-pi", "lp": "th", "plain": "rpi"}[kind]
        counters[prefix] = counters.get(prefix, 0) + 1
        d.id = f"{prefix}-{counters[prefix] + (10 if kind == 'lp' else 0):0{width}d}"
        d.num_id = str(rng.randrange(2 * 10**15, 3 * 10**15))
        d.time_fmt = "lp_ns" if d.lp else json_fmts[j] if kind == "json" else plain_fmts[j]
        d.time_key = TIME_KEYS[rng.randrange(3)] if not d.spike else "ts"
        d.id_key = (("device_id", "deviceId")[j % 2] if d.plain
                    else "deviceId" if kind == "json" and rng.random() < 0.3 else None)
        d.reg_in_payload = d.plain and rng.random() < 0.5
        if not d.plain:
            attrs = {"deviceId": d.id, "deviceNumId": d.num_id, "deviceRegistryId": d.registry,
                     "deviceRegistryLocation": REGISTRIES[d.registry]}
            if d.lp:
                attrs["gatewayId"] = GATEWAYS[d.registry]
            attrs.update(projectId=PROJECT, subFolder="influx" if d.lp else "")  # events/influx topic
            d.attrs = json.dumps(attrs, separators=(",", ":"))
        else:
            d.attrs = None
        d.measurement = LP_MEASUREMENTS[j % 2]
        d.room = f"r{rng.randrange(1, 9)}"
        d.phase = rng.randrange(SECOND // 2, 29 * SECOND)
        d.base = 22.0 if d.spike else 19.5 + 5 * rng.random()
        d.amp, d.wave = 0.3 + 0.9 * rng.random(), 2 * math.pi * rng.random()
        d.decimals = 1 + rng.randrange(2)
        d.hum = rng.randrange(35, 60)
        d.volt = 3.25 + 0.15 * rng.random()
        d.soil = d.greenhouse and rng.random() < 0.6
        d.percent = rng.random() < 0.5
        d.co2 = rng.random() < 0.7
        out.append(d)
    return out


def _below(rng: random.Random, n: int) -> int:
    """rng.randrange(n), faster (the hot loop draws several per reading)."""
    return int(rng.random() * n)


def _json_time(rng: random.Random, dev: Device, us: int):
    """(event us as written, JSON value, label) for a device's payload time."""
    fmt = dev.time_fmt
    if fmt == "rfc3339":
        digits = RFC_DIGITS[_below(rng, len(RFC_DIGITS))]
        us -= us % 10 ** max(0, 6 - digits)
        suffix = "Z" if rng.random() < 0.75 else "+00:00"
        return us, rfc3339(us, digits, suffix), "rfc3339_z" if suffix == "Z" else "rfc3339_offset"
    if fmt == "epoch_s":
        us -= us % SECOND
        return us, us // SECOND, "epoch_s"
    if fmt == "epoch_ms":
        us -= us % 1000
        return us, us // 1000, "epoch_ms"
    decimals = 1 + _below(rng, 3)  # epoch_s_float
    us -= us % 10 ** (6 - decimals)
    value = float(f"{us // SECOND}.{us % SECOND:06d}"[:-(6 - decimals)])
    if round(value * 1e6) != us:  # what a reader gets back from the float; never seen so far
        us -= us % SECOND
        return us, us // SECOND, "epoch_s"
    return us, value, "epoch_s_float"


def _temperature(rng: random.Random, dev: Device, us: int, spike: tuple[int, int]) -> float:
    if dev.spike and spike[0] <= us < spike[1]:
        return round(33.0 + 2.0 * rng.random(), dev.decimals)
    x = dev.base + dev.amp * math.sin(dev.wave + (us - START) / (40 * MINUTE)) + 0.4 * (rng.random() - 0.5)
    return round(x, dev.decimals)


def _json_point(rng, dev, us, spike):
    """(payload members after the id and time, as JSON text; metrics) for one JSON report.
    Written by hand: json.dumps is the slowest step of a 500k-reading run."""
    c, s = (": ", ", ") if dev.plain else (":", ",")
    temp = _temperature(rng, dev, us, spike)
    hum = dev.hum + int(6 * math.sin(dev.wave + (us - START) / (25 * MINUTE))) + _below(rng, 3) - 1
    volt = round(dev.volt - (us - START) / (3600 * SECOND) * 0.01 + 0.004 * rng.random(), 3)
    metrics = [("temperature", temp), ("humidity", float(hum)), ("battery.voltage", volt)]
    battery = f'{{"voltage"{c}{volt!r}'
    if dev.percent:
        percent = min(100, int((volt - 3.0) * 250))
        battery += f'{s}"percent"{c}{percent}'
        metrics.append(("battery.percent", float(percent)))
    text = f'"temperature"{c}{temp!r}{s}"humidity"{c}{hum}{s}"battery"{c}{battery}}}'
    if dev.soil:
        moist = round(0.3 + 0.1 * math.sin(dev.wave + (us - START) / (50 * MINUTE)) + 0.01 * rng.random(), 3)
        text += f'{s}"soil"{c}{{"moisture"{c}{moist!r}}}'
        metrics.append(("soil.moisture", moist))
    if dev.greenhouse:
        flag, on = "fan_on", temp > 27 or rng.random() < 0.05
    else:
        flag, on = "door_open", rng.random() < 0.03
    text += f'{s}"{flag}"{c}{"true" if on else "false"}'
    metrics.append((flag, 1.0 if on else 0.0))
    return text, metrics


def _json_payload(dev, time_value, body) -> str:
    """A device's JSON payload: its id and registry where it sends them, the time, then `body`
    (a dict, or JSON text of members from _json_point)."""
    c, s = (": ", ", ") if dev.plain else (":", ",")
    head = []
    if dev.id_key:
        head.append(f'"{dev.id_key}"{c}"{dev.id}"')
    if dev.reg_in_payload:
        head.append(f'"registry_id"{c}"{dev.registry}"')
    if time_value is not None:
        value = f'"{time_value}"' if isinstance(time_value, str) else repr(time_value)
        head.append(f'"{dev.time_key}"{c}{value}')
    if isinstance(body, dict):
        body = json.dumps(body, separators=(s, c))[1:-1]
    return "{" + s.join(head + [body]) + "}"


def _lp_line(rng, dev, us, spike):
    """(line, ns, metrics) for one LP report."""
    temp = _temperature(rng, dev, us, spike)
    hum = dev.hum + _below(rng, 5) - 2
    fields = f"temperature={temp!r},humidity={hum}i"
    metrics = [("temperature", temp), ("humidity", float(hum))]
    if dev.co2:
        co2 = 420 + int(200 * (1 + math.sin(dev.wave + (us - START) / (20 * MINUTE)))) + _below(rng, 20)
        fields += f",co2={co2}i"
        metrics.append(("co2", float(co2)))
    ns = us * 1000 + _below(rng, 1000)
    return f"{dev.measurement},device_id={dev.id},room={dev.room} {fields} {ns}", ns, metrics


def _form(rng: random.Random) -> tuple[str, bool]:
    """Which record form a Pub/Sub message is saved in, and whether it carries "@type"."""
    r = rng.random()
    if r < 0.45:
        return "camel", rng.random() < 0.3
    return ("snake" if r < 0.75 else "push"), False


def _latency(rng: random.Random) -> int:
    return 101_000 + _below(rng, 2_899_001)  # 0.1 to 3 s from event to publishTime (in ms)


def _ms(us: int) -> int:
    return us - us % 1000  # publishTime has millisecond precision


def _device_messages(rng: random.Random, dev: Device, minutes: int, spike: tuple[int, int]) -> list[Msg]:
    out = []
    t0 = START + dev.phase
    times = [t0 + i * REPORT_EVERY + _below(rng, 2 * JITTER + 1) - JITTER for i in range(2 * minutes)]
    if dev.lp:  # the gateway sometimes batches 2-3 points into one message
        i = 0
        while i < len(times):
            r = rng.random()
            size = min(3 if r < 0.08 else 2 if r < 0.3 else 1, len(times) - i)
            lines, points = [], []
            for us in times[i:i + size]:
                line, ns, metrics = _lp_line(rng, dev, us, spike)
                lines.append(line)
                points.append((ns // 1000, metrics))
            i += size
            publish = _ms(times[i - 1] + _latency(rng))
            out.append(Msg(dev, *_form(rng), "\n".join(lines), publish, points, "lp_ns"))
        return out
    for us in times:
        body, metrics = _json_point(rng, dev, us, spike)
        if dev.time_fmt == "none":  # the event time is the publishTime
            publish = _ms(us + _latency(rng))
            out.append(Msg(dev, *_form(rng), _json_payload(dev, None, body), publish, [(publish, metrics)],
                           "publish_time"))
            continue
        us, value, label = _json_time(rng, dev, us)
        publish = _ms(us + _latency(rng))
        payload = _json_payload(dev, value, body)
        if dev.plain:
            m = Msg(dev, "plain", False, payload, None, [(us, metrics)], label)
            m.key = publish  # posted directly, about when Pub/Sub would have published it
        else:
            m = Msg(dev, *_form(rng), payload, publish, [(us, metrics)], label)
        out.append(m)
    return out


def _undecodable(data: str) -> bool:
    """True when base64 decoding fails both strictly and leniently."""
    for validate in (False, True):
        try:
            base64.b64decode(data, validate=validate)
        except (binascii.Error, ValueError):
            continue
        return False
    return True


class _Faults:
    """Picks distinct untouched messages for each fault and makes the extra records."""

    def __init__(self, rng: random.Random, devices: list[Device], msgs: list[Msg], minutes: int):
        self.rng, self.devices, self.msgs, self.minutes = rng, devices, msgs, minutes
        self.k = max(2, round(len(msgs) / 600))
        self.extra: list[Msg] = []  # new messages: retries, errors, heartbeats
        self.copies: list[tuple[int, Msg]] = []  # (key, message): the same line again
        self.counts = dict.fromkeys(("redeliveries", "retries", "plain_repeats", "late_flushes",
                                     "late_messages", "heartbeats"), 0)
        self.errors = dict.fromkeys(ERROR_KINDS, 0)
        self.pools = {"lp": [d for d in devices if d.lp], "pubsub": [d for d in devices if not d.plain],
                      "json": [d for d in devices if not d.lp],
                      "json_timed": [d for d in devices if not d.lp and d.time_fmt != "none"]}
        self.by_device: dict[str, list[Msg]] = {}
        for m in msgs:
            self.by_device.setdefault(m.dev.id, []).append(m)

    def pick(self, ok, count: int, among: list[Msg] | None = None) -> list[Msg]:
        """Up to `count` untouched messages (of `among`, else all) passing ok, now touched,
        in key order."""
        pool = [m for m in (self.msgs if among is None else among) if not m.touched and ok(m)]
        chosen = sorted(self.rng.sample(pool, min(count, len(pool))), key=lambda m: m.key)
        for m in chosen:
            m.touched = True
        return chosen

    def when(self) -> int:
        return START + 2 * MINUTE + self.rng.randrange((self.minutes - 4) * MINUTE)

    def device(self, kind: str) -> Device:
        pool = self.pools[kind]
        return pool[self.rng.randrange(len(pool))]

    def new(self, dev: Device | None, payload: str, us: int, tlabel=None, form=None, points=()) -> Msg:
        publish = _ms(us + _latency(self.rng))
        form, typed = (form, False) if form else ("plain", False) if dev.plain else _form(self.rng)
        m = Msg(dev, form, typed, payload, None if form == "plain" else publish, list(points), tlabel)
        m.key, m.touched = publish, True
        self.extra.append(m)
        return m

    def error(self, kind: str, m: Msg) -> None:
        m.errors, m.error_kind = m.errors + 1, kind
        self.errors[kind] += 1

    def run(self) -> None:
        rng, k = self.rng, self.k
        for m in self.pick(lambda m: m.form != "plain" and m.points, k + 2):  # ack deadline missed
            self.copies.append((m.key + rng.randrange(10 * SECOND, 600 * SECOND), m))
            self.counts["redeliveries"] += 1
        for m in self.pick(lambda m: m.form != "plain" and m.points and m.tlabel != "publish_time", k):
            r = self.new(m.dev, m.payload, m.publish + rng.randrange(5 * SECOND, 60 * SECOND), m.tlabel,
                         points=m.points)  # no ack reached the device: it publishes again
            r.dup = True
            self.counts["retries"] += 1
        for m in self.pick(lambda m: m.form == "plain" and m.points, max(2, k // 2)):  # posted twice
            self.copies.append((m.key + rng.randrange(SECOND, 30 * SECOND), m))
            self.counts["plain_repeats"] += 1
        self._late_flushes(max(1, k // 4))
        self._errors()
        for j in range(k):  # heartbeats: a device and a time, no metric
            dev = self.device("json_timed")
            us, value, label = _json_time(rng, dev, self.when())
            obj = {dev.id_key or ("deviceId", "device_id")[j % 2]: dev.id, dev.time_key: value}
            self.new(dev, json.dumps(obj, separators=(",", ":")), us, label).filtered = 1
            self.counts["heartbeats"] += 1

    def _late_flushes(self, count: int) -> None:
        """A gateway loses its uplink for a few minutes, then flushes what it buffered."""
        rng, lp = self.rng, self.pools["lp"]
        for j in range(count):
            dev = lp[j % len(lp)]
            a = START + rng.randrange(min(10, self.minutes // 5), self.minutes - 12) * MINUTE
            b = a + (3 + rng.randrange(3)) * MINUTE
            late = self.pick(lambda m, a=a, b=b: a <= m.publish < b, len(self.msgs), self.by_device[dev.id])
            flush = b + rng.randrange(2 * MINUTE, 5 * MINUTE)
            for i, m in enumerate(late):
                m.publish = m.key = _ms(flush + i * 37_000 + rng.randrange(1000))
                m.late = True
            self.counts["late_flushes"] += 1
            self.counts["late_messages"] += len(late)

    def _errors(self) -> None:
        rng, k = self.rng, self.k
        # a stray newline inside a string: in a saved message's data, or in a plain line's device id
        for m in (self.pick(lambda m: not m.dev.spike and m.points and m.form in ("camel", "snake"), (k + 1) // 2)
                  + self.pick(lambda m: m.form == "plain" and m.points, k // 2)):
            m.cut, m.points = True, []
            self.error("cut_line", m)
        for j, m in enumerate(self.pick(lambda m: not m.dev.spike and m.points and m.form != "plain", k)):
            # a publisher that forgot to encode (the JSON text itself), or a truncated encoding
            trimmed = m.data.rstrip("=")
            if j % 2 == 0 and not m.dev.lp and _undecodable(m.payload):
                m.data = m.payload
            else:
                m.data = trimmed[:max(1, (len(trimmed) // 4 - 1) * 4 + 1)]
            assert _undecodable(m.data), m.data
            m.points = []
            self.error("bad_base64", m)
        for j in range(k):  # neither a JSON object nor line protocol
            dev = self.device("pubsub")
            self.error("not_object", self.new(dev, NOT_OBJECTS[j % 2], self.when()))
        for j in range(k):  # a metric that is not a number (the payload's only metric)
            dev = self.device("json")
            us, value = self.when(), None
            if dev.time_fmt != "none":
                us, value, _ = _json_time(rng, dev, us)
            body = {"temperature": NOT_NUMERIC[j % 2]}
            self.error("not_numeric", self.new(dev, _json_payload(dev, value, body), us))
        for j in range(k):  # no device id: no attribute, no payload field
            dev = self.device("json_timed")
            us, value, _ = _json_time(rng, dev, self.when())
            obj = {dev.time_key: value, "temperature": round(20 + 4 * rng.random(), 1),
                   "humidity": rng.randrange(35, 60)}
            if j % 2 == 0:  # a plain line from a device with no id configured
                m = self.new(None, json.dumps(obj, separators=(", ", ": ")), us, form="plain")
            else:  # a message published by hand, without attributes
                m = self.new(None, json.dumps(obj, separators=(",", ":")), us, form="camel")
            self.error("no_device", m)
        for kind in ("lp_string_field", "lp_syntax"):
            hosts = self.pick(lambda m: m.dev.lp and m.points, (k + 1) // 2)
            for j in range(k):
                host = hosts[j // 2] if j % 2 == 0 and j // 2 < len(hosts) else None
                dev = host.dev if host else self.device("lp")
                us = host.points[-1][0] + 1000 if host else self.when()
                tags = f"{dev.measurement},device_id={dev.id},room={dev.room}"
                ns = us * 1000 + rng.randrange(1000)
                bad = f'{tags} status="ok" {ns}' if kind == "lp_string_field" else f"{tags} temperature {ns}"
                if host is None:
                    self.error(kind, self.new(dev, bad, us))
                    continue
                lines = host.payload.split("\n")  # one bad line among good ones
                lines.insert(rng.randrange(len(lines) + 1), bad)
                host.payload = "\n".join(lines)
                host.data = base64.b64encode(host.payload.encode()).decode()
                self.error(kind, host)


def _assign_ids(rng: random.Random, msgs: list[Msg]) -> None:
    """Numeric messageIds in publish order, one counter per registry's topic (16 and 17 digits)."""
    nxt = {"greenhouse": rng.randrange(2 * 10**15, 4 * 10**15), "warehouse": rng.randrange(10**16, 2 * 10**16)}
    for m in sorted((m for m in msgs if m.form != "plain"), key=lambda m: m.key):
        reg = m.dev.registry if m.dev is not None else "greenhouse"
        nxt[reg] += 1 + _below(rng, 3999)
        m.mid = str(nxt[reg])


def _build(devices: int, seed: int, minutes: int):
    """(records in file order as (key, seq, message, is_copy), devices, faults, spike span)."""
    if devices < MIN_DEVICES:
        raise ValueError(f"iot_telemetry needs at least {MIN_DEVICES} devices, got {devices}")
    if minutes < MIN_MINUTES:
        raise ValueError(f"iot_telemetry needs at least {MIN_MINUTES} minutes, got {minutes}")
    rng = random.Random(seed)
    devs = _devices(rng, devices)
    spike_start = START + (minutes // 2 - SPIKE_MINUTES // 2) * MINUTE
    spike = (spike_start, spike_start + SPIKE_MINUTES * MINUTE)
    msgs = [m for dev in devs for m in _device_messages(rng, dev, minutes, spike)]
    faults = _Faults(rng, devs, msgs, minutes)
    faults.run()
    originals = msgs + faults.extra
    _assign_ids(rng, originals)
    # roughly in publish order: a subscriber does not see Pub/Sub's order exactly
    records = [(m.key + (_below(rng, 3000) - 1500) * 1000, i, m, False) for i, m in enumerate(originals)]
    records += [(key, len(originals) + i, m, True) for i, (key, m) in enumerate(faults.copies)]
    records.sort(key=lambda r: (r[0], r[1]))
    return records, devs, faults, spike


def _line(m: Msg) -> str:
    """A record as it is saved (one line unless it was cut)."""
    if m.form == "plain":
        text = m.payload
    else:
        attrs = f'"attributes":{m.dev.attrs},' if m.dev is not None else ""
        data = json.dumps(m.data) if m.error_kind == "bad_base64" else f'"{m.data}"'
        pt = rfc3339(m.publish, 3)
        if m.form == "push":
            text = (f'{{"message":{{{attrs}"data":{data},"messageId":"{m.mid}","message_id":"{m.mid}",'
                    f'"publishTime":"{pt}","publish_time":"{pt}"}},"subscription":"{SUBSCRIPTION}"}}')
        elif m.form == "snake":
            text = f'{{{attrs}"data":{data},"message_id":"{m.mid}","publish_time":"{pt}"}}'
        else:
            typed = f'"@type":"{PUBSUB_TYPE}",' if m.typed else ""
            text = f'{{{typed}{attrs}"data":{data},"messageId":"{m.mid}","publishTime":"{pt}"}}'
    if m.cut:  # a stray newline inside a string value
        if m.form == "plain":
            at = text.index(f'"{m.dev.id}"') + 1 + len(m.dev.id) // 2
        else:
            at = text.index('"data":"') + 8 + len(m.data) // 2
        text = text[:at] + "\n" + text[at:]
    return text


def sliding_means(readings, metric: str = RULE["metric"], size_s: int = RULE["size_s"],
                  period_s: int = RULE["period_s"]) -> dict:
    """{(registry, device): {window start us: mean}} over the windows [start, start + size_s)
    that hold a reading of `metric`, starts on multiples of period_s (minute boundaries)."""
    size, period = size_s * SECOND, period_s * SECOND
    acc: dict = {}
    for reg, dev, _, us, value in sorted((r for r in readings if r[2] == metric),
                                         key=lambda r: (r[0] or "", r[1], r[3])):
        windows = acc.setdefault((reg, dev), {})
        last = us - us % period
        for start in range(last, last - size, -period):
            w = windows.get(start)
            if w is None:
                windows[start] = [value, 1]
            else:
                w[0] += value
                w[1] += 1
    return {key: {s: total / n for s, (total, n) in sorted(ws.items())}
            for key, ws in sorted(acc.items(), key=lambda kv: (kv[0][0] or "", kv[0][1]))}


def sliding_alerts(readings, rule: dict = RULE) -> list[dict]:
    """The rule's FIRING / CLEARED events: fire on the `windows`-th consecutive window whose
    mean is above the threshold, clear on the first window after that whose mean is not.
    Windows without readings are skipped; a gap between windows breaks the streak."""
    period = rule["period_s"] * SECOND
    events = []
    for (reg, dev), means in sliding_means(readings, rule["metric"], rule["size_s"], rule["period_s"]).items():
        streak, firing, prev = 0, False, None
        for start, mean in means.items():
            if prev is not None and start != prev + period:
                streak = 0
            prev = start
            if mean > rule["threshold"]:
                streak += 1
                if streak >= rule["windows"] and not firing:
                    firing = True
                    events.append({"registry": reg, "device": dev, "state": "FIRING",
                                   "window_start": window_name(start), "window_start_us": start, "mean": mean})
            else:
                if firing:
                    firing = False
                    events.append({"registry": reg, "device": dev, "state": "CLEARED",
                                   "window_start": window_name(start), "window_start_us": start, "mean": mean})
                streak = 0
    return events


def _registry(m: Msg) -> str | None:
    """What a reader learns of the registry: the attribute, or registry_id in a plain payload."""
    if m.form != "plain":
        return m.dev.registry
    return m.dev.registry if m.dev.reg_in_payload else None


def _truth(devices: int, seed: int, minutes: int, records, devs, faults, spike) -> dict:
    per_file = dict.fromkeys(FILES.values(), 0)
    forms = dict.fromkeys(FORMS, 0)
    readings, time_formats = [], {}
    duplicates = duplicate_points = filtered = errors = points = lp_batched = 0
    messages = set()
    for _, _, m, copy in records:
        per_file[FILES[m.form]] += 1
        forms["camel_typed" if m.typed else m.form] += 1
        if m.form != "plain":
            messages.add(m.mid)
        lp_batched += not copy and m.tlabel == "lp_ns" and len(m.points) > 1
        if copy or m.dup:
            duplicate_points += len(m.points)
            duplicates += sum(len(metrics) for _, metrics in m.points)
            continue
        filtered += m.filtered
        errors += m.errors
        if m.points:
            reg, dev = _registry(m), m.dev.id
            time_formats[m.tlabel] = time_formats.get(m.tlabel, 0) + len(m.points)
            points += len(m.points)
            for us, metrics in m.points:
                readings.extend((reg, dev, name, us, value) for name, value in metrics)
    readings.sort(key=lambda r: (r[0] or "", r[1], r[3], r[2]))
    spike_dev = devs[0]
    alerts = sliding_alerts(readings)
    means = sliding_means(readings)
    spike_means = means.get((spike_dev.registry, spike_dev.id), {})
    states = {e["state"]: e["window_start"] for e in alerts if e["device"] == spike_dev.id}
    cut = faults.errors["cut_line"]
    return {
        "devices": devices, "seed": seed, "minutes": minutes, "project": PROJECT,
        "registries": dict(REGISTRIES), "start": rfc3339(START, 0), "end": rfc3339(START + minutes * MINUTE, 0),
        "device_list": [d.info() for d in devs],
        "records": len(records),  # what the reader (split_json_records) yields: a cut line is one record
        "lines": len(records) + cut,
        "records_per_file": per_file,
        "records_by_form": forms,
        "messages": len(messages),  # distinct Pub/Sub messages (messageIds)
        "lp_messages": sum(1 for _, _, m, c in records if not c and m.tlabel == "lp_ns"),
        "lp_batched_messages": lp_batched,
        "points": points, "duplicate_points": duplicate_points,
        "readings": len(readings), "duplicates": duplicates, "filtered": filtered, "errors": errors,
        "readings_read": len(readings) + duplicates + filtered + errors,
        "errors_by_kind": dict(faults.errors),
        "faults": dict(faults.counts),
        "time_formats": dict(sorted(time_formats.items())),  # unique points by how their time was given
        "readings_list": readings,
        "rule": dict(RULE),
        "spike_device": (spike_dev.registry, spike_dev.id),
        "spike": (rfc3339(spike[0], 0), rfc3339(spike[1], 0)),
        "spike_windows": states,  # {"FIRING": window start, "CLEARED": window start}
        "spike_window_means": {window_name(s): mean for s, mean in spike_means.items()},
        "max_other_mean": max((mean for key, ms in means.items() if key != (spike_dev.registry, spike_dev.id)
                               for mean in ms.values()), default=None),
        "alerts": alerts,
    }


def generate(devices: int, seed: int, minutes: int = 60) -> dict[str, list[str]]:
    """File name -> text chunks exactly as written (join them to get the file)."""
    records = _build(devices, seed, minutes)[0]
    out: dict[str, list[str]] = {name: [] for name in FILES.values()}
    for _, _, m, _ in records:
        name = FILES[m.form]
        out[name].append(_line(m) + ("\r\n" if name in CRLF else "\n"))
    return out


def ground_truth(devices: int, seed: int, minutes: int = 60) -> dict:
    """What the generator put in: records, readings, duplicates, filtered, errors, the unique
    readings, and the alerts the sample rule must raise."""
    return _truth(devices, seed, minutes, *_build(devices, seed, minutes))


def file_name(name: str) -> str:
    """The name a generated file is written under."""
    return files.gz_name(name, GZIPPED)


def write_dir(path: str, devices: int, seed: int, minutes: int = 60) -> None:
    files.write_files(path, generate(devices, seed, minutes), GZIPPED)


def write_ndjson(fileobj, devices: int, seed: int, minutes: int = 60) -> None:
    """Every record of every file as one LF stream, in arrival order, faults kept."""
    for _, _, m, _ in _build(devices, seed, minutes)[0]:
        fileobj.write(_line(m) + "\n")
