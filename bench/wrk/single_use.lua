-- Sends each request of a prepared file once: for single-use things such as authorization
-- codes (with their PKCE verifiers) or sign-in forms (each with its own session cookie and
-- CSRF token). Environment:
--   REQUESTS  file, one request a line: method, path, Cookie header, form body (tab-separated)
--   THREADS   wrk's -t (each thread takes every THREADS-th line, so none is sent twice)
--   AUTH      optional Basic credentials (base64) for every request
--   EXPECT    optional first digit of the expected status ("2", "3"): others are counted
--             (for "2", by wrk itself: see below)
--   DELAY_MS  optional pause before each request on a connection (to pace a flood)
-- When the file runs out, the last line is sent again (so the server answers with an error)
-- and counted: done() prints "exhausted N unexpected M" for bench/compare.
local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local lines = {}
local next_line = 1
exhausted = 0
unexpected = 0
local expect = os.getenv("EXPECT")
local delay_ms = tonumber(os.getenv("DELAY_MS") or "")

function init(args)
  local nthreads = tonumber(os.getenv("THREADS") or "1")
  local i = 0
  for line in io.lines(os.getenv("REQUESTS")) do
    if i % nthreads == tid then
      local method, path, cookie, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
      local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
      if cookie ~= "" then headers["Cookie"] = cookie end
      local auth = os.getenv("AUTH")
      if auth and auth ~= "" then headers["Authorization"] = "Basic " .. auth end
      table.insert(lines, wrk.format(method, path, headers, body))
    end
    i = i + 1
  end
end

function request()
  if next_line > #lines then
    exhausted = exhausted + 1
    return lines[#lines]
  end
  next_line = next_line + 1
  return lines[next_line - 1]
end

if delay_ms then
  function delay()
    return delay_ms
  end
end

-- A response() callback costs wrk about 8 µs per request (it builds a table of the headers),
-- on the cores the server under test shares (docs/performance.md, fifteenth session). A token request expecting 2xx gets none: wrk
-- counts every status of 400 or more itself ("Non-2xx or 3xx responses"), and a token
-- endpoint never redirects.
if expect and expect ~= "2" then
  function response(status, headers, body)
    if tostring(status):sub(1, 1) ~= expect then
      unexpected = unexpected + 1
    end
  end
end

function done(summary, latency, requests)
  local total_exhausted, total_unexpected = 0, 0
  for _, thread in ipairs(threads) do
    total_exhausted = total_exhausted + (thread:get("exhausted") or 0)
    total_unexpected = total_unexpected + (thread:get("unexpected") or 0)
  end
  io.write(string.format("exhausted %d unexpected %d\n", total_exhausted, total_unexpected))
end
