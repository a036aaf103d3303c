#!/usr/bin/env bash
# THE test command: `bash scripts/test-all.sh` (CI runs it through .ci/run).
#   1. Debian packages the suite needs (scripts/install-deps.sh; quick when present)
#   2. npm ci, only when node_modules is missing or package-lock.json changed
#   3. type check (tsc --noEmit)
#   4. the test suite (scripts/run-tests.mjs: Node's test runner over test/**/*.test.ts,
#      against SQLite and PostgreSQL); extra arguments are passed on to it (test files)
# Exits non-zero on the first failing step.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }
started=$SECONDS

step "system packages"
bash scripts/install-deps.sh

step "node modules"
# npm ci wipes and reinstalls node_modules: only when it is missing or older
# than package-lock.json (the stamp records the lock's content and the Node
# version it was installed for; npm's own hidden lockfile stands in for it in a
# tree that was installed by hand).
stamp=node_modules/.nucleon-lock.sha256
want=$( { cat package-lock.json; node --version; } | sha256sum | cut -d' ' -f1)
if [ -d node_modules ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "node_modules up to date with package-lock.json"
elif [ -d node_modules ] && [ ! -f "$stamp" ] && [ node_modules/.package-lock.json -nt package-lock.json ]; then
  echo "node_modules installed after the last package-lock.json change"
  echo "$want" >"$stamp"
else
  npm ci --no-audit --no-fund
  echo "$want" >"$stamp"
fi

step "type check"
npx --no-install tsc --noEmit -p .
echo "tsc: no errors"

step "tests"
node scripts/run-tests.mjs "$@"

echo
echo "test-all: everything passed in $((SECONDS - started)) s"
