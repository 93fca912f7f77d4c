#!/usr/bin/env bash
# The whole suite: lint, types, import layering, then pytest against real PostgreSQL, Redis
# and SQLite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-services.sh
ruff check src tests benchmarks
ruff format --check src tests benchmarks
mypy
# The layers and the no-private-imports rule of docs/architecture.md ([tool.importlinter]).
lint-imports --no-cache
# The benchmarks run once each here (no timing) so they cannot rot; `scripts/bench.sh` times them.
# Two processes (pytest-xdist; a test file stays on one): every test makes its own databases and
# Redis keys, and the suite is half waiting on servers and subprocesses. VOXELDB_TEST_WORKERS=0
# runs it in this process.
pytest tests benchmarks --benchmark-disable -n "${VOXELDB_TEST_WORKERS:-2}" --dist loadfile "$@"
