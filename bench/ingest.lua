-- wrk script for bench/ingest.py: POST /api/v1/responses with a unique body per request.
--
-- Usage: wrk -s bench/ingest.lua http://127.0.0.1:PORT -- NONCE [MIX]
--   NONCE: 8 hex digits, unique per run, so ids never collide with an earlier run's.
--   MIX: "typical" (default) draws ratings as public counters see them, 5 % of them at levels 1-2
--        (each of which opens a complaint action by the default complaint_levels); "uniform" draws
--        1..5 evenly, so 40 % open an action: the worst case for the writer.
-- Every request gets a new UUID (NONCE - thread - counter), a random overall rating 1..5 and
-- alternates between the touchpoints tp-a and tp-a1. Status codes are tallied per thread and
-- printed by done() as one machine-readable line:
--   STATUS sent=N created=N other2xx=N failed=N
-- sent counts requests written, including those still in flight when wrk stopped.

local threads = {}
local next_thread = 0

function setup(thread)
   thread:set("thread_no", next_thread)
   next_thread = next_thread + 1
   table.insert(threads, thread)
end

local headers = {["Content-Type"] = "application/json"}
local touchpoints = {"tp-a", "tp-a1"}
local nonce = 0
local counter = 0

function init(args)
   nonce = tonumber(args[1] or "0", 16) or 0
   uniform = args[2] == "uniform"
   math.randomseed(nonce + thread_no * 7919)
   sent, created, other2xx, failed = 0, 0, 0, 0
end

-- Cumulative shares of levels 1..5 in the typical mix: 2 %, 3 %, 5 %, 20 %, 70 %.
local typical = {0.02, 0.05, 0.10, 0.30, 1.0}

function rating()
   if uniform then
      return math.random(1, 5)
   end
   local draw = math.random()
   for level = 1, 5 do
      if draw < typical[level] then
         return level
      end
   end
   return 5
end

function request()
   counter = counter + 1
   sent = counter
   local id = string.format("%08x-%04x-4000-8000-%012x", nonce, thread_no, counter)
   local body = string.format('{"id":"%s","touchpoint":"%s","answers":{"overall":%d}}',
                              id, touchpoints[counter % 2 + 1], rating())
   return wrk.format("POST", "/api/v1/responses", headers, body)
end

function response(status, _, _)
   if status == 201 then
      created = created + 1
   elseif status >= 200 and status < 300 then
      other2xx = other2xx + 1
   else
      failed = failed + 1
   end
end

function done(_, _, _)
   local totals = {sent = 0, created = 0, other2xx = 0, failed = 0}
   for _, thread in ipairs(threads) do
      for name in pairs(totals) do
         totals[name] = totals[name] + (thread:get(name) or 0)
      end
   end
   io.write(string.format("STATUS sent=%d created=%d other2xx=%d failed=%d\n",
                          totals.sent, totals.created, totals.other2xx, totals.failed))
end
