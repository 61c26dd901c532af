"""The local-cloud demo: the streaming jobs on the real connectors, against the emulators.

  python -m localcloud.demo [--keep] [--timeout S] [--quiet S] [--jobs JOB,...]
  (make run-local-cloud)

1. Uses the emulators the *_EMULATOR_HOST variables name when all four answer there, else
   those `make emulators` started, else starts them (and stops them at the end).
2. Creates what a project would have: a topic and subscription per job, a BigQuery dataset
   per job, the Bigtable instance/table for iot_telemetry, alert and command topics.
3. Publishes each job's bundled sample as its producer does: one message per record, with
   the attributes that producer sets (a log sink's `logging.googleapis.com/timestamp`, the
   device attributes of saved IoT Core messages), in order.
4. Runs the streaming jobs one after the other with `--input projects/P/subscriptions/S
   --output P:DATASET` until its per-record table has the rows a batch run of the same
   messages gives and no table is still growing, then stops it.
5. Prints the rows per table, queried back through the BigQuery and Bigtable clients, and
   the alert and command messages pulled from their topics.

The samples are historical (2018 game events, logs and telemetry of 2026-11-26), and the
DirectRunner's Pub/Sub watermark is the wall clock, so the jobs run with an --allowed_lateness
that reaches back to them, and hourly windows (REPLAY_ARGS); live producers publish as events
happen, and the jobs' defaults apply.
"""
import argparse
import base64
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, Iterator, List, NamedTuple, Optional, Tuple

from localcloud import clients, emulators
from localcloud.emulators import PROJECT, ROOT
from transforms import jsonsplit
from transforms.telemetry import unwrap_message

SAMPLES = os.path.join(ROOT, 'pipelines', 'samples')
INSTANCE, BIGTABLE_TABLE = 'iot-instance', 'telemetry'
# A replay is all late on the DirectRunner (its Pub/Sub watermark is the wall clock): the
# lateness reaches back to the oldest sample (2018), and every bundle then updates each window
# and key it touches with one late pane (a row). Hourly windows keep that to a few thousand
# rows, which the DirectRunner and the BigQuery emulator get through in minutes; the jobs'
# own windows (60-300 s, sliding for iot_telemetry) gave 100,000s of device_stats panes.
REPLAY_ARGS = ['--allowed_lateness', str(10 * 365 * 86400), '--window', '3600']
Message = Tuple[bytes, Dict[str, str]]


def _records(pattern: str) -> Iterator[str]:
  """Each record of the sample files, as the job's file reader splits them (a record a
  stray newline cut stays one message, which the job dead-letters)."""
  import gzip
  for path in sorted(glob.glob(os.path.join(SAMPLES, pattern))):
    opener = gzip.open if path.endswith('.gz') else open
    with opener(path, 'rt', encoding='utf-8', errors='replace') as lines:
      for chunk in jsonsplit.split_json_records(lines):
        yield chunk.text


def _value(text: str):
  try:
    return jsonsplit.loads(text)
  except ValueError:
    return None


def game_messages() -> Iterator[Message]:
  """A game server's events, one per message."""
  for text in _records('game_analytics/custom_producer.json'):
    yield text.encode(), {'producer': 'game-server'}


def log_messages() -> Iterator[Message]:
  """A Cloud Logging sink's messages: the LogEntry JSON, its time as an attribute (the
  sink's GCS export files are the same entries)."""
  for pattern in ('activity.json', 'requests.json.gz', 'stderr.json', 'stdout.json',
                  'struct_log.json'):
    for text in _records('log_analytics/' + pattern):
      entry = _value(text)
      stamp = entry.get('timestamp') if isinstance(entry, dict) else None
      yield text.encode(), ({'logging.googleapis.com/timestamp': str(stamp)} if stamp else {})


def iot_messages() -> Iterator[Message]:
  """Devices' messages: saved IoT Core messages and push envelopes are published again as
  the message they hold (data and device attributes, in publish-time order); plain
  payloads as they are. A saved message that cannot be unwrapped goes as is, to errors."""
  saved, plain = [], []
  for pattern in ('messages-*.json*', 'push-envelopes.json', 'payloads.json'):
    for text in _records('iot_telemetry/' + pattern):
      try:
        message = unwrap_message(_value(text))
      except Exception:  # noqa: BLE001 (a broken saved message: the job will say why)
        message = None
      if message is None:
        plain.append((text.encode(), {}))
      else:
        data = message.data if isinstance(message.data, bytes) else message.data.encode()
        saved.append((message.publish_micros or 0, data, message.attributes))
  for _, data, attributes in sorted(saved, key=lambda m: m[0]):
    yield data, attributes
  yield from plain


def tweet_messages() -> Iterator[Message]:
  """A filtered-stream bridge: each stream record (v1.1 and v2) as a message."""
  for text in _records('tweet_sentiment/stream-v*.json'):
    yield text.encode(), {'stream': 'filtered'}


class Job(NamedTuple):
  name: str
  messages: Callable[[], Iterator[Message]]
  args: List[str]           # besides --input/--output
  main_table: str           # the per-record table: a batch run says how many rows it gets
  cloud_args: List[str] = []    # the streaming run's only (Bigtable, topics)
  topics: Tuple[str, ...] = ()  # output topics (alerts, commands) to count


def jobs() -> Dict[str, Job]:
  topic = 'projects/%s/topics/%%s' % PROJECT
  return {j.name: j for j in [
      Job('game_analytics', game_messages, [], 'events'),
      Job('log_analytics', log_messages,
          ['--metric', 'server_errors=httpRequest.status>=500', '--alert', 'server_errors>20'],
          'log_entries', ['--alert_topic', topic % 'log-alerts'], ('log-alerts',)),
      Job('iot_telemetry', iot_messages,
          ['--rule', 'hot: temperature > 30 -> {"fan": "high"}', '--window', '600',
           '--window_period', '600'], 'readings',  # the heat spike lasts about 10 minutes
          ['--bigtable', '%s:%s:%s' % (PROJECT, INSTANCE, BIGTABLE_TABLE),
           '--command_topic', topic % 'device-commands'], ('device-commands',)),
      Job('tweet_sentiment', tweet_messages,
          ['--track', 'nova x,#novax,#novaxrecall,orbitel,recall,battery'], 'tweets'),
  ]}


# --- resources --------------------------------------------------------------------------

def reset_resources(selected: List[Job]) -> Dict[str, clients.Topic]:
  """Fresh datasets, subscriptions and table: a second demo run starts from nothing."""
  from google.api_core.exceptions import NotFound
  bigquery = clients.bigquery()
  topics = {}
  for job in selected:
    bigquery.delete_dataset(job.name, delete_contents=True, not_found_ok=True)
    bigquery.create_dataset(job.name)
    for name in (job.name,) + job.topics:
      subscription = '%s-demo' % name
      existing = clients.topic(name, subscription)
      try:  # drop what an earlier run left unread
        existing.subscriber.delete_subscription(subscription=existing.subscription)
      except NotFound:
        pass
      topics[name] = clients.topic(name, subscription)
  if any(j.name == 'iot_telemetry' for j in selected):
    table = clients.bigtable_table(INSTANCE, BIGTABLE_TABLE, ['m'])
    table.delete()
    clients.bigtable_table(INSTANCE, BIGTABLE_TABLE, ['m'])
  return topics


def publish(topic: clients.Topic, messages: Iterator[Message], one_by_one: bool) -> int:
  """`one_by_one`: each message waits for the one before, so each has a publish time of
  its own, as devices publishing one reading at a time do (a payload without a time is
  stamped with it; the client's batching would give a whole batch one publish time, and
  a device's readings in it one event time)."""
  count, futures = 0, []
  for data, attributes in messages:
    future = topic.publisher.publish(topic.path, data, **attributes)
    if one_by_one:
      future.result(timeout=60)
    else:
      futures.append(future)
    count += 1
  for future in futures:
    future.result(timeout=60)
  return count


# --- counting ---------------------------------------------------------------------------

def table_counts(dataset: str, exact: bool = True) -> Dict[str, int]:
  """Rows per table: COUNT(*) queries, or the tables' metadata (lighter on the emulator
  while a job inserts)."""
  bigquery = clients.bigquery()
  tables = [t.table_id for t in bigquery.list_tables(dataset)]
  if exact:
    return {t: clients.row_count(bigquery, dataset, t) for t in tables}
  return {t: bigquery.get_table('%s.%s' % (dataset, t)).num_rows or 0 for t in tables}


def bigtable_rows() -> int:
  return sum(1 for _ in clients.bigtable_table(INSTANCE, BIGTABLE_TABLE, ['m']).read_rows())


def pull_all(topic: clients.Topic) -> int:
  """Messages waiting on the demo's subscription to an output topic (acknowledged)."""
  from google.api_core.exceptions import DeadlineExceeded
  pulled = 0
  while True:
    try:
      answer = topic.subscriber.pull(subscription=topic.subscription, max_messages=500,
                                     timeout=5)
    except DeadlineExceeded:
      return pulled
    if not answer.received_messages:
      return pulled
    topic.subscriber.acknowledge(subscription=topic.subscription,
                                 ack_ids=[m.ack_id for m in answer.received_messages])
    pulled += len(answer.received_messages)


def batch_rows(job: Job, folder: str) -> int:
  """Rows a batch run of the same messages writes to the job's main table: what the
  streaming run must reach. iot_telemetry reads messages with their attributes from files
  (saved messages); the other jobs read the message data."""
  path = os.path.join(folder, job.name + '.json')
  with open(path, 'w', encoding='utf-8') as f:
    for data, attributes in job.messages():
      if attributes and job.name == 'iot_telemetry':
        f.write(json.dumps({'data': base64.b64encode(data).decode(),
                            'attributes': attributes}) + '\n')
      else:
        f.write(data.decode('utf-8', 'replace') + '\n')
  out = os.path.join(folder, job.name)
  subprocess.run([sys.executable, '-m', 'pipelines', job.name, '--input', path,
                  '--output', out] + job.args, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT),
                 check=True, capture_output=True)
  rows = 0
  for name in glob.glob(os.path.join(out, job.main_table, '*.json')):
    with open(name, encoding='utf-8') as f:
      rows += sum(1 for line in f if line.strip())
  return rows


class Settled:
  """until(): true once the main table has the rows a batch run gives and no table has
  changed for `quiet_s` (the windowed tables follow), or nothing has changed for `stall_s`
  (the demo then says how many rows are missing).

  It reads the tables' metadata every 15 s, one job at a time: the BigQuery emulator
  crashed (a segfault) when four jobs inserted while every table was counted with queries
  every 5 s, and once with one job and queries every 10 s."""

  def __init__(self, job: Job, expected: int, quiet_s: float, stall_s: float = 90):
    self.job, self.expected, self.quiet_s, self.stall_s = job, expected, quiet_s, stall_s
    self.counts, self.since = None, time.monotonic()

  def __call__(self) -> bool:
    bigquery_answers()
    found = counts(self.job, exact=False)
    if found != self.counts:
      self.counts, self.since = found, time.monotonic()
      return False
    quiet = time.monotonic() - self.since
    return found.get(self.job.main_table, 0) > 0 and (
        quiet >= self.stall_s
        or (found[self.job.main_table] >= self.expected and quiet >= self.quiet_s))


def bigquery_answers():
  """Fail at once, not after the client's 10 minutes of retries, when the BigQuery
  emulator has died."""
  if not emulators.answers('bigquery', os.environ['BIGQUERY_EMULATOR_HOST']):
    raise RuntimeError('the BigQuery emulator stopped answering; see %s' % os.path.join(
        emulators.DEFAULT_STATE, 'bigquery.log'))


def counts(job: Job, exact: bool = True) -> Dict[str, int]:
  found = table_counts(job.name, exact)
  if job.name == 'iot_telemetry':
    found['bigtable:%s' % BIGTABLE_TABLE] = bigtable_rows()
  return found


def run_job(job: Job, expected: int, timeout_s: float, quiet_s: float) -> clients.Finished:
  args = ['--input', 'projects/%s/subscriptions/%s-demo' % (PROJECT, job.name),
          '--output', '%s:%s' % (PROJECT, job.name)] + REPLAY_ARGS + job.args + job.cloud_args
  return clients.run_streaming(job.name, args, Settled(job, expected, quiet_s),
                               timeout_s=timeout_s, poll_s=15)


# --- main -------------------------------------------------------------------------------

def main(argv: Optional[List[str]] = None) -> int:
  known = jobs()
  parser = argparse.ArgumentParser(prog='python -m localcloud.demo',
                                   description=__doc__.split('\n\n')[0])
  parser.add_argument('--jobs', default=','.join(known),
                      help='comma-separated jobs to run (default: %(default)s)')
  parser.add_argument('--timeout', type=float, default=900,
                      help='seconds each job may run at most (default %(default)s)')
  parser.add_argument('--quiet', type=float, default=20,
                      help='a job is done when its main table has all its rows and no table '
                      'has grown for this long (default %(default)s s)')
  parser.add_argument('--keep', action='store_true',
                      help='leave the emulators running (with the data) when it started them')
  parser.add_argument('--state', default=emulators.DEFAULT_STATE,
                      help='the emulators\' state folder (default: .emulators)')
  args = parser.parse_args(argv)
  names = [n.strip() for n in args.jobs.split(',') if n.strip()]
  unknown = [n for n in names if n not in known]
  if unknown:
    parser.error('unknown job %s (streaming jobs: %s)' % (', '.join(unknown), ', '.join(known)))
  selected = [known[n] for n in names]

  if exported_emulators_answer():  # eval "$(python -m localcloud.emulators env)" was run
    os.environ.update(emulators.CLIENT_ENV)
    return _demo(selected, args)
  started = []
  running = {r.name for r in emulators.running(args.state)
             if emulators.EMULATORS[r.name].ready(emulators.HOST, r.port)}
  missing = [n for n in emulators.EMULATORS if n not in running]
  try:
    if missing:
      emulators.install(args.state)
      emulators.start(missing, args.state)
      started = missing
    os.environ.update(emulators.exports(args.state))
    return _demo(selected, args)
  finally:
    if started and not args.keep:
      emulators.stop(args.state, started)
    elif started:
      print('\nThe emulators keep running (make emulators-stop ends them); to use them:')
      for env, value in emulators.exports(args.state).items():
        print('  export %s=%s' % (env, value))


def exported_emulators_answer() -> bool:
  """Every *_EMULATOR_HOST is set in the environment and its emulator answers there."""
  return all(os.environ.get(emulator.env) and emulators.answers(name, os.environ[emulator.env])
             for name, emulator in emulators.EMULATORS.items())


def _demo(selected: List[Job], args) -> int:
  print('Creating topics, subscriptions, datasets%s in project %s' % (
      ' and the Bigtable table' if any(j.name == 'iot_telemetry' for j in selected) else '',
      PROJECT))
  topics = reset_resources(selected)
  for job in selected:
    count = publish(topics[job.name], job.messages(), job.name == 'iot_telemetry')
    print('  published %5d messages to %s' % (count, topics[job.name].path), flush=True)
  with tempfile.TemporaryDirectory(prefix='local-cloud-batch-') as folder:
    expected = {job.name: batch_rows(job, folder) for job in selected}
  status = 0
  for job in selected:  # one at a time: the BigQuery emulator does not take four at once
    print('\nRunning %s (streaming, DirectRunner) until %s has the %d rows a batch run of '
          'the same messages gives, and no table grows for %.0f s ...' % (
              job.name, job.main_table, expected[job.name], args.quiet), flush=True)
    run = run_job(job, expected[job.name], args.timeout, args.quiet)
    print('%s: %s after %.0f s; rows per table in BigQuery %s:%s' % (
        job.name, 'done' if run.done else 'STILL RUNNING at the timeout', run.seconds,
        PROJECT, job.name))
    if not run.done:
      status = 1
      print(run.output[-2000:])
    found = counts(job)
    if found.get(job.main_table, 0) != expected[job.name]:
      print('  (%s: %d rows; a batch run of the same messages wrote %d)' % (
          job.main_table, found.get(job.main_table, 0), expected[job.name]))
    width = max([len(t) for t in found] + [len('topic:' + t) for t in job.topics] + [10])
    for table, rows in sorted(found.items()):
      print('  %-*s %7d rows' % (width, table, rows))
    for name in job.topics:
      print('  %-*s %7d messages' % (width, 'topic:' + name, pull_all(topics[name])),
            flush=True)
  return status


if __name__ == '__main__':
  sys.exit(main())
