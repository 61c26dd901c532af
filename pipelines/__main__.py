"""`python -m pipelines` lists the jobs; `python -m pipelines JOB [args]` runs one."""
import importlib
import sys

from pipelines import launch

# name -> one line. Each name is a module in this package with run(argv).
JOBS = {
    'game_analytics': 'Firebase game events -> sessions, heatmaps, score by age, funnel',
    'log_analytics': 'Cloud Logging exports -> log table, per-window metrics, alerts',
    'iot_telemetry': 'device telemetry -> readings, sliding-window stats, Bigtable rows, rule commands',
    'tweet_sentiment': 'tweets -> sentiment per tweet, per-window sentiment and top terms per keyword',
    'face_dataset': 'photo folders or URL lists -> deduplicated, filtered face crops, train/validate split',
    'image_inference': 'images or a face_dataset index -> top-k identities from a Keras model (RunInference), evaluation',
}


def main(argv=None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  if not argv or argv[0] in ('-h', '--help', 'list'):
    print('usage: python -m pipelines JOB [--input SRC] [--output DST] [options]\n')
    print('jobs:')
    for name, line in JOBS.items():
      print('  %-16s %s' % (name, line))
    print('\n`python -m pipelines JOB --help` lists a job\'s options.')
    return 0
  name = argv[0]
  if name not in JOBS:
    print('unknown job %r; known: %s' % (name, ', '.join(JOBS)), file=sys.stderr)
    return 2
  return launch.main(name, importlib.import_module('pipelines.' + name).run, argv[1:])


if __name__ == '__main__':
  sys.exit(main())
