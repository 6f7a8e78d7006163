#!/usr/bin/env bash
# PromQL conformance, as CI runs it:
#   1. parser, printer, engine tests and the promqltest-format scripts;
#   2. every script expectation replayed on a real Prometheus 2.42 (Debian package `prometheus`),
#      so the scripts are known to encode Prometheus's semantics;
#   3. Starling's answers compared with Prometheus's on a generated data set, over HTTP: a
#      throw-away node of the debug build, or the node at STARLING_URL (STARLING_ADMIN_TOKEN for
#      its token). scripts/test runs stages 2 and 3 after the whole test suite.
# Exits non-zero on the first failing stage.
set -euo pipefail
cd "$(dirname "$0")/.."

swift build --build-tests
swift test --skip-build --filter StarlingPromQLTests
python3 scripts/promql-compare.py --check-scripts --skip-build
if [[ -n "${STARLING_URL:-}" ]]; then
    python3 scripts/promql-compare.py --starling-url "$STARLING_URL"
else
    python3 scripts/promql-compare.py --starling-binary .build/debug/starling
fi
