#!/bin/bash
# The README's benchmark table in one run (`make bench`): each benchmark's output goes to
# $BENCH_OUT/<name>.log (default bench-results/), one summary line each here. Needs PostgreSQL
# at $BENCH_PG_ADMIN (a throwaway database bench_all is created and dropped). About 7 minutes on
# an idle 2-core machine; run it with nothing else running.
set -u
cd "$(dirname "$0")/.."
OUT=${BENCH_OUT:-bench-results}
HOST=${BENCH_PG_HOST:-127.0.0.1}
PG=postgresql+psycopg://postgres@$HOST:5432/bench_all
PY=.venv/bin/python
mkdir -p "$OUT"
dropdb -h "$HOST" -U postgres --if-exists bench_all && createdb -h "$HOST" -U postgres bench_all || exit 1
run() {
  local name=$1; shift
  local load; load=$(cut -d' ' -f1-3 /proc/loadavg)
  "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  echo "$(date -u +%H:%M:%S) $name: exit $rc (load before: $load)"
}
run webhook_sqlite $PY bench/bench_webhook.py --database sqlite --duration 8 --rounds 2 --red-seconds 10 --breakdown 200
run webhook_pg $PY bench/bench_webhook.py --database postgresql --database-url "$PG" --duration 8 --rounds 2 --red-seconds 10 --breakdown 200
INBOUND_ASYNC_COMMIT=true run webhook_pg_async $PY bench/bench_webhook.py --database postgresql --database-url "$PG" --duration 8 --rounds 2 --red-seconds 0 --breakdown 0
run dispatch_pg $PY bench/bench_dispatch.py -n 5000 --database-url "$PG"
run dispatch_sqlite $PY bench/bench_dispatch.py -n 5000
run replan_sqlite $PY bench/bench_replan.py --patients 20
run replan_pg $PY bench/bench_replan.py --patients 20 --database-url "$PG"
run pages_sqlite $PY bench/bench_pages.py --patients 150 --repeat 20
dropdb -h "$HOST" -U postgres --if-exists bench_all
grep -h "ratio webhook\|red end to end\|BELOW TARGET\|OK (target\|target < 5 min\|^target:" "$OUT"/*.log
