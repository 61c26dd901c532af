#!/usr/bin/env bash
# Run beam-analytics jobs on Dataflow: ad hoc submissions, Flex Templates, scheduled template
# launches, GPU workers. Every command it runs is printed instead with --dry-run (the tests
# use that; nothing here needs a cloud account until you drop --dry-run).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"

usage() {
  cat <<'USAGE'
usage: run_dataflow.sh [options] COMMAND JOB [args...]

commands:
  run JOB [job flags...]      submit JOB with the DataflowRunner (python -m pipelines JOB ...);
                              a Pub/Sub --input runs streaming, on Streaming Engine
  update JOB [job flags...]   replace the running streaming JOB in place (--update), keeping
                              its state; the new code must keep the step names
  drain JOB                   drain the running streaming JOB (finish in-flight data, stop)
  build-template JOB          build JOB's container image (Cloud Build) and its Flex Template
                              gs://BUCKET/templates/JOB.json from templates/JOB.metadata.json
  run-template JOB [--param NAME=VALUE]... [--parameters NAME=VALUE,...]
                              launch the Flex Template (parameters are checked first against
                              templates/JOB.metadata.json)
  schedule JOB 'CRON' [--param NAME=VALUE]... [--time-zone TZ]
                              a Cloud Scheduler job that launches the template on CRON (batch
                              inputs; {yesterday} in --input/--input_table picks the day)
  unschedule JOB              delete that Cloud Scheduler job

configuration (flag, or environment variable):
  --project P            PROJECT       Google Cloud project (required)
  --region R             REGION        Dataflow region, e.g. us-central1 (required)
  --bucket B             BUCKET        bucket for temp/staging files and templates (required
                                       except for drain/unschedule)
  --image PATH           IMAGE         Artifact Registry path for the job images
                                       (default REGION-docker.pkg.dev/PROJECT/beam-analytics)
  --tag T                TAG           image tag (default: the git commit, else latest)
  --service-account SA   SERVICE_ACCOUNT   the workers' service account (recommended: a
                                       dedicated least-privilege one, see README)
  --scheduler-service-account SA  SCHEDULER_SERVICE_ACCOUNT  the account Cloud Scheduler
                                       launches as (default SERVICE_ACCOUNT)
  --python PY            PYTHON        the project's Python (default .venv/bin/python, python3)

options:
  --dry-run              print every command instead of running it
  --job-name NAME        Dataflow job name (default JOB-YYYYMMDD-HHMMSS; update: the running
                         job, looked up by its JOB- prefix)
  --job-id ID            drain: the job's id (default: looked up by name prefix)
  --container            run: workers use the job's image (build-template) instead of
                         --setup_file (always for image_inference: TensorFlow is in it)
  --gpu                  image_inference on GPU workers (GPU image, accelerator, one SDK
                         process per VM, --device gpu)
  --gpu-type T           GPU_TYPE      default nvidia-tesla-t4 (with --gpu)
  --gpu-count N          GPU_COUNT     default 1 (with --gpu; the model uses one GPU)
  --machine-type M       MACHINE_TYPE  worker machine type (with --gpu, default: one that
                                       fits the GPU type and count)
  --param NAME=VALUE     a template parameter (repeatable; values may hold commas)
  --parameters LIST      NAME=VALUE,... (gcloud's form; ^D^ picks another delimiter)
  --time-zone TZ         TIME_ZONE     schedule's time zone (default Etc/UTC)

jobs: the templates/*.metadata.json files (python -m pipelines lists them)
USAGE
}

die() {
  echo "run_dataflow.sh: $*" >&2
  exit 2
}

note() {
  echo "run_dataflow.sh: $*" >&2
}

PROJECT="${PROJECT:-}"
REGION="${REGION:-}"
BUCKET="${BUCKET:-}"
IMAGE="${IMAGE:-}"
TAG="${TAG:-}"
SERVICE_ACCOUNT="${SERVICE_ACCOUNT:-}"
SCHEDULER_SERVICE_ACCOUNT="${SCHEDULER_SERVICE_ACCOUNT:-}"
GPU_TYPE="${GPU_TYPE:-nvidia-tesla-t4}"
GPU_COUNT="${GPU_COUNT:-1}"
MACHINE_TYPE="${MACHINE_TYPE:-}"
TIME_ZONE="${TIME_ZONE:-Etc/UTC}"
PYTHON="${PYTHON:-}"
DRY_RUN=0
GPU=0
GPU_FLAGS=""  # --gpu-type/--gpu-count given: they mean nothing without --gpu
CONTAINER=0
JOB_NAME=""
JOB_ID=""
COMMAND=""
JOB=""
CRON=""
PARAMS=()
JOB_ARGS=()

GPU_DISK_GB=50  # the TensorFlow GPU image is several GB; Dataflow's default disk is tight
LABELS_APP="app=beam-analytics"

add_parameters() {  # gcloud's NAME=VALUE,... form, or ^D^NAME=VALUE<D>... (D: any string)
  local list="$1" delim="," item
  if [[ "$list" =~ ^\^([^^]+)\^(.*)$ ]]; then
    delim="${BASH_REMATCH[1]}"
    list="${BASH_REMATCH[2]}"
  fi
  while [[ -n "$list" ]]; do
    if [[ "$list" == *"$delim"* ]]; then
      item="${list%%"$delim"*}"
      list="${list#*"$delim"}"
    else
      item="$list"
      list=""
    fi
    if [[ -n "$item" ]]; then PARAMS+=("$item"); fi
  done
  return 0
}

# Options are taken anywhere; the first words are COMMAND, JOB (and schedule's CRON); every
# other word belongs to the job (run/update).
while [[ $# -gt 0 ]]; do
  arg="$1"
  value=""
  case "$arg" in
    --*=*) value="${arg#*=}"; arg="${arg%%=*}"; has_value=1 ;;
    *) has_value=0 ;;
  esac
  takes_value=1
  case "$arg" in
    -h|--help|--dry-run|--gpu|--container) takes_value=0 ;;
    --project|--region|--bucket|--image|--tag|--service-account|--scheduler-service-account|\
    --python|--job-name|--job-id|--gpu-type|--gpu-count|--machine-type|--param|--parameters|\
    --time-zone) ;;
    *) takes_value=-1 ;;
  esac
  if [[ $takes_value -eq 0 && $has_value -eq 1 ]]; then
    die "$arg takes no value (got $arg=$value)"
  fi
  if [[ $takes_value -eq 1 && $has_value -eq 0 ]]; then
    [[ $# -ge 2 && "$2" != --* ]] || die "$arg needs a value"
    value="$2"
    shift
  fi
  case "$arg" in
    -h|--help) usage; exit 0 ;;
    --dry-run) DRY_RUN=1 ;;
    --gpu) GPU=1 ;;
    --container) CONTAINER=1 ;;
    --project) PROJECT="$value" ;;
    --region) REGION="$value" ;;
    --bucket) BUCKET="$value" ;;
    --image) IMAGE="$value" ;;
    --tag) TAG="$value" ;;
    --service-account) SERVICE_ACCOUNT="$value" ;;
    --scheduler-service-account) SCHEDULER_SERVICE_ACCOUNT="$value" ;;
    --python) PYTHON="$value" ;;
    --job-name) JOB_NAME="$value" ;;
    --job-id) JOB_ID="$value" ;;
    --gpu-type) GPU_TYPE="$value"; GPU_FLAGS="$arg" ;;
    --gpu-count) GPU_COUNT="$value"; GPU_FLAGS="$arg" ;;
    --machine-type) MACHINE_TYPE="$value" ;;
    --param) PARAMS+=("$value") ;;
    --parameters) add_parameters "$value" ;;
    --time-zone) TIME_ZONE="$value" ;;
    *)
      if [[ -z "$COMMAND" ]]; then
        COMMAND="$1"
      elif [[ -z "$JOB" ]]; then
        JOB="$1"
      elif [[ "$COMMAND" == schedule && -z "$CRON" ]]; then
        CRON="$1"
      else
        JOB_ARGS+=("$1")
      fi
      ;;
  esac
  shift
done

# ---- validation: every problem is one clear line and exit status 2, before anything runs

case "$COMMAND" in
  "") usage >&2; exit 2 ;;
  run|update|drain|build-template|run-template|schedule|unschedule) ;;
  *) die "unknown command '$COMMAND' (run, update, drain, build-template, run-template, schedule, unschedule; --help)" ;;
esac

known_jobs() {
  local file
  for file in templates/*.metadata.json; do
    file="${file#templates/}"
    printf '%s ' "${file%.metadata.json}"
  done
}
[[ -n "$JOB" ]] || die "$COMMAND needs a JOB: $(known_jobs)"
[[ "$JOB" =~ ^[a-z_]+$ && -f "templates/$JOB.metadata.json" ]] \
  || die "unknown job '$JOB'; jobs: $(known_jobs)"

missing=()
[[ -n "$PROJECT" ]] || missing+=("PROJECT (--project or export PROJECT=my-project)")
[[ -n "$REGION" ]] || missing+=("REGION (--region or export REGION=us-central1)")
case "$COMMAND" in
  drain|unschedule) ;;
  *) [[ -n "$BUCKET" ]] || missing+=("BUCKET (--bucket or export BUCKET=my-bucket)") ;;
esac
if [[ ${#missing[@]} -gt 0 ]]; then
  for item in "${missing[@]}"; do
    note "not set: $item"
  done
  die "$COMMAND $JOB needs the configuration above (see --help)"
fi
[[ "$PROJECT" =~ ^([a-z0-9.-]+:)?[a-z][-a-z0-9]{4,28}[a-z0-9]$ ]] \
  || die "PROJECT '$PROJECT' is not a project id (6-30 lowercase letters, digits, hyphens)"
[[ "$REGION" =~ ^[a-z]+-[a-z]+[0-9]+$ ]] || die "REGION '$REGION' is not a region such as us-central1"
BUCKET="${BUCKET#gs://}"
BUCKET="${BUCKET%/}"
if [[ -n "$BUCKET" && ! "$BUCKET" =~ ^[a-z0-9][-_.a-z0-9]{1,220}[a-z0-9]$ ]]; then
  die "BUCKET '$BUCKET' is not a bucket name"
fi
case "$COMMAND" in
  run|update) ;;
  *) [[ ${#JOB_ARGS[@]} -eq 0 ]] || die "$COMMAND does not take job flags (${JOB_ARGS[*]}); templates take --param NAME=VALUE" ;;
esac
case "$COMMAND" in
  run-template|schedule) ;;
  *) [[ ${#PARAMS[@]} -eq 0 ]] || die "--param/--parameters are for run-template and schedule; run takes job flags" ;;
esac

for arg in "${JOB_ARGS[@]}"; do
  case "${arg%%=*}" in
    --runner|--project|--region|--temp_location|--staging_location|--setup_file|\
    --sdk_container_image|--sdk_location|--job_name|--service_account_email|--update)
      die "$arg is set by run_dataflow.sh (see --help for its own options)" ;;
    --api_key)
      die "no --api_key on a command line (it lands in shell history and in the job's options): the workers' service account (ADC) calls the Vision and Natural Language APIs" ;;
  esac
done
for param in "${PARAMS[@]}"; do
  [[ "$param" == api_key=* ]] \
    && die "no api_key parameter (it would be stored in the job's options): the workers' service account (ADC) calls the APIs"
done

if [[ $GPU -eq 1 && "$JOB" != image_inference ]]; then
  die "--gpu is for image_inference (the only job with a model to accelerate)"
fi
if [[ $GPU -eq 1 && "$COMMAND" == drain ]]; then
  die "--gpu does not apply to drain (it finds the job by name)"
fi
[[ $GPU -eq 1 || -z "$GPU_FLAGS" ]] || die "$GPU_FLAGS needs --gpu"
[[ "$GPU_COUNT" =~ ^[1-9][0-9]*$ ]] || die "GPU_COUNT '$GPU_COUNT' is not a whole number > 0"
if [[ $GPU -eq 1 && "$GPU_COUNT" -gt 1 && "$COMMAND" != unschedule ]]; then
  note "image_inference places its model on one GPU per worker: more than one leaves the others idle (more workers scale better)"
fi

gpu_machine_type() {  # the smallest standard machine that takes GPU_COUNT x GPU_TYPE
  local vcpus
  case "$GPU_TYPE" in
    nvidia-tesla-t4|nvidia-tesla-p4|nvidia-tesla-p100)  # at most 4 per VM
      case "$GPU_COUNT" in 1) vcpus=4 ;; 2) vcpus=8 ;; 4) vcpus=16 ;; *) return 1 ;; esac
      echo "n1-standard-$vcpus" ;;
    nvidia-tesla-v100)
      case "$GPU_COUNT" in 1) vcpus=4 ;; 2) vcpus=8 ;; 4) vcpus=16 ;; 8) vcpus=32 ;; *) return 1 ;; esac
      echo "n1-standard-$vcpus" ;;
    nvidia-l4)
      case "$GPU_COUNT" in 1) vcpus=4 ;; 2) vcpus=24 ;; 4) vcpus=48 ;; 8) vcpus=96 ;; *) return 1 ;; esac
      echo "g2-standard-$vcpus" ;;
    nvidia-tesla-a100)
      case "$GPU_COUNT" in 1|2|4|8) echo "a2-highgpu-${GPU_COUNT}g" ;; *) return 1 ;; esac ;;
    nvidia-a100-80gb)
      case "$GPU_COUNT" in 1|2|4|8) echo "a2-ultragpu-${GPU_COUNT}g" ;; *) return 1 ;; esac ;;
    *) return 1 ;;
  esac
}
if [[ $GPU -eq 1 && -z "$MACHINE_TYPE" ]]; then
  MACHINE_TYPE="$(gpu_machine_type)" \
    || die "no default machine type for $GPU_COUNT x $GPU_TYPE: pass --machine-type (see Compute Engine's GPU platforms)"
fi

if [[ -z "$PYTHON" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
IMAGE="${IMAGE:-$REGION-docker.pkg.dev/${PROJECT/://}/beam-analytics}"  # example.com:p -> example.com/p
if [[ -z "$TAG" ]]; then
  TAG="$(git rev-parse --short=12 HEAD 2>/dev/null || echo latest)"
fi

JOB_DASHED="${JOB//_/-}"
VARIANT=""
DOCKERFILE=templates/Dockerfile
if [[ $GPU -eq 1 ]]; then
  VARIANT="-gpu"
  DOCKERFILE=templates/Dockerfile.gpu
fi
JOB_IMAGE="$IMAGE/$JOB_DASHED$VARIANT:$TAG"
TEMPLATE="gs://$BUCKET/templates/$JOB$VARIANT.json"
TEMP_LOCATION="gs://$BUCKET/tmp"
STAGING_LOCATION="gs://$BUCKET/staging"
SCHEDULER_JOB="beam-analytics-$JOB_DASHED$VARIANT"
ACCELERATOR="worker_accelerator=type:$GPU_TYPE;count:$GPU_COUNT;install-nvidia-driver"
ONE_SDK_PROCESS="no_use_multiple_sdk_containers"  # one TensorFlow (and model) per GPU VM

# ---- running (or printing) commands

quote() {  # one word as a POSIX shell reads it back
  if [[ "$1" =~ ^[-A-Za-z0-9_@%+=:,./]+$ ]]; then
    printf '%s' "$1"
  else
    printf "'%s'" "${1//\'/\'\\\'\'}"
  fi
}

print_command() {
  local word first=1
  for word in "$@"; do
    [[ $first -eq 1 ]] || printf ' '
    first=0
    quote "$word"
  done
  printf '\n'
}

execute() {
  if [[ $DRY_RUN -eq 1 ]]; then
    print_command "$@"
  else
    "$@"
  fi
}

job_name() {
  if [[ -n "$JOB_NAME" ]]; then
    echo "$JOB_NAME"
  else
    echo "$JOB_DASHED-$(date -u +%Y%m%d-%H%M%S)"
  fi
}

RUNNING=""
find_running_job() {  # RUNNING = FIELD (name or id) of the one active job named JOB-...
  local field="$1" found
  local -a lookup=(gcloud dataflow jobs list --project "$PROJECT" --region "$REGION"
    --status active --filter "name~^$JOB_DASHED-[0-9]{8}-[0-9]{6}\$" --format "value($field)")
  if [[ $DRY_RUN -eq 1 ]]; then
    print_command "${lookup[@]}"
    note "dry run: RUNNING_JOB stands for the $field the command above prints"
    RUNNING=RUNNING_JOB
    return
  fi
  found="$("${lookup[@]}")"
  [[ -n "$found" ]] \
    || die "no active Dataflow job named $JOB_DASHED-YYYYMMDD-HHMMSS in $REGION (named otherwise? pass --job-name / --job-id)"
  [[ "$(wc -l <<<"$found")" -eq 1 ]] \
    || die "several active $JOB_DASHED-* jobs; pick one with --job-name / --job-id: $found"
  RUNNING="$found"
}

job_sets() {  # whether the job flags set one of FLAGS (--flag value or --flag=value)
  local arg flag
  for arg in "${JOB_ARGS[@]}"; do
    for flag in "$@"; do
      [[ "$arg" == "$flag" || "$arg" == "$flag="* ]] && return 0
    done
  done
  return 1
}

is_streaming_args() {
  local previous="" arg
  for arg in "${JOB_ARGS[@]}"; do
    case "$arg" in
      --streaming|--streaming=true|--input=projects/*) return 0 ;;
    esac
    [[ "$previous" == --input && "$arg" == projects/* ]] && return 0
    previous="$arg"
  done
  return 1
}

is_streaming_params() {
  local param
  for param in "${PARAMS[@]}"; do
    [[ "$param" == input=projects/* ]] && return 0
  done
  return 1
}

warn_default_account() {
  if [[ -z "$SERVICE_ACCOUNT" ]]; then
    note "no SERVICE_ACCOUNT: the workers run as the Compute Engine default service account; a dedicated least-privilege one is safer (README: Run on Dataflow)"
  fi
}

cmd_run() {  # run and update
  local name
  if [[ "$COMMAND" == update ]]; then
    is_streaming_args || die "update replaces a running streaming job: give its Pub/Sub --input"
    name="$JOB_NAME"
    if [[ -z "$name" ]]; then
      find_running_job name
      name="$RUNNING"
    fi
  else
    name="$(job_name)"
  fi
  local -a command=("$PYTHON" -m pipelines "$JOB" "${JOB_ARGS[@]}"
    --runner DataflowRunner --project "$PROJECT" --region "$REGION"
    --temp_location "$TEMP_LOCATION" --staging_location "$STAGING_LOCATION"
    --job_name "$name" --labels "$LABELS_APP" --labels "job=$JOB")
  if [[ "$JOB" == image_inference && $GPU -eq 0 && $CONTAINER -eq 0 ]]; then
    CONTAINER=1  # Dataflow installs --setup_file without extras: TensorFlow is in the image
    note "image_inference runs in its image ($JOB_IMAGE, from build-template): --setup_file cannot bring TensorFlow"
  fi
  if [[ $GPU -eq 1 || $CONTAINER -eq 1 ]]; then
    command+=(--sdk_container_image "$JOB_IMAGE" --sdk_location container)
  else
    command+=(--setup_file ./setup.py)
  fi
  [[ -z "$SERVICE_ACCOUNT" ]] || command+=(--service_account_email "$SERVICE_ACCOUNT")
  if is_streaming_args; then
    command+=(--enable_streaming_engine)
  fi
  # The script's defaults give way to the same Beam flags among the job's own.
  if [[ $GPU -eq 1 ]]; then
    command+=(--dataflow_service_options "$ACCELERATOR")
  fi
  if [[ -n "$MACHINE_TYPE" ]] && ! job_sets --machine_type --worker_machine_type; then
    command+=(--machine_type "$MACHINE_TYPE")
  fi
  if [[ $GPU -eq 1 ]]; then
    command+=(--experiments "$ONE_SDK_PROCESS")
    job_sets --disk_size_gb || command+=(--disk_size_gb "$GPU_DISK_GB")
    job_sets --device || command+=(--device gpu)
  fi
  [[ "$COMMAND" != update ]] || command+=(--update)
  warn_default_account
  execute "${command[@]}"
}

cmd_drain() {
  local id="$JOB_ID"
  if [[ -z "$id" ]]; then
    find_running_job id
    id="$RUNNING"
  fi
  execute gcloud dataflow jobs drain "$id" --project "$PROJECT" --region "$REGION"
}

cmd_build_template() {
  # A template built from stale metadata would refuse (or miss) the job's current flags.
  "$PYTHON" -m pipelines.templates --check \
    || die "templates/*.metadata.json are stale: run $PYTHON -m pipelines.templates and commit"
  execute gcloud builds submit --project "$PROJECT" --config templates/cloudbuild.yaml \
    --substitutions "_IMAGE=$JOB_IMAGE,_JOB=$JOB,_DOCKERFILE=$DOCKERFILE" .
  execute gcloud dataflow flex-template build "$TEMPLATE" --project "$PROJECT" \
    --image "$JOB_IMAGE" --sdk-language PYTHON --metadata-file "templates/$JOB.metadata.json"
}

gpu_params() {  # the job's own flag for GPU runs, unless given
  local param
  for param in "${PARAMS[@]}"; do
    [[ "$param" == device=* ]] && return 0
  done
  PARAMS+=(device=gpu)
}

check_params() {
  "$PYTHON" -m pipelines.templates validate "$JOB" "${PARAMS[@]}" \
    || die "fix the parameters above (templates/$JOB.metadata.json lists them)"
}

joined_params() {  # PARAMS for gcloud: commas, or ^D^ with a delimiter no value holds
  local delim all
  all="$(printf '%s' "${PARAMS[@]}")"
  for delim in ',' '~' '|' '@' '#' ';' '!'; do
    if [[ "$all" != *"$delim"* ]]; then
      local IFS="$delim"
      if [[ "$delim" == , ]]; then echo "${PARAMS[*]}"; else echo "^$delim^${PARAMS[*]}"; fi
      return
    fi
  done
  die "every delimiter gcloud accepts appears in the parameter values"
}

cmd_run_template() {
  [[ $GPU -eq 0 ]] || gpu_params
  check_params
  local -a command=(gcloud dataflow flex-template run "$(job_name)" --project "$PROJECT"
    --region "$REGION" --template-file-gcs-location "$TEMPLATE"
    --temp-location "$TEMP_LOCATION" --staging-location "$STAGING_LOCATION"
    --additional-user-labels "$LABELS_APP,job=$JOB")
  [[ -z "$SERVICE_ACCOUNT" ]] || command+=(--service-account-email "$SERVICE_ACCOUNT")
  [[ ${#PARAMS[@]} -eq 0 ]] || command+=(--parameters "$(joined_params)")
  if is_streaming_params; then
    command+=(--enable-streaming-engine)
  fi
  [[ -z "$MACHINE_TYPE" ]] || command+=(--worker-machine-type "$MACHINE_TYPE")
  if [[ $GPU -eq 1 ]]; then
    # Template launches take the accelerator as an experiment (the launch API has no
    # service-options field); run passes it as --dataflow_service_options.
    command+=(--additional-experiments "$ACCELERATOR,$ONE_SDK_PROCESS"
      --additional-pipeline-options "disk_size_gb=$GPU_DISK_GB")
  fi
  warn_default_account
  execute "${command[@]}"
}

launch_body() {  # the flexTemplates:launch request Cloud Scheduler sends
  "$PYTHON" - "$JOB" "$JOB_DASHED$VARIANT-scheduled" "$TEMPLATE" "$TEMP_LOCATION" \
    "$STAGING_LOCATION" "$SERVICE_ACCOUNT" "$GPU" "$MACHINE_TYPE" "$ACCELERATOR" \
    "$ONE_SDK_PROCESS" "$GPU_DISK_GB" "${PARAMS[@]}" <<'PY'
import json
import sys

(job, name, template, temp, staging, account, gpu, machine, accelerator, one_sdk,
 disk) = sys.argv[1:12]
environment = {'tempLocation': temp, 'stagingLocation': staging,
               'additionalUserLabels': {'app': 'beam-analytics', 'job': job}}
if account:
  environment['serviceAccountEmail'] = account
if machine:
  environment['machineType'] = machine
if gpu == '1':
  environment.update(additionalExperiments=[accelerator, one_sdk], diskSizeGb=int(disk))
parameters = dict(pair.split('=', 1) for pair in sys.argv[12:])
print(json.dumps({'launchParameter': {
    'jobName': name, 'containerSpecGcsPath': template, 'parameters': parameters,
    'environment': environment}}, sort_keys=True, separators=(',', ':')))
PY
}

cmd_schedule() {
  [[ -n "$CRON" ]] || die "schedule needs a CRON expression, e.g. '0 6 * * *' (06:00 daily)"
  local fields
  read -r -a fields <<<"$CRON"
  [[ ${#fields[@]} -eq 5 ]] || die "CRON '$CRON' must have 5 fields (minute hour day month weekday)"
  if is_streaming_params; then
    die "a schedule launches a new job each time: schedule batch inputs (gs://, BigQuery); launch a streaming job once with run-template"
  fi
  local account="${SCHEDULER_SERVICE_ACCOUNT:-$SERVICE_ACCOUNT}"
  [[ -n "$account" ]] \
    || die "schedule needs SCHEDULER_SERVICE_ACCOUNT (or SERVICE_ACCOUNT): the account Cloud Scheduler launches the template as (README: Run on Dataflow)"
  [[ $GPU -eq 0 ]] || gpu_params
  check_params
  local verb=create headers=--headers
  if [[ $DRY_RUN -eq 0 ]] && gcloud scheduler jobs describe "$SCHEDULER_JOB" \
      --project "$PROJECT" --location "$REGION" >/dev/null 2>&1; then
    verb=update  # rescheduling replaces the schedule and the launch request in place
    headers=--update-headers
  fi
  [[ $DRY_RUN -eq 0 ]] || note "dry run: shown as create; an existing $SCHEDULER_JOB is updated in place (update http, --update-headers)"
  execute gcloud scheduler jobs "$verb" http "$SCHEDULER_JOB" --project "$PROJECT" \
    --location "$REGION" --schedule "$CRON" --time-zone "$TIME_ZONE" \
    --uri "https://dataflow.googleapis.com/v1b3/projects/$PROJECT/locations/$REGION/flexTemplates:launch" \
    --http-method POST "$headers" Content-Type=application/json \
    --oauth-service-account-email "$account" \
    --oauth-token-scope https://www.googleapis.com/auth/cloud-platform \
    --message-body "$(launch_body)" \
    --description "beam-analytics: launch the $JOB$VARIANT Flex Template"
}

cmd_unschedule() {
  execute gcloud scheduler jobs delete "$SCHEDULER_JOB" --project "$PROJECT" \
    --location "$REGION" --quiet
}

case "$COMMAND" in
  run|update) cmd_run ;;
  drain) cmd_drain ;;
  build-template) cmd_build_template ;;
  run-template) cmd_run_template ;;
  schedule) cmd_schedule ;;
  unschedule) cmd_unschedule ;;
esac
