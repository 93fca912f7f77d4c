#!/usr/bin/env bash
# Every benchmark, timed, each beside its baselines; prints pytest-benchmark's tables and the
# ratio summaries (codec against lz4.block, store against raw SELECT / COPY).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-services.sh
pytest benchmarks --benchmark-only --benchmark-columns=median,ops,rounds -q -s -p no:cacheprovider "$@"
