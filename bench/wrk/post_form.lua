-- POST a form body with optional Basic auth; set BODY and AUTH in the environment.
wrk.method = "POST"
wrk.body = os.getenv("BODY") or ""
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
local auth = os.getenv("AUTH")
if auth and auth ~= "" then
  wrk.headers["Authorization"] = "Basic " .. auth
end
