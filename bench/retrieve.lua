-- Scenario 4: GET /v1/payments/{id} for ids picked at random from a file (one id a line) of payments
-- that scenario 1 created. Extra script argument: the file's path.
local common = dofile((os.getenv("BENCH_LUA_DIR") or "bench") .. "/common.lua")

local ids = {}

function init(args)
  common.init(args)
  for line in io.lines(args[3]) do
    if #line > 0 then ids[#ids + 1] = line end
  end
end

function request()
  return wrk.format("GET", "/v1/payments/" .. ids[math.random(1, #ids)], common.headers(false), nil)
end

function response(status, headers, body)
  common.count(status)
  if status ~= 200 then unexpected = unexpected + 1 end
end
