#!/usr/bin/env bash
# Sets up the Python client: a virtualenv with the pinned requirements, and the
# accord-client package of this directory installed into it, which generates
# the accord.v1 stubs from proto/ as it builds (accord_client.v1; nothing
# generated is written to the source tree). Idempotent: run it again after a
# change to proto/ to regenerate.
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

# The venv already holds the build requirements (setuptools, grpcio-tools at
# the pinned versions), so build in it: no isolated build environment to
# download. --force-reinstall: the version does not change when proto/ does.
# The build leaves build/ and *.egg-info behind; remove them so that the next
# build starts clean.
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  --no-build-isolation --no-deps --force-reinstall "$here"
rm -rf "$here/build" "$here/src/accord_client.egg-info"
"$venv/bin/python" -c 'import accord_client.v1.tenant_pb2_grpc'
echo "setup.sh: accord-client installed with stubs generated from $repo/proto (venv: $venv)"
