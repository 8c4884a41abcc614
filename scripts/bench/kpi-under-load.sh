#!/bin/bash
# Online order.paid under wrk (32 connections, 20 s) while the server's first KPI request (split
# by tier) is served, 5 s in: req/s, p99 and max latency of the writes, and the KPI request's
# time. On a copy of a database made by `patron bench`. Usage:
#   PATRON=.build/release/patron scripts/bench/kpi-under-load.sh /tmp/patron-bench/bench.db
set -euo pipefail
src=$1
. "$(dirname "$0")/serve.sh"
work=$(mktemp -d); cleanup='rm -rf "$work"'
cp "$src" "$work/a.db"
serve_bench "$work/a.db" 18114
sleep 4
wrk -t1 -c32 -d8s -s "$here/wrk-order-paid.lua" http://127.0.0.1:18114 > /dev/null
wrk -t1 -c32 -d20s --latency -s "$here/wrk-order-paid.lua" http://127.0.0.1:18114 > "$work/wrk.out" &
load=$!
sleep 5
curl -s -o /dev/null -w "first KPI request: HTTP %{http_code} in %{time_total} s\n" -H "Authorization: Bearer $KEY" \
  "http://127.0.0.1:18114/v1/reports/kpis?from=$(date -u +%Y-%m-01)&until=$(date -u -d "$(date -u +%Y-%m-01) +1 month" +%Y-%m-%d)&split=tier"
wait $load
grep -E "Requests/sec|Latency  |99%|Non-2xx" "$work/wrk.out"
