#!/usr/bin/env bash
# The README's five-minute tour, run as written against a fresh server and
# checked: what CI runs so that the tour stays true. `accord serve` starts in
# an empty temporary directory with nothing configured (it generates its
# bootstrap key there); every `accord` command runs in that directory, as the
# README's second terminal does.
#
#   bash examples/saas/tour.sh        (ACCORD_BIN: the binary, default target/debug/accord)
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${ACCORD_BIN:-$repo/target/debug/accord}"
dir="$(mktemp -d "${TMPDIR:-/tmp}/accord-tour.XXXXXX")"
server=""
finish() {
  status=$?
  [ -n "$server" ] && kill -INT "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
  if [ "$status" -ne 0 ]; then
    echo "tour: FAILED; the server's log:" >&2
    cat "$dir/serve.log" >&2 || true
  fi
  rm -rf "$dir"
}
trap finish EXIT
cd "$dir"

fail() { echo "tour: $*" >&2; exit 1; }
expect() { # expect TEXT PATTERN WHAT
  grep -qE -- "$2" <<<"$1" || fail "expected $3 (/$2/) in:
$1"
}
accord() { "$bin" "$@"; }

# A free port rather than 50051, so that CI never collides with a server a
# developer left running; the commands are pointed at it with ACCORD_SERVER.
ACCORD_LISTEN=127.0.0.1:0 ACCORD_ADMIN_LISTEN=off "$bin" serve >serve.log 2>&1 &
server=$!
for _ in $(seq 300); do
  grep -q "listening for gRPC" serve.log && break
  kill -0 "$server" 2>/dev/null || fail "the server ended"
  sleep 0.1
done
address="$(sed -n 's/.*listening for gRPC address=\([^ ]*\).*/\1/p' serve.log)"
[ -n "$address" ] || fail "the server never listened"
export ACCORD_SERVER="http://$address"
expect "$(cat serve.log)" "generated a bootstrap key" "the first-start key"
[ "$(stat -c %a accord.db.bootstrap-key)" = 600 ] || fail "the key file is not owner-only"

echo "== tenants create, keys create (with the generated bootstrap key)"
accord tenants create cloudline --display-name "Cloudline Inc."
accord keys create admin --tenant cloudline --role tenant-admin >cloudline.key
export ACCORD_TENANT=cloudline ACCORD_API_KEY_FILE=cloudline.key

echo "== apply -f examples/saas, twice"
out="$(accord apply -f "$repo/examples/saas")"
expect "$out" "applied: 22 created, 0 updated, 6 published, 0 unchanged" "everything created"
out="$(accord apply -f "$repo/examples/saas")"
expect "$out" "^no changes: 22 unchanged$" "a second apply to change nothing"

echo "== resolve and explain"
out="$(accord resolve globex-finance checkout --explain)"
expect "$out" "ancestry, nearest first: globex-finance, globex" "the department's ancestry"
expect "$out" "availability +RATIO +0.9995 .*target by override globex-enterprise" \
  "Globex's target inherited by its department"

echo "== report a month of measurements"
python3 "$repo/examples/saas/month.py" >month.csv
lines=$(($(wc -l <month.csv) - 1))
out="$(accord report month.csv)"
expect "$out" "reported $lines measurements: $lines accepted, 0 duplicates, 0 rejected" \
  "every measurement accepted"
out="$(accord report month.csv)"
expect "$out" "reported $lines measurements: 0 accepted, $lines duplicates, 0 rejected" \
  "a second report to count nothing twice"

echo "== compliance, credits, breaches"
last_month="$(date -u -d "$(date -u +%Y-%m-01) -1 day" +%Y-%m-15T00:00:00Z)"
out="$(accord compliance checkout-sla)"
expect "$out" "availability +checkout +http_success +0.999 .* MET " "the base availability met"
out="$(accord compliance --consumer globex-finance --service checkout)"
expect "$out" "availability +checkout +globex-finance .* BELOW_TARGET " \
  "Globex's stricter target missed on the same data"
out="$(accord compliance checkout-sla --period-containing "$last_month")"
expect "$out" "uptime .* BREACHED .*\(closed\) +10% 500.00 EUR" "last month's outage breached"
out="$(accord credits --consumer globex-finance --period "$last_month")"
expect "$out" "total: [0-9]+\.[0-9]{2} EUR" "a credit statement"
for _ in $(seq 100); do
  out="$(accord breaches --agreement checkout-sla --service-wide)"
  grep -q uptime <<<"$out" && break
  sleep 0.2
done
expect "$out" "checkout-sla +uptime +checkout .* OPEN" "the period closer's breach"
echo "tour: OK"
