-- What reserve.lua would decide for the same candidates, leaving nothing behind: the decision explainer's dry
-- run. It runs reserve's own checks (in_audiences, has_room) and counts what it would serve, so a counter shared
-- by several candidates sees the ones before it, exactly as in a reservation; every count is undone before the
-- script ends (a key it made is deleted), and nothing is appended. Nobody sees the state in between.
--
-- ARGV: limit, total, then per candidate reserve's checks (n, (key index, limit, ttl) x n, a, (index, token) x a)
-- followed by its kind as reserve.lua takes it ('impression', 'ghost', 'refused' or 'unasked').
-- Returns { served, blocked, skipped } candidate numbers (1-based), as reserve.lua.
local limit = tonumber(ARGV[1])
local total = tonumber(ARGV[2])
local pos = 3
local served, blocked, skipped, shown = {}, {}, {}, 0
local counted = {}  -- key -> how many this script added
local now_ms = clock_ms()
for candidate = 1, total do
  if shown >= limit then
    break
  end
  local n = tonumber(ARGV[pos])
  local first = pos + 1
  local a = tonumber(ARGV[first + 3 * n])
  local gate = first + 3 * n + 1
  local kind = ARGV[gate + 2 * a]
  pos = gate + 2 * a + 1
  if kind == 'unasked' then -- as reserve.lua
  elseif a > 0 and not in_audiences(KEYS, ARGV, gate, a, now_ms / 1000) then
    skipped[#skipped + 1] = candidate
  elseif kind ~= 'refused' and has_room(KEYS, ARGV, first, n, now_ms) then
    for i = 0, n - 1 do
      local key = KEYS[tonumber(ARGV[first + 3 * i])]
      if counted[key] == nil then
        counted[key] = { 0, redis.call('EXISTS', key) == 1 }
      end
      counted[key][1] = counted[key][1] + 1
    end
    count(KEYS, ARGV, first, n)
    served[#served + 1] = candidate
    if kind ~= 'ghost' then
      shown = shown + 1
    end
  else
    blocked[#blocked + 1] = candidate
  end
end
for key, added in pairs(counted) do
  if added[2] then
    redis.call('DECRBY', key, added[1])
  else
    redis.call('DEL', key)
  end
end
return { served, blocked, skipped }
