#!/usr/bin/env bash
# The project's Airflow CLI: its venv, its AIRFLOW_HOME (.airflow/), its dags/ and plugins/.
#   ./airflow.sh dags list
#   ./airflow.sh dags test ai_discovery_release -c '{"version": "v1.0.0"}'
# VARAI_AIRFLOW_HOME moves the metadata DB and logs (the tests use a scratch one).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

export AIRFLOW_HOME="${VARAI_AIRFLOW_HOME:-$ROOT/.airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="${AIRFLOW__CORE__DAGS_FOLDER:-$ROOT/dags}"
export AIRFLOW__CORE__PLUGINS_FOLDER="$ROOT/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
# Airflow's LocalExecutor minus the race that fails a deferred task on its resume (see
# plugins/varai_deploy/executor.py).
export AIRFLOW__CORE__EXECUTOR="${AIRFLOW__CORE__EXECUTOR:-varai_deploy.executor.LocalExecutor}"
export AIRFLOW__API__HOST="${AIRFLOW__API__HOST:-127.0.0.1}"
export AIRFLOW__API__PORT="${AIRFLOW__API__PORT:-8080}"
# Workers and the triggerer reach the API server here (the default assumes localhost:8080).
export AIRFLOW__API__BASE_URL="${AIRFLOW__API__BASE_URL:-http://127.0.0.1:$AIRFLOW__API__PORT}"
# New or changed DAG files show up within 30 s instead of 5 min.
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="${AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL:-30}"
# Sized for this machine, not Airflow's defaults: LocalExecutor forks [core] parallelism workers up
# front (32 by default; two per core here, at least 4: a release maps a task per service), and the
# scheduler looks again after 0.2 s rather than 1 s when a loop found nothing to do (a release is
# ~20 tasks one after another, each started by a loop).
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-$(( $(nproc) * 2 > 4 ? $(nproc) * 2 : 4 ))}"
export AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME="${AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME:-0.2}"
# `airflow standalone` starts its components as `airflow ...` from PATH.
export PATH="$ROOT/.venv/bin:$PATH"
# The library under plugins/ must import in every Airflow process: scheduler, workers, triggerer.
export PYTHONPATH="$ROOT/plugins${PYTHONPATH:+:$PYTHONPATH}"
# The sandbox's connections (gateway with its API key, CDN bucket, npm, SVN, Marketplace, Shopify, ...),
# which `sandbox up` writes with their generated secrets; a connection already set in the environment
# wins. Production defines them in its secrets backend instead.
sandbox_home="${VARAI_SANDBOX_HOME:-.sandbox}"
[[ "$sandbox_home" == /* ]] || sandbox_home="$ROOT/$sandbox_home"
if [[ -f "$sandbox_home/connections.env" ]]; then
  while IFS= read -r line; do
    [[ "$line" =~ ^export\ (AIRFLOW_CONN_[A-Z0-9_]+)= ]] || continue
    [[ -n "${!BASH_REMATCH[1]:-}" ]] && continue
    eval "$line"
  done < "$sandbox_home/connections.env"
fi
# Before the sandbox was ever up: its gateway and Prometheus from their ports (no key: a release's
# security check then says the gateway connection has none).
sandbox_gateway_port="${VARAI_SANDBOX_GATEWAY_PORT:-18080}"
if [[ -z "${AIRFLOW_CONN_VARAI_GATEWAY:-}" ]]; then
  export AIRFLOW_CONN_VARAI_GATEWAY="{\"conn_type\": \"http\", \"host\": \"127.0.0.1\", \"port\": $sandbox_gateway_port}"
fi
# ...and its Prometheus (gateway port + 10 unless VARAI_SANDBOX_PROMETHEUS_PORT says otherwise).
if [[ -z "${AIRFLOW_CONN_VARAI_METRICS:-}" ]]; then
  export AIRFLOW_CONN_VARAI_METRICS="{\"conn_type\": \"http\", \"host\": \"127.0.0.1\", \"port\": ${VARAI_SANDBOX_PROMETHEUS_PORT:-$((sandbox_gateway_port + 10))}}"
fi

if [[ ! -x "$ROOT/.venv/bin/airflow" ]]; then
  echo "airflow.sh: $ROOT/.venv is not set up; run 'make setup' first" >&2
  exit 1
fi
if [[ "${1:-}" == "local" ]]; then  # make airflow: every component, until Ctrl-C stops them all
  shift
  exec "$ROOT/.venv/bin/python" -m varai_deploy.local_airflow "$@"
fi
exec "$ROOT/.venv/bin/airflow" "$@"
