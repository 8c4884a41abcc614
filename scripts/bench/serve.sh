# Sourced by the online bench scripts: `serve_bench DB PORT` starts `patron serve --durable` on a
# database made by `patron bench`, and sets IDS (a file of 20,000 member ids, for
# wrk-order-paid.lua), KEY (a new API key) and server (the server's pid, stopped on exit).
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
patron=${PATRON:-.build/release/patron}
serve_bench() {
  local db=$1 port=$2
  export IDS=$(mktemp)
  sqlite3 "$db" "SELECT member_id FROM members WHERE program_id = 'demo' ORDER BY member_id LIMIT 20000" > "$IDS"
  export KEY=$($patron keys create --database "$db" --program demo 2>&1 | grep -o "ptk_[A-Za-z0-9_]*" | head -1)
  $patron serve --database "$db" --durable --port "$port" --jobs-interval 0 > /dev/null 2>&1 &
  server=$!
  trap 'kill $server 2>/dev/null || true; rm -f "$IDS"; eval "${cleanup:-true}"' EXIT
}
