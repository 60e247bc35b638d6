#!/usr/bin/env bash
# Runs a command against a real Accord server: starts `accord serve` on a
# fresh SQLite database in a temporary directory, on a free port, with a fresh
# bootstrap key; runs the command with
#
#   ACCORD_ADDRESS        the server's host:port (plaintext gRPC)
#   ACCORD_BOOTSTRAP_KEY  its bootstrap key
#
# in the environment; then stops the server with SIGTERM and requires it to
# exit 0 within 30 seconds. Exits with the command's status if it failed,
# printing the server's log. Builds nothing.
#
#   bash clients/with_server.sh COMMAND [ARGS...]
#
#   ACCORD_BIN   the server binary (default: <repo>/target/release/accord,
#                else <repo>/target/debug/accord)
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
stop_timeout=30

say() { printf 'with_server: %s\n' "$*"; }

if [ "$#" -eq 0 ]; then
  echo "usage: bash clients/with_server.sh COMMAND [ARGS...]" >&2
  exit 2
fi
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

workdir="$(mktemp -d "${TMPDIR:-/tmp}/accord-server.XXXXXX")"
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
    echo "with_server: ---- server log ($log) ----" >&2
    cat "$log" >&2
    echo "with_server: ---- end of server log ----" >&2
  fi
  rm -rf "$workdir"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port="$(python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()')"
ACCORD_ADDRESS="127.0.0.1:$port"
ACCORD_BOOTSTRAP_KEY="acc_check_$(python3 -c 'import secrets; print(secrets.token_hex(24))')"
export ACCORD_ADDRESS ACCORD_BOOTSTRAP_KEY

# A clean configuration: only the listen address, the admin server on a free
# port (its fixed default may be taken on a shared machine) and a SQLite file
# in workdir, whatever ACCORD_* the caller's environment holds.
say "starting $bin serve on $ACCORD_ADDRESS in $workdir"
(
  cd "$workdir"
  exec env -u ACCORD_CONFIG \
    ACCORD_LISTEN="$ACCORD_ADDRESS" ACCORD_ADMIN_LISTEN="127.0.0.1:0" \
    ACCORD_DATABASE_URL="sqlite:accord.db" \
    "$bin" serve
) >"$log" 2>&1 &
server_pid=$!

# Fail fast, with the log, if the server dies during start-up; the command
# does the real waiting (for health to say SERVING).
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

say "running: $*"
status=0
"$@" || status=$?
if [ "$status" != 0 ]; then
  say "FAIL: '$*' exited with status $status" >&2
  exit "$status"
fi

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
