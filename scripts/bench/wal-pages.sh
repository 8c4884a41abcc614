#!/bin/bash
# Which b-trees N online order.paid requests dirty (WAL frames and distinct pages per request),
# on a copy of a database made by `patron bench`. Usage:
#   PATRON=.build/release/patron scripts/bench/wal-pages.sh /tmp/patron-bench/bench.db [N=120]
# N stays under ~150 so that the WAL does not start over during the run (4,096 frames).
set -euo pipefail
src=$1; export N=${2:-120}
. "$(dirname "$0")/serve.sh"
work=$(mktemp -d); cleanup='rm -rf "$work"'
cp "$src" "$work/a.db"
serve_bench "$work/a.db" 18113
sleep 20 # the server's start-up reads end first
wrk -t1 -c32 -d30s -s "$here/wrk-order-paid.lua" http://127.0.0.1:18113 | grep -E "requests in|Non-2xx" || true
sleep 1
cp "$work/a.db-wal" "$work/wal" # closing the last connection checkpoints and deletes the WAL
kill $server; wait $server 2>/dev/null || true
python3 "$here/wal-pages.py" "$work/a.db" "$work/wal" "$N"
