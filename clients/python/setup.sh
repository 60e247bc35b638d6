#!/usr/bin/env bash
# Sets up the Python client: a virtualenv with the pinned requirements and the
# accord.v1 stubs generated from proto/ into clients/python/gen (not committed).
# Idempotent: safe to run again; it reuses the venv and regenerates the stubs.
#
#   ACCORD_VENV  where the virtualenv lives (default: <repo>/.venv)
#   PYTHON       the interpreter that creates it (default: python3)
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
here="$repo/clients/python"
venv="${ACCORD_VENV:-$repo/.venv}"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
  echo "setup.sh: creating virtualenv $venv"
  "$python" -m venv "$venv"
fi

# pip is quick when everything is already installed, so always run it: the
# venv then follows requirements.txt whenever the pins change.
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"

# Generate into a scratch directory, then swap it in, so a failed run never
# leaves a half-written gen/ and removed protos never leave stale modules.
cd "$repo"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$venv/bin/python" -m grpc_tools.protoc -I proto \
  --python_out="$tmp" --grpc_python_out="$tmp" proto/accord/v1/*.proto
# Make `accord` and `accord.v1` regular packages (gen/ itself goes on sys.path).
find "$tmp" -mindepth 1 -type d -exec touch {}/__init__.py \;
chmod -R u+rwX,go+rX "$tmp"
rm -rf "$here/gen"
mv -T "$tmp" "$here/gen"
trap - EXIT
echo "setup.sh: stubs generated in $here/gen (venv: $venv)"
