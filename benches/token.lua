-- wrk script for the token endpoint: client_credentials with client_secret_basic.
--   CLIENT_ID=… CLIENT_SECRET=… wrk -t2 -c64 -d10s -s benches/token.lua http://127.0.0.1:8080
-- Set CLOSE=1 to send `Connection: close` (no keep-alive).
local id = os.getenv("CLIENT_ID") or error("set CLIENT_ID")
local secret = os.getenv("CLIENT_SECRET") or error("set CLIENT_SECRET")
local scope = os.getenv("SCOPE") or "read"

local function b64(data)
  local chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  return ((data:gsub(".", function(x)
    local r, b = "", x:byte()
    for i = 8, 1, -1 do r = r .. (b % 2 ^ i - b % 2 ^ (i - 1) > 0 and "1" or "0") end
    return r
  end) .. "0000"):gsub("%d%d%d?%d?%d?%d?", function(x)
    if #x < 6 then return "" end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == "1" and 2 ^ (6 - i) or 0) end
    return chars:sub(c + 1, c + 1)
  end) .. ({ "", "==", "=" })[#data % 3 + 1])
end

wrk.method = "POST"
wrk.path = "/token"
wrk.body = "grant_type=client_credentials&scope=" .. scope
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. b64(id .. ":" .. secret)
if os.getenv("CLOSE") == "1" then
  wrk.headers["Connection"] = "close"
end

local failures = 0
function response(status, headers, body)
  if status ~= 200 then failures = failures + 1 end
end

function done(summary, latency, requests)
  io.write(string.format("non-200 responses: %d\n", summary.errors.status))
end
