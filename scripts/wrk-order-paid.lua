-- Load for `wrk`: one order.paid per request, unique order ids and Idempotency-Keys, spread over
-- the member ids listed one per line in $PATRON_WRK_IDS; the API key is read from $PATRON_WRK_KEY.
-- Set BARE=1 to hit `patron serve --bench-routes`' /bench/bare (same decoding, no database).
--   sqlite3 bench.db "select member_id from members order by random() limit 20000" > /tmp/ids.txt
--   PATRON_WRK_IDS=/tmp/ids.txt PATRON_WRK_KEY=ptk_… wrk -t1 -c32 -d10s --latency -s scripts/wrk-order-paid.lua http://127.0.0.1:8080
local ids = {}
for line in io.lines(os.getenv("PATRON_WRK_IDS")) do ids[#ids + 1] = line end
local key = os.getenv("PATRON_WRK_KEY")
math.randomseed(os.time())
local run = tostring(os.time()) .. "-" .. tostring(math.random(1, 1000000))
local counter = 0
request = function()
  counter = counter + 1
  local id = ids[(counter % #ids) + 1]
  local n = run .. "-" .. counter
  local body = '{"type":"order.paid","occurredAt":"' .. os.date("!%Y-%m-%dT%H:%M:%SZ") .. '","data":{"orderId":"wrk-' .. n ..
    '","lines":[{"sku":"A1","category":"apparel","amountMinor":' .. (1000 + counter % 50000) .. '}],"channel":"app"}}'
  local path = os.getenv("BARE") and "/bench/bare" or ("/v1/members/" .. id .. "/events")
  return wrk.format("POST", path, {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. key, ["Idempotency-Key"] = "wrk-" .. n}, body)
end
done = function(summary, latency, requests)
  io.write(string.format("errors (non-2xx, connect, read, write, timeout): %d\n",
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
