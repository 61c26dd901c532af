"""The report from a BigQuery dataset on the emulator: tables created from schemas/ with the
rows of tests/test_report.py, the same exact numbers as from files; iot_telemetry under a
table prefix beside log_analytics' `alerts`, `errors` shared and split by its job column."""
import os

import pytest

import schemas
from pipelines.report import __main__ as cli
from pipelines.report.sources import JOBS
from tests.emulator_fixtures import cloud  # noqa: F401 (the module fixture)
from tests.test_report import (EXPECTED_CHARTS, Page, assert_known_numbers, assert_png,
                               assert_references_exist, known_rows)

pytestmark = pytest.mark.integration

PROJECT = 'local-project'
PREFIXES = {'iot_telemetry': 'iot_'}  # its alerts beside log_analytics' own
# The emulator cannot create bigtable_rows (a RECORD field named `column` fails its SQL
# parser); the report does not read it.
UNCREATABLE = {'bigtable_rows'}


def _bigquery():
  from google.auth.credentials import AnonymousCredentials
  from google.cloud import bigquery
  return bigquery.Client(project=PROJECT, credentials=AnonymousCredentials(),
                         client_options={'api_endpoint': os.environ['BIGQUERY_EMULATOR_HOST']})


def create_table(client, dataset, job, name, table, rows):
  from google.cloud import bigquery
  ref = '%s.%s.%s' % (PROJECT, dataset, name)
  retry = bigquery.DEFAULT_RETRY.with_timeout(30)  # a failure is not worth 10 minutes
  client.create_table(bigquery.Table(ref, schema=[
      bigquery.SchemaField.from_api_repr(f) for f in schemas.fields(job, table)]),
      exists_ok=True, retry=retry)
  if rows:
    assert client.insert_rows_json(ref, rows, retry=retry) == []


def load(client, dataset, rows, prefixes=PREFIXES):
  """Every job's tables into `dataset`; unprefixed jobs share one `errors` table."""
  client.create_dataset(dataset)
  for job, tables in rows.items():
    prefix = prefixes.get(job, '')
    for table, table_rows in tables.items():
      if table in UNCREATABLE:
        continue
      create_table(client, dataset, job, prefix + table, table, table_rows)


@pytest.fixture(scope='module')
def dataset(cloud, tmp_path_factory):  # noqa: F811
  client = _bigquery()
  load(client, 'report_known', known_rows(str(tmp_path_factory.mktemp('images'))))
  return client


def test_report_from_a_dataset_has_the_numbers_the_files_give(dataset, tmp_path, capsys):
  assert cli.main(['%s:report_known' % PROJECT, '--out', str(tmp_path / 'r')]) == 0
  assert '(6 of 6 jobs)' in capsys.readouterr().out
  page = Page(tmp_path / 'r' / 'report.html')
  assert_known_numbers(page, with_counters=False)
  assert sorted(page.images) == sorted('%s-%s.png' % (job, name)
                                       for job, names in EXPECTED_CHARTS.items()
                                       for name in names)
  for src in page.images:
    assert_png(os.path.join(tmp_path, 'r', src))
  assert_references_exist(page)
  for job in JOBS:
    assert page.texts('notes', job)[-1].startswith('No _metrics.json here')
  assert "Tables found with the prefix 'iot_'." in page.texts('notes', 'iot_telemetry')
  assert page.table('iot_telemetry', 'stage', 'errors') == [('decode_point', '1')]
  assert page.table('face_dataset', 'stage', 'errors') == [('decode', '1')]


def test_explicit_prefix_and_endpoint_flag(dataset, tmp_path, monkeypatch):
  endpoint = os.environ['BIGQUERY_EMULATOR_HOST']
  monkeypatch.delenv('BIGQUERY_EMULATOR_HOST')
  assert cli.main(['%s:report_known' % PROJECT, '--out', str(tmp_path / 'r'),
                   '--bigquery_endpoint', endpoint, '--table_prefix', 'iot_telemetry=iot_',
                   '--table_prefix', 'game_analytics=nope_']) == 0
  page = Page(tmp_path / 'r' / 'report.html')
  assert page.texts('notes', 'game_analytics') == [
      'Skipped: no game_analytics output in %s:report_known.' % PROJECT]
  assert page.table('iot_telemetry', 'device', '10:00', '10:01', '10:02')[0] == (
      'd1', '20', '20', '20')
  assert "Tables found with the prefix 'iot_'." not in page.texts('notes', 'iot_telemetry')


def test_alerts_of_another_job_are_not_used(dataset, tmp_path):
  """iot_telemetry's `alerts` unprefixed beside log_analytics: the log section says why it
  shows no alerts instead of reading the wrong table."""
  rows = known_rows(str(tmp_path))
  load(dataset, 'report_shared', {'iot_telemetry': rows['iot_telemetry'],
                                  'log_analytics': {'log_metrics': rows['log_analytics'][
                                      'log_metrics']}}, prefixes={})
  assert cli.main(['%s:report_shared' % PROJECT, '--out', str(tmp_path / 'r')]) == 0
  page = Page(tmp_path / 'r' / 'report.html')
  notes = ' '.join(page.texts('notes', 'log_analytics'))
  assert "Table alerts is not log_analytics's alerts" in notes
  assert 'alerts: no rows' in page.texts('norows', 'log_analytics')
  assert page.table('iot_telemetry', 'window start (UTC)', 'window end (UTC)')[0][4] == 'FIRING'
  for job in ('game_analytics', 'tweet_sentiment', 'face_dataset', 'image_inference'):
    assert page.texts('notes', job)[0].startswith('Skipped')
