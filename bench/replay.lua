-- Scenario 3: the same POST /v1/payments with the same Idempotency-Key and body, again and again: every
-- answer must be the stored 201, replayed (Idempotent-Replayed: true), with no side effect.
-- Extra script arguments: the key, then the exact body the payment was created with.
local common = dofile((os.getenv("BENCH_LUA_DIR") or "bench") .. "/common.lua")

local key, body

function init(args)
  common.init(args)
  key, body = args[3], args[4]
end

function request()
  local h = common.headers(false)
  h["Idempotency-Key"] = key
  return wrk.format("POST", "/v1/payments", h, body)
end

function response(status, headers, resp_body)
  common.count(status)
  local flag = headers["idempotent-replayed"] or headers["Idempotent-Replayed"]
  if status == 201 and flag == "true" then
    replayed = replayed + 1
  else
    unexpected = unexpected + 1
  end
end
