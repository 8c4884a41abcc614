-- wrk script: one new order.paid per request, to members read from $IDS (one id per line).
-- Usage (see docs/performance.md):
--   scripts/bench/online.sh DATABASE.db     # starts `patron serve --durable`, runs wrk, prints req/s, p50, p99, KB written per request
local ids = {}
for line in io.lines(os.getenv("IDS")) do ids[#ids + 1] = line end
local counter = 0
local prefix = tostring(os.time()) .. "-" .. tostring(math.random(1, 1000000))
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("KEY")
-- With N set, each thread stops after N responses (scripts/bench/wal-pages.sh: one WAL generation).
local stopAfter = tonumber(os.getenv("N") or "")
local responses = 0
function response(status)
  responses = responses + 1
  if stopAfter and responses >= stopAfter then wrk.thread:stop() end
end
function request()
  counter = counter + 1
  local id = ids[(counter * 7919) % #ids + 1]
  local oid = prefix .. "-" .. counter
  wrk.headers["Idempotency-Key"] = "k-" .. oid
  local body = '{"type":"order.paid","occurredAt":"' .. os.date('!%Y-%m-%dT%H:%M:%SZ') .. '","data":{"orderId":"' .. oid ..
    '","lines":[{"sku":"A' .. (counter % 97) .. '","category":"apparel","quantity":1,"amountMinor":' .. (1000 + counter % 50000) ..
    ',"discountMinor":0}],"discountMinor":0,"channel":"app"}}'
  return wrk.format(nil, "/v1/members/" .. id .. "/events", nil, body)
end
