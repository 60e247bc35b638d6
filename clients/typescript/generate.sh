#!/usr/bin/env bash
# Generates and builds the TypeScript client: installs its packages from
# package-lock.json (npm ci) when node_modules is missing or older than the
# lock file, regenerates src/gen from proto/ (buf generate with protoc-gen-es,
# buf.gen.yaml) and compiles src/ to dist/ (tsc, type-checking the generated
# code and e2e.ts). Idempotent: run it again after a change to proto/.
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "generate.sh: npm ci"
  npm ci --no-audit --no-fund
fi
node_modules/.bin/buf generate
rm -rf dist
node_modules/.bin/tsc -p .
echo "generate.sh: src/gen generated from ../../proto and compiled to dist/"
