-- Scenario 2: authorize (manual capture) -> capture -> partial refund, chained with the response() hook.
-- wrk does not tell which connection a response belongs to, so the chain runs through per-thread
-- queues: a response queues its payment's next step, and the next request any connection of the thread
-- sends takes the oldest step waiting (or starts a new authorization). A step is sent only after the
-- previous one's answer arrived, so every transaction is a real sequence of three requests.
local common = dofile((os.getenv("BENCH_LUA_DIR") or "bench") .. "/common.lua")

local function queue() return {first = 1, last = 0, items = {}} end
local function push(q, v) q.last = q.last + 1; q.items[q.last] = v end
local function pop(q)
  if q.first > q.last then return nil end
  local v = q.items[q.first]
  q.items[q.first] = nil
  q.first = q.first + 1
  return v
end

local to_capture, to_refund = queue(), queue()

function init(args) common.init(args) end

function request()
  local pid = pop(to_refund)
  if pid then
    return wrk.format("POST", "/v1/refunds", common.headers(true),
                      string.format('{"payment_id":"%s","amount":300}', pid))
  end
  pid = pop(to_capture)
  if pid then
    return wrk.format("POST", "/v1/payments/" .. pid .. "/capture", common.headers(true), "{}")
  end
  return wrk.format("POST", "/v1/payments", common.headers(true), common.card_body(1000, "manual"))
end

function response(status, headers, body)
  common.count(status)
  if status >= 300 then
    unexpected = unexpected + 1
    return
  end
  if string.find(body, '"object":"refund"', 1, true) then
    transactions = transactions + 1
    return
  end
  local pid = string.match(body, '"id":"(pay_[^"]+)"')
  if pid == nil then
    unexpected = unexpected + 1
  elseif status == 201 and string.find(body, '"status":"authorized"', 1, true) then
    push(to_capture, pid)
  elseif status == 200 and string.find(body, '"status":"captured"', 1, true) then
    push(to_refund, pid)
  else
    unexpected = unexpected + 1
  end
end
