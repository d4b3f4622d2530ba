#!/usr/bin/env bash
# The whole check, from a fresh clone: makes .venv if needed, installs, then lint, types, architecture, tests.
# --fast first: the tests that need no browser, no PostgreSQL, no Redis Cluster and no multi-second server run.
set -euo pipefail
if [ "${1:-}" = "--fast" ]; then
  shift
  set -- -m "not slow and not postgres" "$@"
fi
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'
# The Spark tests need Java 17: Debian's package where it is missing and we may install it (else they skip or fail).
if ! command -v java >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  apt-get install -y -q openjdk-17-jre-headless >/dev/null || echo "could not install Java 17" >&2
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/lint-imports
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$status"
