-- wrk script for scripts/bench_openrtb.py: devices walking around random shops, seen by an exchange that sends
-- an OpenRTB 2.6 bid request (one 320x50 banner imp, a GPS fix) for each. Placeholders as bench_walkers.lua.
local centres = {CENTRES}
local devices = {DEVICES}
local pos = {}
local threads = {}
local auction = 0
function setup(thread) table.insert(threads, thread) end
function init(args)
  served, degraded, responses, failures = 0, 0, 0, 0
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end
request = function()
  local i = math.random(devices)
  local p = pos[i]
  if p == nil then local c = centres[math.random(#centres)]; p = {c[1], c[2]}; pos[i] = p end
  p[1] = p[1] + (math.random() - 0.5) * 20 / {M}
  p[2] = p[2] + (math.random() - 0.5) * 20 / {K}
  auction = auction + 1
  local body = string.format(
    '{"id":"a-%d","imp":[{"id":"1","banner":{"format":[{"w":320,"h":50}]},"bidfloor":0.5,"bidfloorcur":"USD"}],'
    .. '"app":{"bundle":"com.example.city"},"device":{"ifa":"walker-%d","os":"Android","lmt":0,'
    .. '"geo":{"lat":%.7f,"lon":%.7f,"type":1,"accuracy":15}},"regs":{"coppa":0,"gdpr":0},"at":1,"tmax":120}',
    auction, i, p[1], p[2])
  return wrk.format("POST", "/v1/openrtb2/bid",
    {["Authorization"] = "Bearer {KEY}", ["Content-Type"] = "application/json"}, body)
end
response = function(status, headers, body)
  responses = responses + 1
  if status ~= 200 and status ~= 204 then failures = failures + 1 end
  for _ in string.gmatch(body, '"impid"') do served = served + 1 end
  if string.find(body, '"nbr":1', 1, true) then degraded = degraded + 1 end
end
done = function(summary, latency, requests)
  local s, d, r, f = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    s = s + t:get("served"); d = d + t:get("degraded"); r = r + t:get("responses"); f = f + t:get("failures")
  end
  io.write(string.format("RESULT rps=%f p50=%f p99=%f served=%d degraded=%d responses=%d failures=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, s, d, r, f))
end
