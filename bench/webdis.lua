-- bench/webdis.lua: the Redis peer for wrk, through nginx -> webdis.
--
--   wrk ... -s bench/webdis.lua https://127.0.0.1:PORT -- COMMAND SET THREADS [BASE]
--
-- COMMAND is SADD (the peer of enqueue) or SREM (the peer of claim by key:
-- SREM answers {"SREM":1} to exactly one caller per member). Requests are
-- GET /webdis/COMMAND/SET/m<n>, n = BASE + thread + THREADS*i as in
-- bench/casq.lua; SREM needs members m<n> added beforehand. A "win" is an
-- answer of 1. done() prints "wins: W of R" and the first non-2xx answer.

local threads = {}
local next_id = 0

function setup(thread)
   thread:set("tid", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

local command, set, nthreads, base
local i = 0
local win
wins = 0
bad = nil

function init(args)
   command, set = args[1], args[2]
   nthreads = tonumber(args[3])
   base = tonumber(args[4] or "0")
   if not (command and set and nthreads) then
      error("usage: -- COMMAND SET THREADS [BASE]")
   end
   win = '{"' .. command .. '":1}'
end

function request()
   local n = base + tid + nthreads * i
   i = i + 1
   return wrk.format("GET", string.format("/webdis/%s/%s/m%d", command, set, n))
end

function response(status, headers, body)
   if status < 200 or status > 299 then
      bad = bad or (status .. " " .. body:sub(1, 200))
   elseif body:sub(1, #win) == win then
      wins = wins + 1
   end
end

function done(summary, latency, requests)
   local w, sample = 0, nil
   for _, t in ipairs(threads) do
      w = w + t:get("wins")
      sample = sample or t:get("bad")
   end
   io.write(string.format("wins: %d of %d\n", w, summary.requests))
   if sample then
      io.write("first non-2xx: " .. sample .. "\n")
   end
end
