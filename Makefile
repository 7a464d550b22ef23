# Two entry points for a fresh machine: `make run` (the app, embedded) and `make test` (the suite).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

# Installs are reproducible: the locks pin every transitive dependency (pip-tools). Production installs
# requirements.lock only (no test tooling, no playwright); development and CI install requirements-dev.lock.
$(VENV)/.installed: requirements.txt requirements-dev.txt requirements.lock requirements-dev.lock
	$(PYTHON) scripts/check_locks.py
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --disable-pip-version-check -q -r requirements-dev.lock
	touch $@

.PHONY: install run test lint bench demo lock
install: $(VENV)/.installed

PIP_COMPILE = $(VENV)/bin/pip-compile -q --allow-unsafe --strip-extras --no-emit-index-url --no-emit-trusted-host --no-emit-find-links
lock:  ## regenerate requirements.lock / requirements-dev.lock after editing requirements.txt / requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	test -x $(VENV)/bin/pip-compile || $(VENV)/bin/pip install -q pip-tools==7.6.2
	$(PIP_COMPILE) -o requirements.lock requirements.txt
	$(PIP_COMPILE) -o requirements-dev.lock requirements-dev.txt

run: install  ## SQLite + in-process Celery, demo data, dev server on http://127.0.0.1:8000
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	$(PY) manage.py runserver $(HOST):$(PORT)

test: install  ## the whole suite; services it finds are used, REQUIRE_SERVICES=1 makes them mandatory
	$(VENV)/bin/ruff check .
	$(PY) manage.py makemigrations --check --dry-run
	$(VENV)/bin/pytest $(PYTEST_ARGS)

BENCHES := compliance_check queue_page import_accounts ageing audit_search scoring http_outreach statements
bench: install  ## all benchmarks against PostgreSQL on loopback (servicing_bench_<script>, or BENCH_DATABASE_URL); one: make bench BENCHES=queue_page
	for b in $(BENCHES); do echo "== $$b"; $(PY) bench/$$b.py || exit 1; done
