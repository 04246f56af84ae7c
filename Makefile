# Two commands on a fresh machine: `make demo` and `make test`. See README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VERSION ?= v1.0.0
ENVIRONMENT ?= sandbox
VENV := .venv
PY := $(VENV)/bin/python
UV := python3 -m uv
UV_VERSION := 0.13.9
STAMP := .make
SANDBOX := PYTHONPATH=plugins $(PY) -m varai_deploy.sandbox
AIRFLOW_HOME ?= .airflow
VERDACCIO := include/sandbox/verdaccio
NODE_TOOLS := $(VERDACCIO)/node_modules/.package-lock.json

.PHONY: help setup demo test lint airflow sandbox-up sandbox-down sandbox-status lock bench clean

help:
	@echo "make demo [VERSION=v1.0.1]  set everything up, release VERSION to the sandbox through Airflow"
	@echo "make test                   set everything up, run ruff and the tests"
	@echo "make airflow                airflow standalone on http://127.0.0.1:8080 (user admin)"
	@echo "make sandbox-up | sandbox-down | sandbox-status"
	@echo "make bench                  run the benchmarks in benchmarks/ (release, rollback, widget publication)"

setup: $(STAMP)/apt $(STAMP)/venv $(NODE_TOOLS) $(STAMP)/airflow-db

# Debian packages the sandbox runs: Prometheus, and the widget channels' real servers and clients
# (svnserve/svn, composer with PHP's zip extension, node/npm for Verdaccio), and PostgreSQL for the
# release ledger (the sandbox runs its own cluster; any Debian PostgreSQL version will do). Only what is missing is
# installed (and then re-checked even if the stamp exists); sudo only if not root. Where systemd
# runs, the prometheus package starts its own server on :9090: the sandbox runs its own, so that
# service is stopped and disabled.
APT_NEEDS := /usr/bin/prometheus:prometheus /usr/bin/svnserve:subversion /usr/bin/composer:composer \
	/usr/bin/php:php-cli /usr/bin/npm:npm /usr/lib/postgresql/*/bin/initdb:postgresql
APT_MISSING = $(strip $(foreach need,$(APT_NEEDS),$(if $(wildcard $(firstword $(subst :, ,$(need)))),,$(lastword $(subst :, ,$(need))))) \
	$(if $(wildcard /usr/bin/php),$(if $(shell php -m 2>/dev/null | grep -x zip),,php8.2-zip),php8.2-zip))
.PHONY: FORCE
$(STAMP)/apt: $(if $(APT_MISSING),FORCE)
	@mkdir -p $(STAMP)
	@if [ -n "$(APT_MISSING)" ]; then \
		SUDO=; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
		echo "Installing Debian packages: $(APT_MISSING) ..."; \
		{ $$SUDO apt-get update && $$SUDO env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y --no-install-recommends $(APT_MISSING); } \
			> $(STAMP)/apt.log 2>&1 || { tail -20 $(STAMP)/apt.log; exit 1; }; \
		$$SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true; \
	fi
	@touch $@

# Verdaccio (the sandbox npm registry), pinned by its package-lock.json; npm ci writes the target.
$(NODE_TOOLS): $(VERDACCIO)/package-lock.json $(STAMP)/apt
	@echo "Installing Verdaccio (npm ci) ..."
	@npm ci --prefix $(VERDACCIO) --no-audit --no-fund --loglevel=error > $(STAMP)/npm.log 2>&1 \
		|| { tail -20 $(STAMP)/npm.log; exit 1; }
	@touch $@

$(STAMP)/venv: requirements.txt
	@mkdir -p $(STAMP)
	@python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet "uv==$(UV_VERSION)"
	@test -x $(PY) || $(UV) venv --quiet --python "$$(command -v python3)" $(VENV)
	@echo "Installing the pinned requirements into $(VENV) ..."
	@$(UV) pip sync --quiet --python $(PY) --compile-bytecode requirements.txt
	@touch $@

$(STAMP)/airflow-db: $(STAMP)/venv
	@echo "Migrating the Airflow metadata DB in $(AIRFLOW_HOME)/ ..."
	@./airflow.sh db migrate > $(STAMP)/db-migrate.log 2>&1 || { tail -20 $(STAMP)/db-migrate.log; exit 1; }
	@touch $@

demo: setup
	@$(SANDBOX) up > /dev/null
	@echo "Releasing $(VERSION) to $(ENVIRONMENT) through Airflow (log: $(STAMP)/demo-$(VERSION).log) ..."
	@PYTHONPATH=plugins $(PY) -m varai_deploy.release_cli --version '$(VERSION)' --environment '$(ENVIRONMENT)' \
		--log $(STAMP)/demo-$(VERSION).log
	@$(SANDBOX) status

test: setup
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check --quiet .
	@$(VENV)/bin/pytest

lint: $(STAMP)/venv
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .

airflow: setup
	@echo "Airflow UI on http://127.0.0.1:8080 - user admin, password generated on first start into"
	@echo "  $(AIRFLOW_HOME)/simple_auth_manager_passwords.json.generated   Ctrl-C stops it."
	@./airflow.sh standalone

sandbox-up: $(STAMP)/venv $(NODE_TOOLS)
	@$(SANDBOX) up
sandbox-down: $(STAMP)/venv
	@$(SANDBOX) down
sandbox-status: $(STAMP)/venv
	@$(SANDBOX) status

bench: setup
	@PYTHONPATH=plugins:. $(PY) benchmarks/release_wall.py
	@PYTHONPATH=plugins:. $(PY) benchmarks/rollback_latency.py
	@PYTHONPATH=plugins:. $(PY) benchmarks/widget_publish.py

lock:
	$(UV) pip compile requirements.in -o requirements.txt --python-version 3.11 --no-header

clean:
	-@$(SANDBOX) down --purge 2>/dev/null
	rm -rf $(STAMP) $(AIRFLOW_HOME)
