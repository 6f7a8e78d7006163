#!/usr/bin/env bash
# PromQL conformance, as CI runs it:
#   1. parser, printer, engine tests and the promqltest-format scripts;
#   2. every script expectation replayed on a real Prometheus 2.42 (Debian package `prometheus`),
#      so the scripts are known to encode Prometheus's semantics;
#   3. Starling's answers compared with Prometheus's on a generated data set — in-process, or
#      over HTTP against a node when STARLING_URL is set (STARLING_ADMIN_TOKEN for its token).
# Exits non-zero on the first failing stage.
set -euo pipefail
cd "$(dirname "$0")/.."

swift build --build-tests
swift test --skip-build --filter StarlingPromQLTests
python3 scripts/promql-compare.py --check-scripts
if [[ -n "${STARLING_URL:-}" ]]; then
    python3 scripts/promql-compare.py --starling-url "$STARLING_URL"
else
    python3 scripts/promql-compare.py --engine
fi
