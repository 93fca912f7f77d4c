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
pytest tests benchmarks --benchmark-disable "$@"
