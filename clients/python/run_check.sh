#!/usr/bin/env bash
# CI check of the Python client against a real server: sets up the venv and
# the accord-client package (setup.sh), then, against a fresh server
# (../with_server.sh: a fresh SQLite database, a free port, stopped with
# SIGTERM and required to exit 0), runs check_server.py (reflection and
# health) and tour.py (the README tour). Builds nothing.
#
#   ACCORD_BIN   the server binary (default: <repo>/target/release/accord,
#                else <repo>/target/debug/accord)
#   ACCORD_VENV  the virtualenv, passed on to setup.sh (default: <repo>/.venv)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${ACCORD_VENV:-$repo/.venv}"

bash "$here/setup.sh"
python="$venv/bin/python"

# shellcheck disable=SC2016 # expanded by the inner shell, which has them
bash "$repo/clients/with_server.sh" bash -c \
  '"$0" "$1/check_server.py" "$ACCORD_ADDRESS" && "$0" "$1/tour.py" "$ACCORD_ADDRESS"' \
  "$python" "$here"
echo "run_check: OK"
