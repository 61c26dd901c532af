#!/usr/bin/env bash
# Submit beam-analytics jobs to Dataflow. This is the command surface; the subcommands are
# completed by the deployment work (issue 8). Until then, submit by hand as in README.md.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: run_dataflow.sh COMMAND JOB [job args...] [--dry-run]

commands:
  run JOB [args...]            submit JOB with the DataflowRunner
  build-template JOB           build JOB's Flex Template (image + metadata)
  run-template JOB [--parameters k=v,...]
  schedule JOB 'CRON' [--parameters k=v,...]
  unschedule JOB

configuration (flags or environment): PROJECT, REGION, BUCKET, IMAGE, SERVICE_ACCOUNT
jobs: python -m pipelines
USAGE
}

case "${1:-}" in
  ""|-h|--help|help)
    usage
    ;;
  run|build-template|run-template|schedule|unschedule)
    echo "run_dataflow.sh: '$1' is not implemented yet; see README.md (Running on Dataflow)." >&2
    exit 2
    ;;
  *)
    echo "run_dataflow.sh: unknown command '$1'" >&2
    usage >&2
    exit 2
    ;;
esac
