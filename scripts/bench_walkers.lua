-- wrk script for scripts/bench_nearby.py: devices walking around random shops, asking for offers ({MODE} "walk"),
-- or teleporting ("teleport": a random device of {DEVICES} at a random point within 300 m of a random shop, every
-- request). The placeholders in braces are filled in by the benchmark before wrk reads this file.
local centres = {CENTRES}
local devices = {DEVICES}
local pos = {}
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args)
  served, degraded, responses, failures = 0, 0, 0, 0
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end
request = function()
  if "{PATH}" ~= "/v1/nearby" then return wrk.format("GET", "{PATH}") end
  local i = math.random(devices)
  local p = pos[i]
  if "{MODE}" == "teleport" then
    local c = centres[math.random(#centres)]
    p = {c[1] + (math.random() - 0.5) * 600 / {M}, c[2] + (math.random() - 0.5) * 600 / {K}}
  else
    if p == nil then local c = centres[math.random(#centres)]; p = {c[1], c[2]}; pos[i] = p end
    p[1] = p[1] + (math.random() - 0.5) * 20 / {M}
    p[2] = p[2] + (math.random() - 0.5) * 20 / {K}
  end
  local path = string.format("/v1/nearby?lat=%.7f&lon=%.7f&device_id=walker-%d&accuracy_m=15", p[1], p[2], i)
  return wrk.format("GET", path, {["Authorization"] = "Bearer {KEY}"})
end
response = function(status, headers, body)
  responses = responses + 1
  if status ~= 200 then failures = failures + 1 end
  for _ in string.gmatch(body, '"offer_id"') do served = served + 1 end
  if string.find(body, "caps unavailable", 1, true) then degraded = degraded + 1 end
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
