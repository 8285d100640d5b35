-- Scenario 1: POST /v1/payments, automatic capture, a fresh Idempotency-Key and a fresh card per request.
local common = dofile((os.getenv("BENCH_LUA_DIR") or "bench") .. "/common.lua")

function init(args) common.init(args) end

function request()
  return wrk.format("POST", "/v1/payments", common.headers(true),
                    common.card_body(math.random(100, 9999), "automatic"))
end

function response(status, headers, body)
  common.count(status)
  if status ~= 201 then unexpected = unexpected + 1 end
end
