# Each target bootstraps .venv itself, so a fresh clone needs nothing but Python 3.11.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
OUTPUT ?= output
PYTEST_ARGS ?=

.PHONY: run report run-local-cloud test bench lint templates tools emulators emulators-install emulators-stop clean help

help:
	@echo "make run    - run every job on its bundled sample (DirectRunner) into $(OUTPUT)/"
	@echo "make test   - run the whole test suite"
	@echo "make bench  - benchmark the jobs against DuckDB and plain Python"
	@echo "make lint   - ruff and shellcheck"
	@echo "make templates - regenerate templates/*.metadata.json from the jobs' options"
	@echo "make report - the charts and tables of what make run wrote, as $(OUTPUT)/report/report.html"
	@echo "make emulators / emulators-stop - the Pub/Sub, Bigtable, BigQuery and GCS emulators on loopback"
	@echo "make run-local-cloud - the streaming jobs from Pub/Sub into BigQuery and Bigtable, on the emulators"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): setup.py | $(PY)
	$(PY) -m pip install --quiet -e '.[dev,tf,report]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m pipelines game_analytics --output $(OUTPUT)/game_analytics
	$(PY) -m pipelines log_analytics --output $(OUTPUT)/log_analytics \
	    --metric 'server_errors=httpRequest.status>=500' --alert 'server_errors>20'
	$(PY) -m pipelines iot_telemetry --output $(OUTPUT)/iot_telemetry \
	    --rule 'hot: temperature > 30 for 2 windows -> {"fan": "high"}'
	$(PY) -m pipelines tweet_sentiment --output $(OUTPUT)/tweet_sentiment \
	    --track 'nova x,#novax,#novaxrecall,orbitel,recall,battery'
	$(PY) -m pipelines face_dataset --output $(OUTPUT)/face_dataset --balance
	$(PY) -m models.face_cnn train --dataset $(OUTPUT)/face_dataset \
	    --model_out $(OUTPUT)/face_model/face.keras --epochs 15 --batch_size 8
	$(PY) -m pipelines image_inference --input $(OUTPUT)/face_dataset/validate_file.txt \
	    --model $(OUTPUT)/face_model/face.keras --output $(OUTPUT)/image_inference
	$(MAKE) --no-print-directory report

report: $(STAMP)
	$(PY) -m pipelines.report $(OUTPUT) --out $(OUTPUT)/report

# Tools the tests call that pip cannot install, from Debian: shellcheck (run_dataflow.sh) and
# chromium (the report's browser test). Without apt-get, root or password-less sudo it says
# how to get them (never prompts); their tests then skip, and fail in CI.
DEBIAN_TOOLS ?= shellcheck chromium
tools:
	@missing=; for tool in $(DEBIAN_TOOLS); do \
	  command -v $$tool >/dev/null 2>&1 || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then \
	  if ! command -v apt-get >/dev/null 2>&1; then \
	    echo "missing:$$missing (install them with your package manager)"; exit 0; \
	  elif [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true >/dev/null 2>&1; then SUDO="sudo -n"; \
	  else echo "missing:$$missing (sudo apt-get install$$missing)"; exit 0; fi; \
	  echo "installing$$missing (Debian packages)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -qq >/dev/null && \
	    $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; } || \
	  echo "could not install$$missing"; fi

test: $(STAMP) tools emulators-install
	$(PY) -m pytest -q $(PYTEST_ARGS) tests

# The PyPI emulators (BigQuery, GCS) in venvs of their own under .emulators/; Pub/Sub and
# Bigtable come with the Google Cloud SDK. Ports: EMULATOR_ARGS='--pubsub_port 8185 ...'.
EMULATOR_ARGS ?=
emulators-install: $(STAMP)
	$(PY) -m localcloud.emulators install

emulators: emulators-install
	$(PY) -m localcloud.emulators start $(EMULATOR_ARGS)

emulators-stop: $(STAMP)
	$(PY) -m localcloud.emulators stop

# Starts the emulators (unless make emulators did), publishes the samples, runs the streaming
# jobs into BigQuery/Bigtable, prints the rows per table; DEMO_ARGS='--keep' leaves them up.
DEMO_ARGS ?=
run-local-cloud: emulators-install
	$(PY) -m localcloud.demo $(DEMO_ARGS)

templates: $(STAMP)
	$(PY) -m pipelines.templates

bench: $(STAMP)
	$(PY) bench/game_analytics.py
	$(PY) bench/log_analytics.py
	$(PY) bench/iot_telemetry.py
	$(PY) bench/tweet_sentiment.py
	$(PY) bench/face_dataset.py --no_in_memory
	$(PY) bench/image_inference.py

lint: $(STAMP) tools
	$(PY) -m ruff check pipelines transforms schemas tests bench templates localcloud
	shellcheck run_dataflow.sh

clean:
	-$(PY) -m localcloud.emulators stop 2>/dev/null
	rm -rf $(VENV) $(OUTPUT) build *.egg-info .emulators
