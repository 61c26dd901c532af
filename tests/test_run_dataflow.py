"""run_dataflow.sh: the exact commands each subcommand runs (--dry-run), and its refusals.

Nothing here calls gcloud for real: --dry-run prints the commands, which are parsed back
with shlex (so the quoting is tested too)."""
import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from pipelines.__main__ import JOBS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, 'run_dataflow.sh')
PY = sys.executable
CONFIG = {'PROJECT': 'my-proj', 'REGION': 'us-central1', 'BUCKET': 'my-bkt', 'TAG': 'v1',
          'PYTHON': PY}
REGISTRY = 'us-central1-docker.pkg.dev/my-proj/beam-analytics'
SA = 'beam-analytics-worker@my-proj.iam.gserviceaccount.com'
BATCH_JOBS = list(JOBS)
COMMON = ['--runner', 'DataflowRunner', '--project', 'my-proj', '--region', 'us-central1',
          '--temp_location', 'gs://my-bkt/tmp', '--staging_location', 'gs://my-bkt/staging']
ACCELERATOR = 'worker_accelerator=type:nvidia-tesla-t4;count:1;install-nvidia-driver'


def script(*args, **env):
  """Run the script; -> (commands as argv lists, stderr, exit status)."""
  environ = {'PATH': os.environ['PATH'], 'HOME': os.environ.get('HOME', '/tmp')}
  environ.update(CONFIG)
  environ.update({k: v for k, v in env.items() if v is not None})
  for key, value in env.items():
    if value is None:
      environ.pop(key, None)
  done = subprocess.run(['bash', SCRIPT] + list(args), capture_output=True, text=True,
                        env=environ, cwd='/', timeout=120)
  commands = [shlex.split(line) for line in done.stdout.splitlines() if line.strip()]
  return commands, done.stderr, done.returncode


def dry(*args, **env):
  commands, stderr, status = script(*args, '--dry-run', **env)
  assert status == 0, stderr
  return commands, stderr


def required_params(job):
  params = ['input=gs://my-bkt/in/%s/*' % job, 'output=gs://my-bkt/out/%s' % job]
  if job == 'image_inference':
    params.append('model=gs://my-bkt/models/face.keras')
  return params


def dashed(job):
  return job.replace('_', '-')


# ---- run / update / drain

@pytest.mark.parametrize('job', BATCH_JOBS)
def test_run_submits_the_job_with_the_dataflow_runner(job):
  commands, stderr = dry('run', job, '--input', 'gs://my-bkt/in/*', '--output',
                         'gs://my-bkt/out', '--job-name', 'nightly-1')
  expected = [PY, '-m', 'pipelines', job, '--input', 'gs://my-bkt/in/*', '--output',
              'gs://my-bkt/out'] + COMMON + [
                  '--job_name', 'nightly-1', '--labels', 'app=beam-analytics',
                  '--labels', 'job=' + job]
  if job == 'image_inference':  # TensorFlow is not in --setup_file's install: its image
    expected += ['--sdk_container_image', '%s/image-inference:v1' % REGISTRY,
                 '--sdk_location', 'container']
    assert '--setup_file cannot bring TensorFlow' in stderr
  else:
    expected += ['--setup_file', './setup.py']
  assert commands == [expected]
  assert 'Compute Engine default service account' in stderr


def test_run_names_the_job_after_it_and_the_time():
  commands, _ = dry('run', 'game_analytics', '--input', 'gs://my-bkt/in/*')
  name = commands[0][commands[0].index('--job_name') + 1]
  assert re.fullmatch(r'game-analytics-\d{8}-\d{6}', name)


@pytest.mark.parametrize('source', [['--input', 'projects/my-proj/subscriptions/logs'],
                                    ['--input=projects/my-proj/subscriptions/logs']])
def test_a_pubsub_input_runs_on_streaming_engine(source):
  commands, _ = dry('run', 'log_analytics', *source, '--output', 'my-proj:logs',
                    '--job-name', 'logs')
  assert commands[0][-1] == '--enable_streaming_engine'
  assert commands[0].count('--enable_streaming_engine') == 1


def test_run_passes_the_service_account_and_job_flags_with_spaces_and_quotes():
  commands, stderr = dry('run', 'iot_telemetry', '--input', 'gs://my-bkt/t/*',
                         '--rule', "hot: temperature > 30 -> {\"fan\": \"it's high\"}",
                         '--job-name', 'iot', SERVICE_ACCOUNT=SA)
  command = commands[0]
  assert command[command.index('--rule') + 1] == "hot: temperature > 30 -> {\"fan\": \"it's high\"}"
  assert command[-2:] == ['--service_account_email', SA]
  assert 'default service account' not in stderr


def test_run_in_the_container_image():
  commands, _ = dry('run', 'face_dataset', '--input', 'gs://my-bkt/p/*/*', '--container',
                    '--job-name', 'faces')
  assert commands[0][-4:] == ['--sdk_container_image', '%s/face-dataset:v1' % REGISTRY,
                              '--sdk_location', 'container']
  assert '--setup_file' not in commands[0]


def test_run_on_gpus():
  commands, _ = dry('run', 'image_inference', '--input', 'gs://my-bkt/v.txt', '--model',
                    'gs://my-bkt/m.keras', '--output', 'gs://my-bkt/o', '--gpu',
                    '--job-name', 'inference')
  assert commands == [[
      PY, '-m', 'pipelines', 'image_inference', '--input', 'gs://my-bkt/v.txt', '--model',
      'gs://my-bkt/m.keras', '--output', 'gs://my-bkt/o'] + COMMON + [
      '--job_name', 'inference', '--labels', 'app=beam-analytics',
      '--labels', 'job=image_inference',
      '--sdk_container_image', '%s/image-inference-gpu:v1' % REGISTRY,
      '--sdk_location', 'container',
      '--dataflow_service_options', ACCELERATOR, '--machine_type', 'n1-standard-4',
      '--experiments', 'no_use_multiple_sdk_containers', '--disk_size_gb', '50',
      '--device', 'gpu']]


@pytest.mark.parametrize('gpu, machine', [
    (['--gpu-type', 'nvidia-l4', '--gpu-count', '2'], 'g2-standard-24'),
    (['--gpu-type', 'nvidia-tesla-a100'], 'a2-highgpu-1g'),
    (['--gpu-type', 'nvidia-tesla-t4', '--gpu-count', '4'], 'n1-standard-16'),
    (['--gpu-type', 'nvidia-h100-80gb', '--machine-type', 'a3-highgpu-8g'], 'a3-highgpu-8g'),
])
def test_gpu_machine_types_fit_the_accelerator(gpu, machine):
  commands, _ = dry('run', 'image_inference', '--input', 'gs://my-bkt/v.txt', '--gpu', *gpu)
  command = commands[0]
  assert command[command.index('--machine_type') + 1] == machine
  accelerator = command[command.index('--dataflow_service_options') + 1]
  assert accelerator.startswith('worker_accelerator=type:%s;count:' % gpu[1])


def test_a_machine_type_without_gpus():
  commands, _ = dry('run', 'face_dataset', '--input', 'gs://my-bkt/p/*/*', '--machine-type',
                    'n2-highcpu-16', '--job-name', 'f')
  assert commands[0][-2:] == ['--machine_type', 'n2-highcpu-16']
  commands, _ = dry('run-template', 'face_dataset', '--param', 'output=gs://my-bkt/f',
                    '--param', 'input=gs://my-bkt/p/*/*',
                    '--job-name', 'f', MACHINE_TYPE='n2-highcpu-16')
  assert commands[0][-2:] == ['--worker-machine-type', 'n2-highcpu-16']


def test_more_than_one_gpu_is_allowed_with_a_warning():
  _, stderr = dry('run', 'image_inference', '--input', 'gs://my-bkt/v.txt', '--gpu',
                  '--gpu-count', '2')
  assert 'more than one leaves the others idle' in stderr


def test_gpu_environment_and_an_explicit_device_win():
  commands, _ = dry('run', 'image_inference', '--input', 'gs://my-bkt/v.txt', '--gpu',
                    '--device', 'auto', GPU_TYPE='nvidia-l4', GPU_COUNT='1')
  command = commands[0]
  assert command.count('--device') == 1 and command[command.index('--device') + 1] == 'auto'
  assert command[command.index('--machine_type') + 1] == 'g2-standard-4'


@pytest.mark.parametrize('args, message', [
    (['run', 'game_analytics', '--gpu'], '--gpu is for image_inference'),
    (['run', 'image_inference', '--gpu', '--gpu-type', 'nvidia-h100-80gb'],
     'no default machine type for 1 x nvidia-h100-80gb'),
    (['run', 'image_inference', '--gpu', '--gpu-count', '0'], 'GPU_COUNT'),
    (['run', 'image_inference', '--gpu', '--gpu-count', '3'], 'no default machine type for 3'),
    (['run', 'image_inference', '--gpu-type', 'nvidia-l4'], '--gpu-type needs --gpu'),
    (['drain', 'image_inference', '--gpu'], '--gpu does not apply to drain'),
])
def test_gpu_refusals(args, message):
  commands, stderr, status = script(*args, '--dry-run')
  assert status == 2 and commands == []
  assert message in stderr


def test_update_looks_up_the_running_job_and_replaces_it():
  commands, stderr = dry('update', 'game_analytics', '--input',
                         'projects/my-proj/subscriptions/game', '--output', 'my-proj:game')
  assert commands[0] == [
      'gcloud', 'dataflow', 'jobs', 'list', '--project', 'my-proj', '--region', 'us-central1',
      '--status', 'active', '--filter', 'name~^game-analytics-[0-9]{8}-[0-9]{6}$',
      '--format', 'value(name)']
  assert commands[1] == [
      PY, '-m', 'pipelines', 'game_analytics', '--input',
      'projects/my-proj/subscriptions/game', '--output', 'my-proj:game'] + COMMON + [
      '--job_name', 'RUNNING_JOB', '--labels', 'app=beam-analytics',
      '--labels', 'job=game_analytics', '--setup_file', './setup.py',
      '--enable_streaming_engine', '--update']
  assert 'RUNNING_JOB stands for the name' in stderr


def test_update_by_name_and_only_for_streaming_jobs():
  commands, _ = dry('update', 'iot_telemetry', '--input', 'projects/my-proj/topics/t',
                    '--job-name', 'iot-20261127-010000')
  assert len(commands) == 1
  assert commands[0][commands[0].index('--job_name') + 1] == 'iot-20261127-010000'
  _, stderr, status = script('update', 'iot_telemetry', '--input', 'gs://my-bkt/x',
                             '--dry-run')
  assert status == 2 and 'update replaces a running streaming job' in stderr


def test_drain():
  commands, _ = dry('drain', 'log_analytics', BUCKET=None)
  assert commands == [
      ['gcloud', 'dataflow', 'jobs', 'list', '--project', 'my-proj', '--region', 'us-central1',
       '--status', 'active', '--filter', 'name~^log-analytics-[0-9]{8}-[0-9]{6}$',
       '--format', 'value(id)'],
      ['gcloud', 'dataflow', 'jobs', 'drain', 'RUNNING_JOB', '--project', 'my-proj',
       '--region', 'us-central1']]
  commands, _ = dry('drain', 'log_analytics', '--job-id', '2026-11-27_01_02_03-123')
  assert commands == [['gcloud', 'dataflow', 'jobs', 'drain', '2026-11-27_01_02_03-123',
                       '--project', 'my-proj', '--region', 'us-central1']]


# ---- templates

@pytest.mark.parametrize('job', BATCH_JOBS)
def test_build_template(job):
  commands, _ = dry('build-template', job)
  image = '%s/%s:v1' % (REGISTRY, dashed(job))
  assert commands == [
      ['gcloud', 'builds', 'submit', '--project', 'my-proj', '--config',
       'templates/cloudbuild.yaml', '--substitutions',
       '_IMAGE=%s,_JOB=%s,_DOCKERFILE=templates/Dockerfile' % (image, job), '.'],
      ['gcloud', 'dataflow', 'flex-template', 'build', 'gs://my-bkt/templates/%s.json' % job,
       '--project', 'my-proj', '--image', image, '--sdk-language', 'PYTHON',
       '--metadata-file', 'templates/%s.metadata.json' % job]]


def test_build_the_gpu_template():
  commands, _ = dry('build-template', 'image_inference', '--gpu', '--image',
                    'europe-docker.pkg.dev/p/r', '--tag', 'rel-3')
  image = 'europe-docker.pkg.dev/p/r/image-inference-gpu:rel-3'
  assert commands[0][-2] == '_IMAGE=%s,_JOB=image_inference,_DOCKERFILE=templates/Dockerfile.gpu' % image
  assert commands[1][4] == 'gs://my-bkt/templates/image_inference-gpu.json'
  assert commands[1][commands[1].index('--image') + 1] == image


def test_the_default_tag_is_the_git_commit():
  commit = subprocess.run(['git', 'rev-parse', '--short=12', 'HEAD'], cwd=ROOT,
                          capture_output=True, text=True)
  if commit.returncode != 0:
    pytest.skip('not a git checkout')
  commands, _ = dry('build-template', 'game_analytics', TAG=None)
  assert commands[1][commands[1].index('--image') + 1] == (
      '%s/game-analytics:%s' % (REGISTRY, commit.stdout.strip()))


@pytest.mark.parametrize('job', BATCH_JOBS)
def test_run_template(job):
  params = required_params(job)
  commands, _ = dry('run-template', job, *sum((['--param', p] for p in params), []),
                    '--job-name', 'tpl-1', SERVICE_ACCOUNT=SA)
  assert commands == [[
      'gcloud', 'dataflow', 'flex-template', 'run', 'tpl-1', '--project', 'my-proj',
      '--region', 'us-central1', '--template-file-gcs-location',
      'gs://my-bkt/templates/%s.json' % job, '--temp-location', 'gs://my-bkt/tmp',
      '--staging-location', 'gs://my-bkt/staging', '--additional-user-labels',
      'app=beam-analytics,job=%s' % job, '--service-account-email', SA,
      '--parameters', ','.join(params)]]


def test_template_parameters_with_commas_get_another_delimiter():
  commands, _ = dry('run-template', 'log_analytics', '--param',
                    'metric=["a=severity>=ERROR", "b=httpRequest.status>=500"]',
                    '--parameters', 'output=my-proj:logs,input=gs://my-bkt/l/*', '--job-name', 'l')
  assert commands[0][-2:] == [
      '--parameters', '^~^metric=["a=severity>=ERROR", "b=httpRequest.status>=500"]'
      '~output=my-proj:logs~input=gs://my-bkt/l/*']
  commands, _ = dry('run-template', 'tweet_sentiment', '--parameters',
                    '^;^track=nova x,#novax;output=my-proj:tweets;input=gs://my-bkt/t/*',
                    '--job-name', 't')
  assert commands[0][-2:] == ['--parameters',
                              '^~^track=nova x,#novax~output=my-proj:tweets~input=gs://my-bkt/t/*']


def test_a_streaming_template_launch_uses_streaming_engine():
  commands, _ = dry('run-template', 'iot_telemetry', '--param',
                    'input=projects/my-proj/subscriptions/telemetry', '--param',
                    'output=my-proj:iot', '--job-name', 'iot')
  assert commands[0][-1] == '--enable-streaming-engine'


def test_run_template_on_gpus():
  commands, _ = dry('run-template', 'image_inference', '--gpu',
                    *sum((['--param', p] for p in required_params('image_inference')), []),
                    '--job-name', 'inf')
  command = commands[0]
  assert command[command.index('--template-file-gcs-location') + 1] == (
      'gs://my-bkt/templates/image_inference-gpu.json')
  assert command[command.index('--parameters') + 1] == (
      'input=gs://my-bkt/in/image_inference/*,output=gs://my-bkt/out/image_inference,'
      'model=gs://my-bkt/models/face.keras,device=gpu')
  assert command[command.index('--parameters') + 2:] == [
      '--worker-machine-type', 'n1-standard-4',
      '--additional-experiments', ACCELERATOR + ',no_use_multiple_sdk_containers',
      '--additional-pipeline-options', 'disk_size_gb=50']


@pytest.mark.parametrize('params, message', [
    ([], 'game_analytics needs output=...'),
    (['output=gs://my-bkt/o', 'windw=60'], "did you mean 'window'?"),
    (['output=out/'], "output='out/' does not match"),
    (['output=gs://my-bkt/o', 'session_gap=0'], "session_gap='0' does not match"),
    (['output=gs://my-bkt/o', 'api_key=AIza123'], 'no api_key parameter'),
])
def test_template_parameters_are_checked_before_launch(params, message):
  commands, stderr, status = script('run-template', 'game_analytics',
                                    *sum((['--param', p] for p in params), []), '--dry-run')
  assert status == 2 and commands == []
  assert message in stderr


# ---- schedules

def scheduled(commands):
  """The Cloud Scheduler command, and its launch request body parsed."""
  assert len(commands) == 1
  command = commands[0]
  return command, json.loads(command[command.index('--message-body') + 1])


@pytest.mark.parametrize('job', BATCH_JOBS)
def test_schedule_posts_a_flex_template_launch(job):
  params = ['input=gs://my-bkt/in/{yesterday}/*'] + required_params(job)[1:]
  commands, _ = dry('schedule', job, '0 6 * * *', *sum((['--param', p] for p in params), []),
                    SERVICE_ACCOUNT=SA, SCHEDULER_SERVICE_ACCOUNT='launcher@my-proj.iam.gserviceaccount.com')
  command, body = scheduled(commands)
  body_at = command.index('--message-body')
  assert command[:body_at] + command[body_at + 2:] == [
      'gcloud', 'scheduler', 'jobs', 'create', 'http', 'beam-analytics-' + dashed(job),
      '--project', 'my-proj', '--location', 'us-central1', '--schedule', '0 6 * * *',
      '--time-zone', 'Etc/UTC', '--uri',
      'https://dataflow.googleapis.com/v1b3/projects/my-proj/locations/us-central1/'
      'flexTemplates:launch', '--http-method', 'POST',
      '--headers', 'Content-Type=application/json',
      '--oauth-service-account-email', 'launcher@my-proj.iam.gserviceaccount.com',
      '--oauth-token-scope', 'https://www.googleapis.com/auth/cloud-platform',
      '--description', 'beam-analytics: launch the %s Flex Template' % job]
  assert body == {'launchParameter': {
      'jobName': '%s-scheduled' % dashed(job),
      'containerSpecGcsPath': 'gs://my-bkt/templates/%s.json' % job,
      'parameters': dict(p.split('=', 1) for p in params),
      'environment': {
          'tempLocation': 'gs://my-bkt/tmp', 'stagingLocation': 'gs://my-bkt/staging',
          'serviceAccountEmail': SA,
          'additionalUserLabels': {'app': 'beam-analytics', 'job': job}}}}


def test_schedule_game_analytics_over_yesterdays_export():
  commands, _ = dry('schedule', 'game_analytics', '30 5 * * 1-5', '--time-zone',
                    'Europe/Paris', '--param',
                    'input_table=my-proj:analytics_123456.events_{yesterday}',
                    '--param', 'output=my-proj:game', SERVICE_ACCOUNT=SA)
  command, body = scheduled(commands)
  assert command[command.index('--time-zone') + 1] == 'Europe/Paris'
  assert command[command.index('--oauth-service-account-email') + 1] == SA
  assert body['launchParameter']['parameters'] == {
      'input_table': 'my-proj:analytics_123456.events_{yesterday}', 'output': 'my-proj:game'}


def test_schedule_on_gpus():
  commands, _ = dry('schedule', 'image_inference', '0 2 * * *', '--gpu', '--gpu-type',
                    'nvidia-l4', *sum((['--param', p] for p in required_params('image_inference')), []),
                    SERVICE_ACCOUNT=SA)
  command, body = scheduled(commands)
  assert command[5] == 'beam-analytics-image-inference-gpu'
  launch = body['launchParameter']
  assert launch['containerSpecGcsPath'] == 'gs://my-bkt/templates/image_inference-gpu.json'
  assert launch['parameters']['device'] == 'gpu'
  assert launch['environment']['machineType'] == 'g2-standard-4'
  assert launch['environment']['diskSizeGb'] == 50
  assert launch['environment']['additionalExperiments'] == [
      'worker_accelerator=type:nvidia-l4;count:1;install-nvidia-driver',
      'no_use_multiple_sdk_containers']


@pytest.mark.parametrize('args, env, message', [
    (['0 6 * * *', '--param', 'input=gs://my-bkt/g/*', '--param', 'output=my-proj:g'], {}, 'needs SCHEDULER_SERVICE_ACCOUNT'),
    (['0 6 * *', '--param', 'input=gs://my-bkt/g/*', '--param', 'output=my-proj:g'], {'SERVICE_ACCOUNT': SA}, 'must have 5 fields'),
    ([], {'SERVICE_ACCOUNT': SA}, 'needs a CRON'),
    (['0 * * * *', '--param', 'input=projects/my-proj/subscriptions/g', '--param',
      'output=my-proj:g'], {'SERVICE_ACCOUNT': SA}, 'schedule batch inputs'),
])
def test_schedule_refusals(args, env, message):
  commands, stderr, status = script('schedule', 'game_analytics', *args, '--dry-run', **env)
  assert status == 2 and commands == []
  assert message in stderr


@pytest.mark.parametrize('job', BATCH_JOBS)
def test_unschedule(job):
  commands, _ = dry('unschedule', job, BUCKET=None)
  assert commands == [['gcloud', 'scheduler', 'jobs', 'delete', 'beam-analytics-' + dashed(job),
                       '--project', 'my-proj', '--location', 'us-central1', '--quiet']]


def test_unschedule_the_gpu_schedule():
  commands, _ = dry('unschedule', 'image_inference', '--gpu')
  assert commands[0][4] == 'beam-analytics-image-inference-gpu'


# ---- for real, against a fake gcloud (it records its arguments and answers lookups)

FAKE_GCLOUD = """#!/usr/bin/env bash
printf '%s\\0' "$@" >> "$GCLOUD_LOG"; printf '\\n' >> "$GCLOUD_LOG"
case "$*" in
  "dataflow jobs list"*) echo "${FAKE_FOUND:-}" ;;
  "scheduler jobs describe"*) exit "${FAKE_DESCRIBE_STATUS:-1}" ;;
esac
"""


def with_fake_gcloud(tmp_path, *args, **env):
  """Run the script for real with `gcloud` replaced; -> (gcloud calls, stderr, status)."""
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir(exist_ok=True)
  gcloud = bin_dir / 'gcloud'
  gcloud.write_text(FAKE_GCLOUD)
  gcloud.chmod(0o755)
  log = tmp_path / 'gcloud.log'
  log.write_text('')
  environ = {'PATH': '%s:%s' % (bin_dir, os.environ['PATH']), 'GCLOUD_LOG': str(log)}
  environ.update(env)
  _, stderr, status = script(*args, **environ)
  calls = [line.split('\0')[:-1] for line in log.read_text().split('\n') if line]
  return calls, stderr, status


def test_rescheduling_updates_the_scheduler_job_in_place(tmp_path):
  calls, stderr, status = with_fake_gcloud(
      tmp_path, 'schedule', 'game_analytics', '0 7 * * *', '--param', 'input=gs://my-bkt/g/*', '--param', 'output=my-proj:g',
      SERVICE_ACCOUNT=SA, FAKE_DESCRIBE_STATUS='0')
  assert status == 0, stderr
  assert calls[0][:4] == ['scheduler', 'jobs', 'describe', 'beam-analytics-game-analytics']
  update = calls[1]
  assert update[:5] == ['scheduler', 'jobs', 'update', 'http', 'beam-analytics-game-analytics']
  assert update[update.index('--update-headers') + 1] == 'Content-Type=application/json'
  assert '--headers' not in update
  assert update[update.index('--schedule') + 1] == '0 7 * * *'
  calls, _, status = with_fake_gcloud(
      tmp_path, 'schedule', 'game_analytics', '0 7 * * *', '--param', 'input=gs://my-bkt/g/*', '--param', 'output=my-proj:g',
      SERVICE_ACCOUNT=SA, FAKE_DESCRIBE_STATUS='1')
  assert status == 0 and calls[1][:4] == ['scheduler', 'jobs', 'create', 'http']
  assert '--headers' in calls[1]


def test_drain_drains_the_job_the_lookup_found(tmp_path):
  calls, stderr, status = with_fake_gcloud(tmp_path, 'drain', 'iot_telemetry',
                                           FAKE_FOUND='2026-11-27_01_02_03-42')
  assert status == 0, stderr
  assert calls[1] == ['dataflow', 'jobs', 'drain', '2026-11-27_01_02_03-42', '--project',
                      'my-proj', '--region', 'us-central1']


def test_drain_refuses_none_or_several_running_jobs(tmp_path):
  calls, stderr, status = with_fake_gcloud(tmp_path, 'drain', 'iot_telemetry', FAKE_FOUND='')
  assert status == 2 and len(calls) == 1
  assert 'no active Dataflow job named iot-telemetry-YYYYMMDD-HHMMSS' in stderr
  calls, stderr, status = with_fake_gcloud(tmp_path, 'drain', 'iot_telemetry',
                                           FAKE_FOUND='id-1\nid-2')
  assert status == 2 and len(calls) == 1
  assert 'several active iot-telemetry-* jobs' in stderr


def test_build_template_runs_cloud_build_then_the_template_build(tmp_path):
  calls, stderr, status = with_fake_gcloud(tmp_path, 'build-template', 'tweet_sentiment')
  assert status == 0, stderr
  assert [call[:3] for call in calls] == [['builds', 'submit', '--project'],
                                          ['dataflow', 'flex-template', 'build']]


# ---- configuration and refusals

@pytest.mark.parametrize('command', ['run', 'update', 'build-template', 'run-template',
                                     'schedule'])
def test_missing_configuration_is_named_before_anything_runs(command):
  commands, stderr, status = script(command, 'game_analytics', '--dry-run', PROJECT=None,
                                    REGION=None, BUCKET=None)
  assert status == 2 and commands == []
  for line in ('not set: PROJECT (--project or export PROJECT=my-project)',
               'not set: REGION (--region or export REGION=us-central1)',
               'not set: BUCKET (--bucket or export BUCKET=my-bucket)'):
    assert line in stderr


@pytest.mark.parametrize('command', ['drain', 'unschedule'])
def test_drain_and_unschedule_need_no_bucket(command):
  _, stderr, status = script(command, 'game_analytics', '--dry-run', BUCKET=None, REGION=None)
  assert status == 2
  assert 'not set: REGION' in stderr and 'BUCKET' not in stderr


def test_configuration_from_flags_and_a_gs_bucket_url():
  commands, _ = dry('run', 'game_analytics', '--input', 'gs://b2-data/x', '--job-name', 'g',
                    '--project=other-proj', '--region', 'europe-west4', '--bucket',
                    'gs://b2-data/', PROJECT=None, REGION=None, BUCKET=None)
  command = commands[0]
  assert command[command.index('--project') + 1] == 'other-proj'
  assert command[command.index('--region') + 1] == 'europe-west4'
  assert command[command.index('--temp_location') + 1] == 'gs://b2-data/tmp'


@pytest.mark.parametrize('args, env, message', [
    (['run', 'game_analytics'], {'PROJECT': 'My_Project'}, "PROJECT 'My_Project' is not a project id"),
    (['run', 'game_analytics'], {'REGION': 'central'}, "REGION 'central' is not a region"),
    (['run', 'game_analytics'], {'BUCKET': 'gs://B!'}, "BUCKET 'B!' is not a bucket name"),
    (['run', 'gaming'], {}, 'unknown job \'gaming\'; jobs: face_dataset game_analytics'),
    (['deploy', 'game_analytics'], {}, "unknown command 'deploy'"),
    (['run'], {}, 'run needs a JOB'),
    (['run', 'game_analytics', '--runner', 'DirectRunner'], {}, '--runner is set by run_dataflow.sh'),
    (['run', 'game_analytics', '--temp_location=gs://x/t'], {}, 'is set by run_dataflow.sh'),
    (['run', 'tweet_sentiment', '--api_key', 'AIza'], {}, 'no --api_key on a command line'),
    (['run-template', 'game_analytics', '--window', '60'], {}, 'templates take --param'),
    (['run', 'game_analytics', '--param', 'window=60'], {}, '--param/--parameters are for'),
    (['run', 'game_analytics', '--job-name'], {}, '--job-name needs a value'),
])
def test_refusals(args, env, message):
  commands, stderr, status = script(*args, '--dry-run', **env)
  assert status == 2 and commands == []
  assert message in stderr


def test_help_lists_every_command():
  done = subprocess.run(['bash', SCRIPT, '--help'], capture_output=True, text=True)
  assert done.returncode == 0
  for command in ('run JOB', 'update JOB', 'drain JOB', 'build-template JOB',
                  'run-template JOB', 'schedule JOB', 'unschedule JOB', '--dry-run', '--gpu'):
    assert command in done.stdout


def test_the_submitted_flags_are_all_known_to_beam_and_the_job():
  """A typo in a flag the script adds would otherwise reach Dataflow."""
  import importlib

  from pipelines.options import unknown_flags
  for job in JOBS:
    importlib.import_module('pipelines.' + job)  # registers the job's options class
  for job in JOBS:
    extra = ['--gpu'] if job == 'image_inference' else []
    commands, _ = dry('run', job, '--input', 'projects/my-proj/subscriptions/s', *extra,
                      SERVICE_ACCOUNT=SA)
    assert commands[0][:4] == [PY, '-m', 'pipelines', job]
    assert unknown_flags(commands[0][4:]) == []


def test_shellcheck_finds_nothing():
  if shutil.which('shellcheck') is None:
    if os.environ.get('CI'):
      pytest.fail('shellcheck is not installed (make test installs it from Debian)')
    pytest.skip('shellcheck is not installed (make test installs it from Debian)')
  done = subprocess.run(['shellcheck', '--severity=style', SCRIPT], capture_output=True,
                        text=True)
  assert done.returncode == 0, done.stdout


_GCLOUD_HELP = {}


def _gcloud_flags(words):
  key = tuple(words)
  if key not in _GCLOUD_HELP:
    done = subprocess.run(['gcloud'] + words + ['--help'], capture_output=True, text=True,
                          env=dict(os.environ, CLOUDSDK_CORE_DISABLE_PROMPTS='1',
                                   PAGER='cat', CLOUDSDK_CORE_PAGER=''), timeout=120)
    text = re.sub(r'\x1b\[[0-9;]*m', '', done.stdout)
    _GCLOUD_HELP[key] = set(re.findall(r'--(?:\[no-\])?([a-z][a-z0-9-]*)', text))
  return _GCLOUD_HELP[key]


def test_every_gcloud_flag_exists_in_the_installed_gcloud(tmp_path):
  """The dry-run commands against gcloud's own --help (offline): a misspelt flag fails here,
  not at the first real deployment."""
  if shutil.which('gcloud') is None:
    pytest.skip('gcloud is not installed')
  runs = [
      dry('update', 'log_analytics', '--input', 'projects/my-proj/subscriptions/s')[0][:1],
      dry('drain', 'log_analytics')[0],
      dry('build-template', 'game_analytics')[0],
      dry('run-template', 'image_inference', '--gpu', '--param', 'input=projects/p-1234/topics/t',
          *sum((['--param', p] for p in required_params('image_inference')[1:]), []),
          SERVICE_ACCOUNT=SA)[0],
      dry('schedule', 'game_analytics', '0 6 * * *', '--param', 'input=gs://my-bkt/g/*', '--param', 'output=my-proj:g',
          SERVICE_ACCOUNT=SA)[0],
      dry('unschedule', 'game_analytics')[0],
  ]
  calls, _, _ = with_fake_gcloud(tmp_path, 'schedule', 'game_analytics', '0 7 * * *',
                                 '--param', 'input=gs://my-bkt/g/*', '--param', 'output=my-proj:g', SERVICE_ACCOUNT=SA,
                                 FAKE_DESCRIBE_STATUS='0')
  runs.append([['gcloud'] + call for call in calls])
  checked = 0
  for commands in runs:
    for command in commands:
      assert command[0] == 'gcloud'
      words = [w for w in command[1:] if not w.startswith('-')]
      group = words[:4] if words[:3] in (['scheduler', 'jobs', 'create'],
                                         ['scheduler', 'jobs', 'update']) else words[:3]
      if group[:2] == ['builds', 'submit']:
        group = group[:2]
      known = _gcloud_flags(group)
      for word in command:
        if word.startswith('--'):
          assert word[2:].split('=')[0] in known, (group, word)
          checked += 1
  assert checked > 40


# ---- found in review

def test_the_jobs_own_beam_flags_win_over_the_gpu_defaults():
  commands, _ = dry('run', 'image_inference', '--input', 'gs://my-bkt/v.txt', '--gpu',
                    '--machine_type', 'n1-highmem-8', '--disk_size_gb=200', '--job-name', 'i')
  command = commands[0]
  assert command.count('--machine_type') == 1
  assert command[command.index('--machine_type') + 1] == 'n1-highmem-8'
  assert '--disk_size_gb' not in command and '--disk_size_gb=200' in command
  assert command[-5:] == ['--dataflow_service_options', ACCELERATOR, '--experiments',
                          'no_use_multiple_sdk_containers', '--device', 'gpu'][-5:]


@pytest.mark.parametrize('switch', ['--gpu=false', '--container=no', '--dry-run=1'])
def test_switches_take_no_value(switch):
  commands, stderr, status = script('run', 'image_inference', switch, '--dry-run')
  assert status == 2 and commands == []
  assert 'takes no value' in stderr


def test_a_multi_character_parameter_delimiter():
  commands, _ = dry('run-template', 'game_analytics', '--parameters',
                    '^::^input=gs://my-bkt/a,b/*::output=gs://my-bkt/o', '--job-name', 'g')
  assert commands[0][-2:] == ['--parameters', '^~^input=gs://my-bkt/a,b/*~output=gs://my-bkt/o']


def test_a_domain_scoped_project_gets_an_artifact_registry_path():
  commands, _ = dry('build-template', 'game_analytics', PROJECT='example.com:my-proj')
  assert commands[1][commands[1].index('--image') + 1] == (
      'us-central1-docker.pkg.dev/example.com/my-proj/beam-analytics/game-analytics:v1')


@pytest.mark.parametrize('gpu_type', ['nvidia-tesla-t4', 'nvidia-tesla-p4', 'nvidia-tesla-p100'])
def test_no_default_machine_for_more_gpus_than_a_vm_takes(gpu_type):
  _, stderr, status = script('run', 'image_inference', '--gpu', '--gpu-type', gpu_type,
                             '--gpu-count', '8', '--dry-run')
  assert status == 2 and 'no default machine type for 8 x %s' % gpu_type in stderr
