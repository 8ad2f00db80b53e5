-- Loaded by every wrk run of the benchmark (bench/load.py). It counts non-2xx answers (wrk itself
-- counts only statuses >= 400) and the requests sent but never answered before the end (a server
-- that stalls answers nothing, and wrk alone would report no error), and prints one summary line
-- of JSON that load.py parses.
-- Arguments after `--`: a mode and its parameters, then a tag unique to the run.
--   get                          the URL as given
--   by-id <max id>               GET /users/{random id in 1..max}
--   post-users <run prefix>      POST /users/ with a body no other request of the run sends
--   post-token <max id>          POST /auth/token, the form of user{random id in 1..max}, whom
--                                the harness loaded with the password of bench/hashing.py
-- GET /users/me needs only `get`, with the bearer token passed as a header by load.py.

local threads = {}

function setup(thread)
   thread:set("thread_id", #threads)
   table.insert(threads, thread)
end

function init(args)
   non_2xx = 0
   sent = 0
   answered = 0
   local mode = args[1] or "get"
   local make
   if mode == "get" then
      local fixed = wrk.format()
      make = function() return fixed end
   elseif mode == "by-id" then
      local max_id = tonumber(args[2])
      math.randomseed(12345 + thread_id)
      make = function()
         return wrk.format("GET", "/users/" .. math.random(1, max_id))
      end
   elseif mode == "post-users" then
      local prefix = "b" .. args[2] .. thread_id .. "x"
      local counter = 0
      make = function()
         counter = counter + 1
         local name = prefix .. counter
         local body = '{"username":"' .. name .. '","email":"' .. name ..
            '@example.com","password":"correct horse battery staple"}'
         return wrk.format("POST", "/users/", {["Content-Type"] = "application/json"}, body)
      end
   elseif mode == "post-token" then
      local max_id = tonumber(args[2])
      math.randomseed(54321 + thread_id)
      local headers = {["Content-Type"] = "application/x-www-form-urlencoded"}
      make = function()
         local body = "username=user" .. math.random(1, max_id) ..
            "&password=correct+horse+battery+staple"
         return wrk.format("POST", "/auth/token", headers, body)
      end
   else
      error("unknown mode " .. mode)
   end
   request = function()
      sent = sent + 1
      return make()
   end
end

function response(status, headers, body)
   answered = answered + 1
   if status < 200 or status > 299 then
      non_2xx = non_2xx + 1
   end
end

function done(summary, latency, requests)
   local non_2xx_total, unanswered = 0, 0
   for _, thread in ipairs(threads) do
      non_2xx_total = non_2xx_total + thread:get("non_2xx")
      unanswered = unanswered + thread:get("sent") - thread:get("answered")
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"non_2xx":%d,"unanswered":%d,' ..
      '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"timeouts":%d,' ..
      '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
      summary.requests, summary.duration, summary.bytes, non_2xx_total, unanswered,
      e.connect, e.read, e.write, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, latency.mean))
end
