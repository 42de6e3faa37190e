# RefundGuard: `make run` starts everything on embedded defaults; `make test` runs the suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8000
STAMP := $(VENV)/.installed

.PHONY: run test lint format migrate seed install clean-var

$(PY):
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "RefundGuard needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)

$(STAMP): requirements.txt | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

install: $(STAMP)

migrate: install
	$(PY) manage.py migrate --noinput

seed: migrate
	$(PY) manage.py seed_demo

run: seed
	@echo ""
	@echo "RefundGuard is starting (web + worker + beat):"
	@echo "  console   http://127.0.0.1:$(PORT)/console/   login demo / refundguard-demo"
	@echo "  admin     http://127.0.0.1:$(PORT)/admin/     login admin / refundguard-demo"
	@echo "  API docs  http://127.0.0.1:$(PORT)/api/docs/  demo key rg_demo_local_only_key_0000000000000000"
	@echo "  health    http://127.0.0.1:$(PORT)/healthz"
	@echo ""
	PORT=$(PORT) PUBLIC_BASE_URL=$${PUBLIC_BASE_URL:-http://127.0.0.1:$(PORT)} $(VENV)/bin/honcho -f Procfile.dev start

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

# lint-imports holds the apps to their floors (pyproject.toml [tool.importlinter], docs/architecture.md).
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-logo --no-cache

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean-var:
	rm -rf var
