#!/usr/bin/env bash
# The end-to-end checks of the generated clients against a real server. For
# each client named (default: all three), in turn: generate and build it,
# then run its e2e program against a fresh server (with_server.sh): health,
# a create of each resource up to a published agreement, a resolve, a report
# with an accepted and a rejected item, and an error with its details.
#
#   bash clients/run_e2e.sh [python] [typescript] [go]
#
#   ACCORD_BIN   the server binary (see with_server.sh)
#   ACCORD_VENV  the Python client's virtualenv (default: <repo>/.venv)
#
# Needs: python3 (python), Node.js 20 and npm (typescript), and Debian's Go
# toolchain and plugins (go; clients/go/generate.sh names the packages).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
venv="${ACCORD_VENV:-$repo/.venv}"
# The e2e programs do not test the drain on SIGTERM (run_check.sh does):
# let each server stop at once.
export ACCORD_DRAIN_DELAY_SECONDS="${ACCORD_DRAIN_DELAY_SECONDS:-0}"

say() { printf 'run_e2e: %s\n' "$*"; }

clients=("$@")
[ "${#clients[@]}" -gt 0 ] || clients=(python typescript go)
for client in "${clients[@]}"; do
  case "$client" in
    python)
      bash "$here/python/setup.sh"
      say "python: mypy (strict) on e2e.py and accord_client"
      "$venv/bin/mypy" --config-file "$here/python/pyproject.toml" \
        "$here/python/e2e.py" "$here/python/src/accord_client"
      # shellcheck disable=SC2016 # expanded by the inner shell
      bash "$here/with_server.sh" bash -c '"$0" "$1" "$ACCORD_ADDRESS"' \
        "$venv/bin/python" "$here/python/e2e.py"
      ;;
    typescript)
      bash "$here/typescript/generate.sh"
      # shellcheck disable=SC2016
      bash "$here/with_server.sh" bash -c 'node "$0" "$ACCORD_ADDRESS"' \
        "$here/typescript/dist/e2e.js"
      ;;
    go)
      bash "$here/go/generate.sh"
      # shellcheck disable=SC2016
      bash "$here/with_server.sh" bash -c '"$0" "$ACCORD_ADDRESS"' "$here/go/gen/bin/e2e"
      ;;
    *)
      echo "run_e2e: unknown client '$client' (python, typescript or go)" >&2
      exit 2
      ;;
  esac
  say "$client: OK"
done
