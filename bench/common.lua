-- Shared by the scenario scripts (loaded with dofile): thread bookkeeping, unique idempotency keys,
-- random Luhn-valid cards, per-status counts and a JSON summary that bench/run.py parses.
-- Script arguments (after `--` on wrk's command line): run token, secret key, [scenario argument].

local common = {}
local threads = {}

-- main state: number the threads so that their keys never collide
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

-- per-thread state (globals, read back with thread:get in done)
statuses = {}
unexpected = 0
replayed = 0
transactions = 0
local seq = 0
local token, secret

function common.init(args)
  token, secret = args[1], args[2]
  math.randomseed(os.time() * 1000 + (tid or 0) * 7919 + string.len(token))
  for _ = 1, 10 do math.random() end
end

-- headers as a fresh table per request: wrk.format writes Content-Length into it
function common.headers(with_key)
  local h = {["Host"] = wrk.host, ["Authorization"] = "Bearer " .. secret, ["Content-Type"] = "application/json"}
  if with_key then
    seq = seq + 1
    h["Idempotency-Key"] = token .. "-" .. tostring(tid) .. "-" .. tostring(seq)
  end
  return h
end

-- the bank's special test cards (declines, fixed balances): never generated
local special = {
  ["4111111111111111"] = true, ["4242424242424242"] = true, ["5555555555554444"] = true,
  ["5105105105105100"] = true, ["4000000000000002"] = true, ["4000000000009995"] = true,
  ["4000000000000127"] = true, ["4000000000000119"] = true,
}

-- a random Luhn-valid Visa number: each is a fresh account at the bank (balance 10,000.00)
function common.card()
  while true do
    local d = {4}
    for i = 2, 15 do d[i] = math.random(0, 9) end
    local sum = 0
    for i = 15, 1, -1 do
      local v = d[i]
      if (15 - i) % 2 == 0 then
        v = v * 2
        if v > 9 then v = v - 9 end
      end
      sum = sum + v
    end
    d[16] = (10 - sum % 10) % 10
    local number = table.concat(d)
    if not special[number] then return number end
  end
end

function common.card_body(amount, capture_method)
  return string.format('{"amount":%d,"currency":"USD","capture_method":"%s","payment_method":{"type":"card",'
    .. '"card":{"number":"%s","exp_month":12,"exp_year":2030,"cvc":"123"}}}', amount, capture_method, common.card())
end

function common.count(status)
  statuses[status] = (statuses[status] or 0) + 1
end

local function encode(v)
  if type(v) == "table" then
    local parts = {}
    for k, x in pairs(v) do parts[#parts + 1] = string.format('"%s":%s', tostring(k), encode(x)) end
    return "{" .. table.concat(parts, ",") .. "}"
  elseif type(v) == "string" then
    return '"' .. v .. '"'
  end
  return string.format("%.17g", v)
end

function done(summary, latency, requests)
  local merged, extra = {}, {unexpected = 0, replayed = 0, transactions = 0}
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("statuses") or {}) do
      merged[tostring(status)] = (merged[tostring(status)] or 0) + n
    end
    for name, _ in pairs(extra) do extra[name] = extra[name] + (t:get(name) or 0) end
  end
  local e = summary.errors
  local out = {
    generator = "wrk", duration_s = summary.duration / 1e6, requests = summary.requests, statuses = merged,
    socket_errors = {connect = e.connect, read = e.read, write = e.write, timeout = e.timeout},
    latency_us = {p50 = latency:percentile(50), p90 = latency:percentile(90), p99 = latency:percentile(99),
                  max = latency.max, mean = latency.mean},
    extra = extra,
  }
  io.write("BENCH_RESULT " .. encode(out) .. "\n")
end

return common
