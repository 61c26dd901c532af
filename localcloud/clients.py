"""The Google client libraries pointed at the emulators (from the *_EMULATOR_HOST variables
`python -m localcloud.emulators env` prints), and a streaming job run until its output is
in: what the local-cloud demo and the integration tests both do, kept in one place."""
import os
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence

from localcloud import emulators
from localcloud.emulators import PROJECT, ROOT


def bigquery(project: str = PROJECT):
  """A BigQuery client on BIGQUERY_EMULATOR_HOST (anonymous: the emulator checks nothing)."""
  from google.auth.credentials import AnonymousCredentials
  from google.cloud import bigquery as bq
  return bq.Client(project=project, credentials=AnonymousCredentials(),
                   client_options={'api_endpoint': os.environ['BIGQUERY_EMULATOR_HOST']})


def storage(project: str = PROJECT):
  """A Cloud Storage client; it reads STORAGE_EMULATOR_HOST itself."""
  from google.auth.credentials import AnonymousCredentials
  from google.cloud import storage as gcs
  return gcs.Client(project=project, credentials=AnonymousCredentials())


def row_count(client, dataset: str, table: str) -> int:
  """Rows in `dataset.table`, 0 while the table does not exist (jobs create tables with
  their first rows)."""
  from google.api_core.exceptions import NotFound
  try:
    query = 'SELECT COUNT(*) AS n FROM `%s.%s.%s`' % (client.project, dataset, table)
    return list(client.query(query).result())[0]['n']
  except NotFound:
    return 0


def rows(client, dataset: str, table: str, order_by: str = '') -> List[Dict]:
  query = 'SELECT * FROM `%s.%s.%s`%s' % (client.project, dataset, table,
                                          ' ORDER BY ' + order_by if order_by else '')
  return [dict(row.items()) for row in client.query(query).result()]


class Topic(NamedTuple):
  publisher: object
  path: str
  subscriber: object
  subscription: str


def topic(name: str, subscription: str, project: str = PROJECT) -> Topic:
  """A topic and a subscription to it (kept if they exist: the demo can run twice)."""
  from google.api_core.exceptions import AlreadyExists
  from google.cloud import pubsub_v1
  publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
  path = publisher.topic_path(project, name)
  sub_path = subscriber.subscription_path(project, subscription)
  for create in (lambda: publisher.create_topic(name=path),
                 lambda: subscriber.create_subscription(name=sub_path, topic=path)):
    try:
      create()
    except AlreadyExists:
      pass
  return Topic(publisher, path, subscriber, sub_path)


def bigtable_table(instance: str, table: str, families: Sequence[str],
                   project: str = PROJECT):
  """A Bigtable table on BIGTABLE_EMULATOR_HOST with `families` (one version each)."""
  from google.cloud import bigtable as bt
  from google.cloud.bigtable import column_family
  handle = bt.Client(project=project, admin=True).instance(instance).table(table)
  if not handle.exists():
    handle.create(column_families={f: column_family.MaxVersionsGCRule(1) for f in families})
  return handle


class Finished(NamedTuple):
  done: bool      # `until` held before the deadline
  seconds: float  # from start to done (or to the deadline)
  output: str     # the job's stdout and stderr


def run_streaming(job: str, args: Sequence[str], until: Callable[[], bool],
                  timeout_s: float = 180, poll_s: float = 3, settle_s: float = 0,
                  tick: Optional[Callable[[], None]] = None) -> Finished:
  """Run `python -m pipelines JOB ARGS` (a streaming job: it never ends by itself) until
  `until()` holds, wait `settle_s` more (a duplicate written late would show), then stop
  its whole process group. `tick()` runs every poll, e.g. to publish a heartbeat."""
  started = time.monotonic()
  with tempfile.TemporaryFile() as log:  # a pipe nobody reads would fill and stall the job
    process = subprocess.Popen(
        [sys.executable, '-m', 'pipelines', job] + list(args), cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT), start_new_session=True,
        stdout=log, stderr=subprocess.STDOUT)
    done = False
    try:
      while time.monotonic() < started + timeout_s and process.poll() is None:
        if tick:
          tick()
        if until():
          done = True
          break
        time.sleep(poll_s)
      seconds = time.monotonic() - started
      time.sleep(settle_s if done else 0)
    finally:
      emulators.end_group(process.pid, wait_s=30)
    log.seek(0)
    output = log.read().decode(errors='replace')
  return Finished(done, seconds, output)
