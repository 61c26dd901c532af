"""The container images (templates/): what the Dockerfiles, constraints, Cloud Build config
and .dockerignore promise, checked offline, and templates/launch.py, the Flex Template entry
point, run for real."""
import ast
import fnmatch
import importlib.util
import json
import os
import posixpath
import re
import shlex
import subprocess
import sys

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATES = os.path.join(ROOT, 'templates')
DOCKERFILES = ['templates/Dockerfile', 'templates/Dockerfile.gpu']
LAUNCHER = '/opt/google/dataflow/python_template_launcher'


def _read(relative):
  with open(os.path.join(ROOT, relative)) as fh:
    return fh.read()


def _setup():
  """setup.py's constants and setup() keywords, read with ast (importing it runs setup())."""
  namespace, keywords = {}, {}
  for node in ast.parse(_read('setup.py')).body:
    if isinstance(node, ast.Assign) and len(node.targets) == 1:
      target = node.targets[0]
      if isinstance(target, ast.Name):
        # values are literals and the names assigned before them (REQUIREMENTS names the
        # BEAM_REQUIREMENT constant)
        namespace[target.id] = eval(compile(ast.Expression(node.value), 'setup.py', 'eval'),
                                    {'__builtins__': {}}, dict(namespace))
    elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
      for kw in node.value.keywords:
        try:
          keywords[kw.arg] = ast.literal_eval(kw.value)
        except ValueError:
          pass
  return namespace, keywords


SETUP, SETUP_KW = _setup()
BEAM_VERSION = str(next(iter(Requirement(SETUP['BEAM_REQUIREMENT']).specifier)).version)
TF_REQUIREMENT = next(Requirement(r) for r in SETUP['EXTRAS']['tf']
                      if Requirement(r).name == 'tensorflow')
TF_VERSION = next(iter(TF_REQUIREMENT.specifier)).version


def _python_version():
  """The one minor version python_requires allows, e.g. '3.11'."""
  spec = SpecifierSet(SETUP_KW['python_requires'])
  lower = [s.version for s in spec if s.operator == '>=']
  assert len(lower) == 1, spec
  major, minor = lower[0].split('.')[:2]
  version = '%s.%s' % (major, minor)
  assert spec.contains(version + '.0') and not spec.contains('%s.%d.0' % (major, int(minor) + 1))
  return version


PYTHON_VERSION = _python_version()


def instructions(relative):
  """[(INSTRUCTION, args)] of a Dockerfile, continuation lines joined, comments dropped."""
  out, pending = [], ''
  for line in _read(relative).splitlines():
    stripped = line.strip()
    if not pending and (not stripped or stripped.startswith('#')):
      continue
    if pending and stripped.startswith('#'):
      continue  # a comment inside a continued instruction
    if stripped.endswith('\\'):
      pending += stripped[:-1] + ' '
      continue
    full = pending + stripped
    pending = ''
    word, _, rest = full.partition(' ')
    out.append((word.upper(), rest.strip()))
  assert not pending, relative
  return out


def final_stage(relative):
  steps = instructions(relative)
  last_from = max(i for i, (word, _) in enumerate(steps) if word == 'FROM')
  return steps[last_from:]


def env_of(steps):
  """ENV values (KEY=value form) in order of the steps, each with its step index."""
  env = {}
  for index, (word, args) in enumerate(steps):
    if word == 'ENV':
      for token in shlex.split(args):
        key, sep, value = token.partition('=')
        assert sep, 'ENV %r: use KEY=value' % args
        env[key] = (value, index)
  return env


def copies(steps):
  """(flags, sources, destination) of each COPY, destination made absolute with WORKDIR."""
  workdir, out = '/', []
  for word, args in steps:
    if word == 'WORKDIR':
      workdir = posixpath.join(workdir, args)
    elif word == 'COPY':
      tokens = shlex.split(args)
      flags = [t for t in tokens if t.startswith('--')]
      paths = [t for t in tokens if not t.startswith('--')]
      dest = posixpath.join(workdir, paths[-1])
      if paths[-1].endswith('/') and not dest.endswith('/'):
        dest += '/'
      out.append((flags, paths[:-1], dest))
  return out


def copied_files(steps):
  """Absolute paths in the image of the local files and folders COPY puts there (Docker
  copies a folder's contents into the destination, and a file into it when it ends in /)."""
  out = set()
  for flags, sources, dest in copies(steps):
    if flags:
      continue
    for source in sources:
      if os.path.isdir(os.path.join(ROOT, source)) or not dest.endswith('/'):
        out.add(posixpath.normpath(dest))
      else:
        out.add(posixpath.normpath(posixpath.join(dest, posixpath.basename(source))))
  return out


def local_sources(relative):
  return sorted({s for flags, sources, _ in copies(instructions(relative)) if not flags
                 for s in sources})


@pytest.mark.parametrize('dockerfile', DOCKERFILES)
def test_beam_image_and_python_are_setup_pys(dockerfile):
  text = _read(dockerfile)
  tags = re.findall(r'apache/beam_python(\d+\.\d+)_sdk:(\S+)', text)
  assert tags, dockerfile
  assert set(tags) == {(PYTHON_VERSION, BEAM_VERSION)}
  assert BEAM_VERSION == '2.77.0' and PYTHON_VERSION == '3.11'  # what the tests run with
  froms = [args for word, args in instructions(dockerfile) if word == 'FROM']
  assert froms[-1] == 'apache/beam_python%s_sdk:%s' % (PYTHON_VERSION, BEAM_VERSION)


@pytest.mark.parametrize('dockerfile', DOCKERFILES)
def test_launcher_binary_comes_from_the_launcher_base_of_the_same_python(dockerfile):
  froms = [args for word, args in instructions(dockerfile) if word == 'FROM']
  image, as_word, name = froms[0].split()
  assert (as_word.upper(), name) == ('AS', 'launcher')
  assert image.startswith('gcr.io/dataflow-templates-base/python%s-template-launcher-base:'
                          % PYTHON_VERSION.replace('.', ''))
  assert ':latest' not in image
  launcher_copies = [(flags, sources, dest) for flags, sources, dest in
                     copies(final_stage(dockerfile)) if flags]
  assert launcher_copies == [(['--from=launcher'], [LAUNCHER], LAUNCHER)]


@pytest.mark.parametrize('dockerfile', DOCKERFILES)
def test_entrypoint_is_beams_boot(dockerfile):
  entrypoints = [args for word, args in final_stage(dockerfile) if word == 'ENTRYPOINT']
  assert len(entrypoints) == 1
  assert json.loads(entrypoints[0]) == ['/opt/apache/beam/boot']


@pytest.mark.parametrize('dockerfile', DOCKERFILES)
def test_template_py_file_is_launch_py_and_copied_there(dockerfile):
  steps = final_stage(dockerfile)
  env = env_of(steps)
  assert env['FLEX_TEMPLATE_PYTHON_PY_FILE'][0] == '/template/templates/launch.py'
  assert os.path.isfile(os.path.join(TEMPLATES, 'launch.py'))
  files = copied_files(steps)
  assert '/template/templates/launch.py' in files
  assert '/template/templates/constraints.txt' in files
  assert '/template/setup.py' in files
  for package in ('pipelines', 'transforms', 'schemas', 'models'):
    assert '/template/' + package in files


@pytest.mark.parametrize('dockerfile', DOCKERFILES)
def test_every_copied_local_path_exists(dockerfile):
  sources = local_sources(dockerfile)
  assert 'setup.py' in sources
  for source in sources:
    assert os.path.exists(os.path.join(ROOT, source)), source


@pytest.mark.parametrize('dockerfile', DOCKERFILES)
def test_per_job_args_come_after_the_install(dockerfile):
  """JOB and IMAGE differ between the images: everything above them is shared."""
  steps = final_stage(dockerfile)
  first_arg = min(i for i, (word, _) in enumerate(steps) if word == 'ARG')
  installs = [i for i, (word, args) in enumerate(steps)
              if word == 'RUN' and 'pip install' in args]
  shared = [i for i in installs if i < first_arg]
  assert len(shared) == 1
  install = shared[0]
  per_job = [steps[i][1] for i in installs if i > first_arg]
  if dockerfile == 'templates/Dockerfile':  # TensorFlow only in image_inference's image
    assert len(per_job) == 1
    assert '"$JOB" = image_inference' in per_job[0] and "'.[tf]'" in per_job[0]
    assert '--constraint templates/constraints.txt' in per_job[0]
  else:
    assert per_job == []
  assert '--no-cache-dir' in steps[install][1]
  assert '--constraint templates/constraints.txt' in steps[install][1]
  assert '-e ' not in steps[install][1] and '--editable' not in steps[install][1]
  arg_steps = [(args.split('=')[0], i) for i, (word, args) in enumerate(steps) if word == 'ARG']
  assert sorted(name for name, _ in arg_steps) == ['IMAGE', 'JOB']  # each declared once
  args = dict(arg_steps)
  env = env_of(steps)
  assert env['BEAM_ANALYTICS_JOB'] == ('$JOB', env['BEAM_ANALYTICS_JOB'][1])
  assert env['BEAM_ANALYTICS_IMAGE'][0] == '$IMAGE'
  assert env['BEAM_ANALYTICS_JOB'][1] > args['JOB']
  assert env['BEAM_ANALYTICS_IMAGE'][1] > args['IMAGE']


@pytest.mark.parametrize('dockerfile', DOCKERFILES)
def test_launch_installs_nothing(dockerfile):
  steps = final_stage(dockerfile)
  env = env_of(steps)
  install = max(i for i, (word, args) in enumerate(steps)
                if word == 'RUN' and 'pip install' in args)
  value, index = env['PIP_NO_DEPS']
  assert value == 'True'
  assert index > install  # set before the install, it would skip the dependencies
  all_keys = set(env) | {args.split('=')[0] for word, args in steps if word == 'ARG'}
  assert 'FLEX_TEMPLATE_PYTHON_SETUP_FILE' not in all_keys
  assert 'FLEX_TEMPLATE_PYTHON_REQUIREMENTS_FILE' not in all_keys


def _job_check(dockerfile):
  """The RUN right after ARG JOB/ARG IMAGE: the build's check of --build-arg JOB."""
  steps = final_stage(dockerfile)
  last_arg = max(i for i, (word, _) in enumerate(steps) if word == 'ARG')
  word, command = steps[last_arg + 1]
  assert word == 'RUN'
  return command


def _run_job_check(dockerfile, job):
  """Run that check as `docker build` would (/bin/sh -c, build args in the environment),
  from the repository root as from /template, with this interpreter as `python`."""
  env = dict(os.environ, JOB=job, IMAGE='registry.example/img:tag',
             PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ['PATH'],
             PYTHONPATH=ROOT)
  return subprocess.run(['/bin/sh', '-c', _job_check(dockerfile)], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=120)


def test_cpu_image_build_fails_without_a_known_job():
  assert _run_job_check('templates/Dockerfile', 'game_analytics').returncode == 0
  for job in ('', 'launch', 'no_such_job'):
    result = _run_job_check('templates/Dockerfile', job)
    assert result.returncode != 0, job
    assert 'game_analytics' in result.stderr


def test_gpu_image_build_fails_for_another_job():
  assert _run_job_check('templates/Dockerfile.gpu', 'image_inference').returncode == 0
  for job in ('', 'game_analytics'):
    result = _run_job_check('templates/Dockerfile.gpu', job)
    assert result.returncode != 0, job
    assert 'JOB=image_inference' in result.stderr


def test_gpu_image_pins_setup_pys_tensorflow_with_cuda():
  assert str(TF_REQUIREMENT.specifier) == '==' + TF_VERSION
  steps = final_stage('templates/Dockerfile.gpu')
  install = next(args for word, args in steps if word == 'RUN' and 'pip install' in args)
  tokens = shlex.split(install)
  assert "tensorflow[and-cuda]==%s" % TF_VERSION in tokens
  assert '.[tf]' in tokens
  assert [t for t in tokens if t.startswith('tensorflow')] == [
      'tensorflow[and-cuda]==%s' % TF_VERSION]
  # every CUDA wheel exactly pinned, each once
  nvidia = [Requirement(t) for t in tokens if t.startswith('nvidia-')]
  assert len(nvidia) == 12
  assert len({r.name for r in nvidia}) == 12
  assert all(str(r.specifier).startswith('==') for r in nvidia)


def test_gpu_image_sees_dataflows_driver():
  env = env_of(final_stage('templates/Dockerfile.gpu'))
  assert env['NVIDIA_VISIBLE_DEVICES'][0] == 'all'
  assert set(env['NVIDIA_DRIVER_CAPABILITIES'][0].split(',')) == {'compute', 'utility'}
  assert env['LD_LIBRARY_PATH'][0].split(':')[0] == '/usr/local/nvidia/lib64'
  assert 'NVIDIA_VISIBLE_DEVICES' not in env_of(final_stage('templates/Dockerfile'))


def _constraints():
  pins = []
  for line in _read('templates/constraints.txt').splitlines():
    line = line.split('#', 1)[0].strip()
    if line:
      pins.append(Requirement(line))
  return pins


def test_constraints_pin_exactly_what_setup_py_names():
  pins = _constraints()
  names = [canonicalize_name(p.name) for p in pins]
  assert len(names) == len(set(names))  # one pin per package
  required = [Requirement(r) for r in SETUP['REQUIREMENTS'] + SETUP['EXTRAS']['tf']]
  assert sorted(names) == sorted({canonicalize_name(r.name) for r in required})
  by_name = {canonicalize_name(p.name): p for p in pins}
  for requirement in required:
    pin = by_name[canonicalize_name(requirement.name)]
    assert not pin.extras and pin.marker is None
    (spec,) = pin.specifier
    assert spec.operator == '==', pin
    assert requirement.specifier.contains(spec.version, prereleases=True), (requirement, pin)
  assert str(by_name['apache-beam'].specifier) == '==' + BEAM_VERSION


def test_cloudbuild_builds_and_pushes_the_named_image():
  text = _read('templates/cloudbuild.yaml')
  used = set(re.findall(r'\$\{?(_[A-Z0-9_]+)', text))
  assert used == {'_IMAGE', '_JOB', '_DOCKERFILE'}
  config = yaml.safe_load(text)
  assert set(config.get('substitutions', {})) <= used
  (step,) = config['steps']
  assert step['name'] == 'gcr.io/cloud-builders/docker'
  assert step['args'] == ['build', '-f', '$_DOCKERFILE', '--build-arg', 'JOB=$_JOB',
                          '--build-arg', 'IMAGE=$_IMAGE', '-t', '$_IMAGE', '.']
  assert config['images'] == ['$_IMAGE']
  assert int(config['timeout'].rstrip('s')) >= 3600
  assert config['options']['machineType'] == 'E2_HIGHCPU_8'
  # the build args are the ones the Dockerfiles declare
  for dockerfile in DOCKERFILES:
    declared = {args for word, args in instructions(dockerfile) if word == 'ARG'}
    assert declared == {'JOB', 'IMAGE'}


def _dockerignore():
  patterns = []
  for line in _read('.dockerignore').splitlines():
    line = line.strip()
    if line and not line.startswith('#'):
      assert not line.startswith('!'), 'exceptions make the rules below harder to check'
      patterns.append(line.strip('/'))
  return patterns


def _ignored(path, patterns):
  """Docker's rule: a pattern matches the path or one of its parent folders; '**' matches
  any number of folders (approximated here with fnmatch, whose '*' crosses '/')."""
  parts = path.split('/')
  candidates = ['/'.join(parts[:i]) for i in range(1, len(parts) + 1)]
  for pattern in patterns:
    for candidate in candidates:
      if pattern.startswith('**/'):
        if fnmatch.fnmatchcase(candidate.split('/')[-1], pattern[3:]):
          return True
      elif '/' not in pattern.replace('**', '') and '*' in pattern:
        if '/' not in candidate and fnmatch.fnmatchcase(candidate, pattern):
          return True
      elif candidate == pattern:
        return True
  return False


def test_dockerignore_keeps_out_local_state_but_not_the_package():
  patterns = _dockerignore()
  for path in ('.venv', '.venv/lib/x.py', 'output', 'output/game_analytics/events.json',
               '.git', 'tests/test_containers.py', 'bench/out/x.json',
               'pipelines/__pycache__/launch.cpython-311.pyc', 'beam_analytics.egg-info'):
    assert _ignored(path, patterns), path
  for dockerfile in DOCKERFILES:
    for source in local_sources(dockerfile):
      assert not _ignored(source, patterns), source
      folder = os.path.join(ROOT, source)
      for base, _, names in os.walk(folder):
        for name in names:
          relative = os.path.relpath(os.path.join(base, name), ROOT).replace(os.sep, '/')
          if '__pycache__' not in relative and not relative.endswith('.pyc'):
            assert not _ignored(relative, patterns), relative


def _launch_module():
  spec = importlib.util.spec_from_file_location('template_launch',
                                                os.path.join(TEMPLATES, 'launch.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


IMAGE = 'us-central1-docker.pkg.dev/p/beam-analytics/game-analytics:abc123'


def test_template_argv_points_the_workers_at_this_image():
  launch = _launch_module()
  argv = ['--input=gs://b/in/*.json', '--runner=DataflowRunner', '--session_gap', '600']
  out = launch.template_argv(argv, {'BEAM_ANALYTICS_IMAGE': IMAGE})
  assert out == argv + ['--sdk_container_image=' + IMAGE, '--sdk_location=container']
  assert argv == ['--input=gs://b/in/*.json', '--runner=DataflowRunner', '--session_gap',
                  '600']  # not modified in place


def test_template_argv_keeps_what_the_caller_set():
  launch = _launch_module()
  env = {'BEAM_ANALYTICS_IMAGE': IMAGE}
  for argv in (['--sdk_container_image=other:1', '--project=p'],
               ['--sdk_container_image', 'other:1', '--project=p'],
               ['--worker_harness_container_image=other:1', '--project=p']):
    assert launch.template_argv(argv, env) == argv + ['--sdk_location=container']
  argv = ['--sdk_location', 'default', '--project=p']
  assert launch.template_argv(argv, env) == argv + ['--sdk_container_image=' + IMAGE]
  argv = ['--sdk_location=gs://b/beam.tar.gz', '--sdk_container_image=x:1']
  assert launch.template_argv(argv, env) == argv
  # a flag that only starts like it is a different flag
  argv = ['--sdk_container_image_extra=1']
  assert launch.template_argv(argv, env) == argv + ['--sdk_container_image=' + IMAGE,
                                                    '--sdk_location=container']


def test_template_argv_without_an_image_only_sets_the_sdk_location():
  launch = _launch_module()
  for env in ({}, {'BEAM_ANALYTICS_IMAGE': ''}):
    assert launch.template_argv(['--project=p'], env) == ['--project=p',
                                                          '--sdk_location=container']
  assert launch.template_argv([], {}) == ['--sdk_location=container']


def _run_launch(args, job):
  env = dict(os.environ, PYTHONPATH=ROOT)
  env.pop('BEAM_ANALYTICS_IMAGE', None)
  if job is None:
    env.pop('BEAM_ANALYTICS_JOB', None)
  else:
    env['BEAM_ANALYTICS_JOB'] = job
  return subprocess.run([sys.executable, os.path.join('templates', 'launch.py')] + args,
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_launch_py_runs_the_images_job():
  result = _run_launch(['--help'], 'game_analytics')
  assert result.returncode == 0, result.stderr
  assert 'usage: python -m pipelines.game_analytics' in result.stdout
  assert '--session_gap' in result.stdout


def test_launch_py_without_a_known_job_is_a_usage_error():
  for job in ('no_such_job', '', None):
    result = _run_launch(['--help'], job)
    assert result.returncode == 2, job
    assert result.stdout == ''
    assert 'BEAM_ANALYTICS_JOB' in result.stderr
    assert 'known: game_analytics, log_analytics, iot_telemetry' in result.stderr
