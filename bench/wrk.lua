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
--   post-form <body>             POST the form <body> (introspection: token=...), with the
--                                -H headers load.py passed (the client's Basic credentials)
--   refresh <n> <token 1..n>     POST /oauth/token, grant_type=refresh_token: each connection
--                                is a client that keeps its sign-in's refresh token, spends it
--                                and keeps the new one its answer brings (rotation: a spent one
--                                would end the sign-in). The n tokens are where the chains start:
--                                one per connection, fresh for each wrk run (bench/tokens.py).
-- GET /users/me needs only `get`, with the bearer token passed as a header by load.py.

local threads = {}

function setup(thread)
   thread:set("thread_id", #threads)
   table.insert(threads, thread)
end

-- A copy of the -H headers (wrk.format uses the table it is given instead of them) and more.
local function with_headers(extra)
   local headers = {}
   for name, value in pairs(wrk.headers) do headers[name] = value end
   for name, value in pairs(extra) do headers[name] = value end
   return headers
end

local FORM = {["Content-Type"] = "application/x-www-form-urlencoded"}
-- Refresh tokens not yet spent (mode refresh): a stack, one per connection between requests.
local refresh_tokens = {}

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
         -- Each sign-up from a client address of its own, through the trusted proxy
         -- bench/servers.py sets: people sign up from many addresses, not one.
         local address = "10." .. (thread_id % 256) .. "." .. (math.floor(counter / 256) % 256) ..
            "." .. (counter % 256)
         return wrk.format("POST", "/users/", {["Content-Type"] = "application/json",
            ["X-Forwarded-For"] = address}, body)
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
   elseif mode == "post-form" then
      local fixed = wrk.format("POST", nil, with_headers(FORM), args[2])
      make = function() return fixed end
   elseif mode == "refresh" then
      for i = 1, tonumber(args[2]) do
         table.insert(refresh_tokens, args[2 + i])
      end
      local headers = with_headers(FORM)
      -- Only the first thread's request() is called to check it.
      local checked = thread_id ~= 0
      make = function()
         local token
         if not checked then
            -- wrk calls request() once more than it sends, first, to check the request it
            -- makes (script_verify_request in wrk.c): that call must not spend a chain.
            checked = true
            token = refresh_tokens[#refresh_tokens]
         else
            -- None left (an answer without one broke a chain): a token that cannot be
            -- valid, counted as the error it gets.
            token = table.remove(refresh_tokens) or "chain-broken"
         end
         return wrk.format("POST", "/oauth/token", headers,
                           "grant_type=refresh_token&refresh_token=" .. token)
      end
      collect_refresh_tokens = true
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
   elseif collect_refresh_tokens then
      local token = string.match(body, '"refresh_token":"([^"]+)"')
      if token then table.insert(refresh_tokens, token) end
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
