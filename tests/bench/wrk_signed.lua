-- wrk script: cycles through pre-signed requests (one "signature<TAB>body" per line); each
-- wrk thread takes its own slice, so no request is sent twice unless the file runs out
-- (reported as "wrapped"). Optional open-loop fixed rate per thread, scheduled with the
-- monotonic clock through LuaJIT's FFI (wrk has no rate option; hey cannot vary bodies).
-- Arguments: FILE THREADS RATE_PER_THREAD(0 = as fast as possible) PATH SIGNATURE_HEADER
-- [CONTENT_TYPE] (form-urlencoded unless given: Messenger and Telegram post JSON)
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local counter = 0
local threads = {}

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local file, nthreads = args[1], tonumber(args[2])
  rate, target, header = tonumber(args[3]), args[4], args[5]
  content_type = args[6] or "application/x-www-form-urlencoded"
  items = {}
  local i = 0
  for line in io.lines(file) do
    if i % nthreads == id then
      local tab = line:find("\t", 1, true)
      items[#items + 1] = {line:sub(1, tab - 1), line:sub(tab + 1)}
    end
    i = i + 1
  end
  size, n, next_at = #items, 0, nil
end

function request()
  n = n + 1
  local item = items[((n - 1) % size) + 1]
  local headers = {["Content-Type"] = content_type}
  if header ~= "" then headers[header] = item[1] end
  return wrk.format("POST", target, headers, item[2])
end

local function now_ms()
  local t = ffi.new("bench_timespec")
  ffi.C.clock_gettime(1, t)
  return tonumber(t.tv_sec) * 1000 + tonumber(t.tv_nsec) / 1e6
end

function delay()
  if rate == 0 then return 0 end
  local now = now_ms()
  if next_at == nil then next_at = now end
  local slot = next_at
  next_at = next_at + 1000 / rate
  if slot <= now then return 0 end
  return slot - now
end

function done(summary, latency, requests)
  local wrapped = 0
  for _, thread in ipairs(threads) do
    local over = thread:get("n") - thread:get("size")
    if over > wrapped then wrapped = over end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "status_errors": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "wrapped": %d}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, wrapped))
end
