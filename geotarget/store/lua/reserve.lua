-- Serve, atomically, up to ARGV[1] ranked candidates whose every cap counter has room, and count them.
--
-- KEYS    every counter key any candidate uses (each once)
-- ARGV[1] how many candidates may be served at most
-- ARGV[2] how many candidates follow
-- then, per candidate in rank order: n, followed by n triples (index into KEYS, limit, ttl seconds; 0 = none)
--
-- Returns { served candidate numbers (1-based), blocked candidate numbers }. A candidate with n = 0 is
-- uncapped and always served while there is room. Counters shared by several candidates (a global or a
-- merchant cap) see the increments of the candidates served before them in the same call.
local limit = tonumber(ARGV[1])
local total = tonumber(ARGV[2])
local pos = 3
local served, blocked = {}, {}
for candidate = 1, total do
  if #served >= limit then
    break
  end
  local n = tonumber(ARGV[pos])
  local first = pos + 1
  pos = first + 3 * n
  local room = true
  for i = 0, n - 1 do
    local key = KEYS[tonumber(ARGV[first + 3 * i])]
    local cap = tonumber(ARGV[first + 3 * i + 1])
    local used = tonumber(redis.call('GET', key) or '0')
    if used >= cap then
      room = false
      break
    end
  end
  if room then
    for i = 0, n - 1 do
      local key = KEYS[tonumber(ARGV[first + 3 * i])]
      local ttl = tonumber(ARGV[first + 3 * i + 2])
      if redis.call('INCR', key) == 1 and ttl > 0 then
        redis.call('EXPIRE', key, ttl)
      end
    end
    served[#served + 1] = candidate
  else
    blocked[#blocked + 1] = candidate
  end
end
return { served, blocked }
