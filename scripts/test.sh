#!/usr/bin/env bash
# The README's test command (`npm test`): installs what the tests use, builds, runs every test.
# Namespace tests need root (they create and remove their own network namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
[ -d node_modules ] || npm ci
npm run build --silent
node scripts/run-tests.js "$@"
