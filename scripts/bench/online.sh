#!/bin/bash
# Online order.paid against a database made by `patron bench` (its folder keeps bench.db), with
# wrk (apt-get install wrk) instead of the bench's own client: req/s, p50, p99, and the bytes the
# server wrote per request (/proc/PID/io). Usage: scripts/bench/online.sh /tmp/patron-bench/bench.db [seconds]
# The run writes to the database: to repeat it on the same data, run it on a copy, and remove the
# copy's old -wal and -shm first (`rm -f copy.db*; cp bench.db copy.db`, after `sqlite3 bench.db
# 'PRAGMA wal_checkpoint(TRUNCATE)'`): a stale -wal beside a new copy is read as part of it and
# the copy is then corrupt (every request fails; the errors count below says so).
set -euo pipefail
db=$1; seconds=${2:-12}
. "$(dirname "$0")/serve.sh"
serve_bench "$db" 18112
sleep 3
# Warm up first: right after start the server reads its segment facts, and that long read holds
# checkpoints back for a few seconds.
wrk -t1 -c32 -d8s -s "$here/wrk-order-paid.lua" http://127.0.0.1:18112 > /dev/null
before=$(awk '/^wchar/ {print $2}' /proc/$server/io)
out=$(wrk -t1 -c32 -d${seconds}s -s "$here/wrk-order-paid.lua" --latency http://127.0.0.1:18112)
after=$(awk '/^wchar/ {print $2}' /proc/$server/io)
n=$(echo "$out" | awk '/requests in/ {print $1}')
errors=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
echo "$(echo "$out" | grep Requests/sec) errors ${errors:-0} p50 $(echo "$out" | awk '$1 == "50%" {print $2}') p99 $(echo "$out" | awk '$1 == "99%" {print $2}') KB written per request $(( (after - before) / n / 1024 ))"
