-- Replays the requests of a plan file with wrk: `scripts/bench` (the
-- `stack bench` command, crates/stack/src/bench) writes the plan and runs
--   wrk -t1 -cC -dDs -s bench/wrk/replay.lua http://127.0.0.1:PORT
--
-- Environment:
--   BENCH_PLAN       the plan: one request per line, METHOD \t PATH \t
--                    HEADERS \t BODY, HEADERS being "name: value" pairs
--                    joined by \31 (ASCII unit separator). With several
--                    lines each is sent once, in order; a line sent again
--                    after the last is counted in "repeats".
--   BENCH_TAG        digits that make {{n}} and {{hex}} unique across runs.
--   BENCH_IDS        a file of values for {{id}}, one a line, each used
--                    once: the run stops when they are used up, and its
--                    rate is over the time it ran ("stopped_after_us").
--   BENCH_COLLECT    a Lua pattern: its first capture in each response body
--   BENCH_COLLECTED  is written to this file, one a line, after the run.
--   BENCH_SUMMARY    where the run's figures are written, as JSON.
--
-- Placeholders, in the path, header values or body of a line:
--   {{n}}   a value unique to the request: <tag>-<count>
--   {{hex}} 64 hex digits unique to the request (a SHA-256's shape)
--   {{ip}}  an IPv4 address unique to the request (10.x.y.z)
--   {{id}}  the next value of BENCH_IDS
--
-- A plan of one line without placeholders is sent as wrk's static request,
-- so nothing runs in Lua per request.

local function split(s, sep)
  local out, from = {}, 1
  while true do
    local at = string.find(s, sep, from, true)
    if not at then
      out[#out + 1] = string.sub(s, from)
      return out
    end
    out[#out + 1] = string.sub(s, from, at - 1)
    from = at + #sep
  end
end

local function parse(line)
  local fields = split(line, "\t")
  assert(#fields == 4, "a plan line has 4 tab-separated fields, not " .. #fields)
  local headers = {}
  if fields[3] ~= "" then
    for _, header in ipairs(split(fields[3], "\31")) do
      local colon = assert(string.find(header, ":", 1, true), "header without a colon: " .. header)
      headers[string.sub(header, 1, colon - 1)] = (string.gsub(string.sub(header, colon + 1), "^%s+", ""))
    end
  end
  local body = fields[4]
  if body == "" then
    body = nil
  end
  return { method = fields[1], path = fields[2], headers = headers, body = body, dynamic = string.find(line, "{{", 1, true) ~= nil }
end

local plan = {}
local plan_file = assert(os.getenv("BENCH_PLAN"), "BENCH_PLAN is not set")
for line in io.lines(plan_file) do
  if line ~= "" then
    plan[#plan + 1] = parse(line)
  end
end
assert(#plan > 0, "the plan is empty")

local ids = {}
local ids_file = os.getenv("BENCH_IDS")
if ids_file and ids_file ~= "" then
  for line in io.lines(ids_file) do
    if line ~= "" then
      ids[#ids + 1] = line
    end
  end
end

local tag = os.getenv("BENCH_TAG") or "0"
assert(string.match(tag, "^%d+$"), "BENCH_TAG must be digits")

local function zero_padded(digits, width)
  return string.rep("0", width - #digits) .. digits
end
local collect = os.getenv("BENCH_COLLECT")
if collect == "" then
  collect = nil
end

-- Globals: read back from each thread by done().
repeats = 0
collected = {}
first_sent_us, last_answer_us, stopped = 0, 0, false

local sent, used_ids = 0, 0

-- wrk reports the run's full length even when a thread stops early, so a
-- run that stops times itself, with the monotonic clock.
local now_us
if #ids > 0 then
  local ffi = require("ffi")
  ffi.cdef([[
    typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
    int clock_gettime(int clock_id, bench_timespec *tp);
  ]])
  local ts = ffi.new("bench_timespec")
  local CLOCK_MONOTONIC = 1
  now_us = function()
    ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
    return tonumber(ts.tv_sec) * 1e6 + tonumber(ts.tv_nsec) / 1e3
  end
end

local function next_id()
  assert(#ids > 0, "{{id}} needs BENCH_IDS")
  used_ids = used_ids + 1
  if used_ids >= #ids and not stopped then
    -- The last value: stop after it (requests still in flight are lost,
    -- and so are not counted).
    stopped = true
    wrk.thread:stop()
  end
  if used_ids > #ids then
    repeats = repeats + 1
  end
  return ids[(used_ids - 1) % #ids + 1]
end

local function fill(template, values)
  return (string.gsub(template, "{{(%w+)}}", function(name)
    local value = values[name]
    if value == nil then
      if name == "n" then
        value = tag .. "-" .. sent
      elseif name == "hex" then
        value = zero_padded(tag, 32) .. zero_padded(tostring(sent), 32)
      elseif name == "ip" then
        value = string.format("10.%d.%d.%d", math.floor(sent / 65536) % 256, math.floor(sent / 256) % 256, sent % 256)
      elseif name == "id" then
        value = next_id()
      else
        error("unknown placeholder {{" .. name .. "}}")
      end
      values[name] = value
    end
    return value
  end))
end

if #plan == 1 and not plan[1].dynamic then
  wrk.method = plan[1].method
  wrk.path = plan[1].path
  for name, value in pairs(plan[1].headers) do
    wrk.headers[name] = value
  end
  wrk.body = plan[1].body
else
  request = function()
    if now_us and sent == 0 then
      first_sent_us = now_us()
    end
    sent = sent + 1
    if sent > #plan and #plan > 1 then
      repeats = repeats + 1
    end
    local line = plan[(sent - 1) % #plan + 1]
    if not line.dynamic then
      return wrk.format(line.method, line.path, line.headers, line.body)
    end
    local values = {}
    local headers = {}
    for name, value in pairs(line.headers) do
      headers[name] = fill(value, values)
    end
    local body = line.body and fill(line.body, values)
    return wrk.format(line.method, fill(line.path, values), headers, body)
  end
end

if collect or now_us then
  response = function(status, headers, body)
    if now_us then
      last_answer_us = now_us()
    end
    local value = collect and body and string.match(body, collect)
    if value then
      collected[#collected + 1] = value
    end
  end
end

local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
end

function done(summary, latency, requests)
  local total_repeats, values, stopped_after_us = 0, {}, 0
  for _, thread in ipairs(threads) do
    total_repeats = total_repeats + (thread:get("repeats") or 0)
    if thread:get("stopped") then
      stopped_after_us = math.max(stopped_after_us, thread:get("last_answer_us") - thread:get("first_sent_us"))
    end
    for _, value in ipairs(thread:get("collected") or {}) do
      values[#values + 1] = value
    end
  end
  local collected_file = os.getenv("BENCH_COLLECTED")
  if collected_file and collected_file ~= "" then
    local out = assert(io.open(collected_file, "w"))
    for _, value in ipairs(values) do
      out:write(value, "\n")
    end
    out:close()
  end
  local e = summary.errors
  local out = assert(io.open(assert(os.getenv("BENCH_SUMMARY"), "BENCH_SUMMARY is not set"), "w"))
  out:write(string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"latency_us":{"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"max":%d},'
      .. '"repeats":%d,"collected":%d,"stopped_after_us":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    total_repeats, #values, stopped_after_us
  ))
  out:close()
end
