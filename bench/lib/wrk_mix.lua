-- wrk_mix.lua - a wrk script for bench/run's soak (bench/lib/wrk.py,
-- wrk_mix_start): each connection asks the paths given after `--` in turn,
-- waiting the milliseconds of a first argument "delay=MS" after each
-- answer (a steady load, not a closed loop that takes every core), and
-- every answer is counted by its status. A non-2xx answer is also
-- counted under the epoch second it arrived in (so bench/run can tell the
-- ones around a reload from the others) and the first body of each such
-- status is kept (it says why). done() prints one line per figure:
--   MIX code STATUS COUNT
--   MIX bad EPOCH_SECOND COUNT
--   MIX body STATUS TEXT        (newlines and tabs as spaces, 200 bytes at most)

local paths, turn, pause = {}, 0, 0
local threads = {}

-- globals: done() reads them from each thread through thread:get()
codes, bad, bodies = {}, {}, {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  for _, a in ipairs(args) do
    local ms = string.match(a, "^delay=(%d+)$")
    if ms then pause = tonumber(ms) else table.insert(paths, a) end
  end
  if #paths == 0 then paths[1] = "/" end
  -- threads start at different places in the list
  turn = math.random(#paths) - 1
end

function request()
  turn = turn % #paths + 1
  return wrk.format("GET", paths[turn])
end

function delay()
  return pause
end

function response(status, headers, body)
  local k = tostring(status)
  codes[k] = (codes[k] or 0) + 1
  if status < 200 or status > 299 then
    local t = tostring(os.time())
    bad[t] = (bad[t] or 0) + 1
    if not bodies[k] then bodies[k] = string.sub(body or "", 1, 200) end
  end
end

function done(summary, latency, requests)
  local c, b, first = {}, {}, {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("codes")) do c[k] = (c[k] or 0) + v end
    for k, v in pairs(t:get("bad")) do b[k] = (b[k] or 0) + v end
    for k, v in pairs(t:get("bodies")) do first[k] = first[k] or v end
  end
  for k, v in pairs(c) do io.write("MIX code ", k, " ", v, "\n") end
  for k, v in pairs(b) do io.write("MIX bad ", k, " ", v, "\n") end
  for k, v in pairs(first) do
    io.write("MIX body ", k, " ", (string.gsub(v, "[\r\n\t]", " ")), "\n")
  end
end
