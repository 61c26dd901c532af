"""Flex Template entry point (FLEX_TEMPLATE_PYTHON_PY_FILE of the job images).

Dataflow's template launcher runs `python templates/launch.py --param=value ... --runner=...
--project=... --region=... --temp_location=... --job_name=...`. The job is the image's own
(env BEAM_ANALYTICS_JOB, set at build time), so one Dockerfile serves every job and a
template cannot run a job its image was not built for.
"""
import os
import sys
from typing import List, Mapping, Optional, Sequence

from pipelines.__main__ import JOBS
from pipelines.__main__ import main as pipelines_main

JOB_ENV = 'BEAM_ANALYTICS_JOB'
IMAGE_ENV = 'BEAM_ANALYTICS_IMAGE'
# Beam's older name for --sdk_container_image; either one means the image is chosen.
IMAGE_FLAGS = ('--sdk_container_image', '--worker_harness_container_image')


def _is_set(argv: Sequence[str], flags: Sequence[str]) -> bool:
  """Whether argv sets one of `flags`, as `--flag=value` or as `--flag value`."""
  return any(arg == flag or arg.startswith(flag + '=') for arg in argv for flag in flags)


def template_argv(argv: Sequence[str], environ: Mapping[str, str]) -> List[str]:
  """`argv` plus what makes the workers run this same image: `--sdk_container_image` (this
  image's name, when the image knows it) and `--sdk_location=container` (the SDK is already
  in the image, so nothing is downloaded or staged). A value the caller set is kept; every
  other argument stays as it was, in order."""
  out = list(argv)
  image = environ.get(IMAGE_ENV, '')
  if image and not _is_set(out, IMAGE_FLAGS):
    out.append('--sdk_container_image=' + image)
  if not _is_set(out, ('--sdk_location',)):
    out.append('--sdk_location=container')
  return out


def main(argv: Optional[Sequence[str]] = None,
         environ: Optional[Mapping[str, str]] = None) -> int:
  """Run the image's job with the launcher's arguments; exit status 2 when the image names
  no known job (a build without --build-arg JOB, or a job since renamed)."""
  environ = os.environ if environ is None else environ
  argv = sys.argv[1:] if argv is None else argv
  job = environ.get(JOB_ENV, '')
  if job not in JOBS:
    print('launch.py: %s=%r is not a job; known: %s' % (JOB_ENV, job, ', '.join(JOBS)),
          file=sys.stderr)
    return 2
  return pipelines_main([job] + template_argv(argv, environ))


if __name__ == '__main__':
  sys.exit(main())
