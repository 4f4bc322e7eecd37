-- bench/casq.lua: casq requests for wrk (GET, parameters in the query).
--
--   wrk ... -s bench/casq.lua https://127.0.0.1:PORT -- KIND QUEUE THREADS [BASE [SPAN]]
--
-- KIND   what each request does                               a "win" is
-- ping   /v1/ping (no storage: the ceiling)                   {"pong":true
-- enqueue /v1/queues/QUEUE/enqueue?key=k<n>                    {"enqueued":true
-- claim  /v1/queues/QUEUE/claim?key=k<n> (keys loaded before)  {"claimed":true
-- pop    /v1/queues/QUEUE/pop (whatever is next)               {"claimed":true
-- mix    claim k<n>, then enqueue k<n+SPAN>, alternately:      either
--        the queue's depth stays where the loader left it
--
-- Thread t's i-th key is n = BASE + t + THREADS*i: threads never collide
-- and no key comes twice in a run (math.random would repeat itself: every
-- thread starts from the same seed). THREADS must equal wrk's -t.
-- done() prints "wins: W of R" and the first non-2xx answer, if any.

local threads = {}
local next_id = 0

function setup(thread)
   thread:set("tid", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

local kind, queue, nthreads, base, span
local i = 0
wins = 0
bad = nil

local win_prefix = {
   ping = '{"pong":true', enqueue = '{"enqueued":true',
   claim = '{"claimed":true', pop = '{"claimed":true',
}

function init(args)
   kind, queue = args[1], args[2]
   nthreads = tonumber(args[3])
   base = tonumber(args[4] or "0")
   span = tonumber(args[5] or "0")
   if not (kind and queue and nthreads) then
      error("usage: -- KIND QUEUE THREADS [BASE [SPAN]]")
   end
end

local function key(j)
   return string.format("k%d", base + tid + nthreads * j)
end

function request()
   local path
   if kind == "ping" then
      path = "/v1/ping"
   elseif kind == "enqueue" or kind == "claim" then
      path = "/v1/queues/" .. queue .. "/" .. kind .. "?key=" .. key(i)
   elseif kind == "pop" then
      path = "/v1/queues/" .. queue .. "/pop"
   elseif kind == "mix" then
      local j = math.floor(i / 2)
      if i % 2 == 0 then
         path = "/v1/queues/" .. queue .. "/claim?key=" .. key(j)
      else
         path = "/v1/queues/" .. queue .. "/enqueue?key=" .. key(j + span / nthreads)
      end
   else
      error("unknown KIND " .. kind)
   end
   i = i + 1
   return wrk.format("GET", path)
end

local function starts(s, prefix)
   return s:sub(1, #prefix) == prefix
end

function response(status, headers, body)
   if status < 200 or status > 299 then
      bad = bad or (status .. " " .. body:sub(1, 200))
      return
   end
   if kind == "mix" then
      if starts(body, '{"claimed":true') or starts(body, '{"enqueued":true') then
         wins = wins + 1
      end
   elseif starts(body, win_prefix[kind]) then
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
