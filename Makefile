# Two entry points for a fresh machine: `make run` (the app, embedded) and `make test` (the suite).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --disable-pip-version-check -q -r requirements.txt
	touch $@

.PHONY: install run test lint bench demo
install: $(VENV)/.installed

run: install  ## SQLite + in-process Celery, demo data, dev server on http://127.0.0.1:8000
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	$(PY) manage.py runserver $(HOST):$(PORT)

test: install  ## the whole suite; services it finds are used, REQUIRE_SERVICES=1 makes them mandatory
	$(VENV)/bin/ruff check .
	$(PY) manage.py makemigrations --check --dry-run
	$(VENV)/bin/pytest $(PYTEST_ARGS)

BENCHES := compliance_check queue_page import_accounts ageing audit_search
bench: install  ## all benchmarks against PostgreSQL on loopback (servicing_bench_<script>, or BENCH_DATABASE_URL); one: make bench BENCHES=queue_page
	for b in $(BENCHES); do echo "== $$b"; $(PY) bench/$$b.py || exit 1; done
