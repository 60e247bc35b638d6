#!/usr/bin/env bash
# CI check of the Python client against a real server: sets up the venv and
# stubs (setup.sh), starts `accord serve` on a fresh SQLite database in a
# temporary directory on a free port, runs check_server.py (reflection and
# health) and tour.py (the README tour), then stops the server with SIGTERM
# and requires it to exit 0 within 30 seconds. Builds nothing.
#
#   ACCORD_BIN   the server binary (default: <repo>/target/release/accord,
#                else <repo>/target/debug/accord)
#   ACCORD_VENV  the virtualenv, passed on to setup.sh (default: <repo>/.venv)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${ACCORD_VENV:-$repo/.venv}"
stop_timeout=30

say() { printf 'run_check: %s\n' "$*"; }

if [ -n "${ACCORD_BIN:-}" ]; then
  bin="$ACCORD_BIN"
elif [ -x "$repo/target/release/accord" ]; then
  bin="$repo/target/release/accord"
else
  bin="$repo/target/debug/accord"
fi
if [ ! -x "$bin" ]; then
  say "FAIL: no accord binary at $bin (build it with cargo build, or set ACCORD_BIN)" >&2
  exit 1
fi

bash "$here/setup.sh"
python="$venv/bin/python"

workdir="$(mktemp -d "${TMPDIR:-/tmp}/accord-check.XXXXXX")"
log="$workdir/server.log"
server_pid=""
ok=0

cleanup() {
  local status=$?
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ "$ok" != 1 ] && [ -f "$log" ]; then
    echo "run_check: ---- server log ($log) ----" >&2
    cat "$log" >&2
    echo "run_check: ---- end of server log ----" >&2
  fi
  rm -rf "$workdir"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port="$("$python" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()')"
address="127.0.0.1:$port"
# A fresh bootstrap key for this server; the tour creates the tenant with it.
ACCORD_BOOTSTRAP_KEY="acc_check_$("$python" -c 'import secrets; print(secrets.token_hex(24))')"
export ACCORD_BOOTSTRAP_KEY

# A clean configuration: only the listen address, the admin server on a free
# port (its fixed default may be taken on a shared machine) and a SQLite file
# in workdir, whatever ACCORD_* the caller's environment holds.
say "starting $bin serve on $address in $workdir"
(
  cd "$workdir"
  exec env -u ACCORD_CONFIG \
    ACCORD_LISTEN="$address" ACCORD_ADMIN_LISTEN="127.0.0.1:0" \
    ACCORD_DATABASE_URL="sqlite:accord.db" \
    "$bin" serve
) >"$log" 2>&1 &
server_pid=$!

# Fail fast, with the log, if the server dies during start-up (check_server.py
# then does the real waiting: for health to say SERVING).
for _ in $(seq $((stop_timeout * 10))); do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    server_status=0
    wait "$server_pid" || server_status=$?
    server_pid=""
    say "FAIL: the server exited with status $server_status during start-up" >&2
    exit 1
  fi
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done

say "check_server.py $address"
"$python" "$here/check_server.py" "$address"

say "tour.py $address"
"$python" "$here/tour.py" "$address"

say "stopping the server (SIGTERM, pid $server_pid)"
kill -TERM "$server_pid"
for _ in $(seq $((stop_timeout * 10))); do
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$server_pid" 2>/dev/null; then
  say "FAIL: the server did not exit within ${stop_timeout}s of SIGTERM" >&2
  exit 1
fi
server_status=0
wait "$server_pid" || server_status=$?
server_pid=""
if [ "$server_status" != 0 ]; then
  say "FAIL: the server exited with status $server_status after SIGTERM (expected 0)" >&2
  exit 1
fi

say "the server exited with status 0"

ok=1
say "OK"
