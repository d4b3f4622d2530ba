-- The counters every device shares (offers' daily budgets and goals), reserved in their own call when devices
-- live in several shards (geotarget/store/keys.py): a shard's call cannot reach the deployment's slot on a
-- cluster. They are reserved *first*, so a budget is never spent twice, whatever the device's call then decides;
-- what the device's call refuses is given back (geotarget/store/redis_caps.py). Needs reserve.lua's functions.
--
-- reserve_shared(KEYS, ARGV): in rank order, count the shared counters of each candidate that has them and room
-- on them, until as many candidates as the answer may show could be shown (a candidate with no shared counter
-- counts toward that too: the device's call decides it). A candidate without room is refused.
-- KEYS    the shared counters (each once)
-- ARGV[1] how many candidates may be shown, ARGV[2] how many follow, ARGV[3] '1' to count, '0' to only decide
--         (the decision explainer), then per candidate: n, n triples (index into KEYS, limit, ttl s), 'impression'
--         or 'ghost' (a ghost is counted but does not use up the limit)
-- Returns { taken (counted) candidate numbers, refused ones, how many candidates were considered }: those after
-- the last considered were not asked about.
local function reserve_shared(KEYS, ARGV)
  local limit, total, counting = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3] == '1'
  local pos, shown, considered = 4, 0, 0
  local taken, refused = {}, {}
  local now_ms = clock_ms()
  for candidate = 1, total do
    if shown >= limit then
      break
    end
    considered = candidate
    local n = tonumber(ARGV[pos])
    local first = pos + 1
    local kind = ARGV[first + 3 * n]
    pos = first + 3 * n + 1
    if n == 0 or has_room(KEYS, ARGV, first, n, now_ms) then
      if n > 0 then
        if counting then
          count(KEYS, ARGV, first, n)
        end
        taken[#taken + 1] = candidate
      end
      if kind ~= 'ghost' then
        shown = shown + 1
      end
    else
      refused[#refused + 1] = candidate
    end
  end
  return { taken, refused, considered }
end

-- hold_shared(KEYS, ARGV): for a bid (hold.lua), the first candidate in rank order that has no shared counter
-- or room on all of its holds a slot on each until the hold ends, in a record of its own (settle.lua settles it
-- as it does the device's); those before it without room are refused.
-- KEYS    the shared counters (each once), then the candidates' shared bid records
-- ARGV[1] how many candidates follow, ARGV[2] how long the hold lasts (ms), ARGV[3] how long a record is kept
--         (s), then per candidate: n, n triples (index into KEYS, limit, ttl s), the index into KEYS of its
--         record, its bid id
-- Returns { held candidate numbers (at most 1: none when the one reached has no shared counter), refused ones,
-- how many candidates were considered }.
local function hold_shared(KEYS, ARGV)
  local total, hold_ms, keep_s = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
  local now_ms = clock_ms()
  local pos, held, refused, considered = 4, {}, {}, 0
  for candidate = 1, total do
    considered = candidate
    local n = tonumber(ARGV[pos])
    local first = pos + 1
    local record, bid_id = KEYS[tonumber(ARGV[first + 3 * n])], ARGV[first + 3 * n + 1]
    pos = first + 3 * n + 2
    if n == 0 then
      break
    elseif has_room(KEYS, ARGV, first, n, now_ms) then
      local until_ms, lines = now_ms + hold_ms, {}
      for i = 0, n - 1 do
        local key = KEYS[tonumber(ARGV[first + 3 * i])]
        hold_slot(key, bid_id, now_ms, until_ms, hold_ms)
        lines[#lines + 1] = key .. ' ' .. ARGV[first + 3 * i + 2]
      end
      redis.call('HSET', record, 'k', table.concat(lines, '\n'), 'u', until_ms)
      redis.call('EXPIRE', record, keep_s)
      held[1] = candidate
      break
    else
      refused[#refused + 1] = candidate
    end
  end
  return { held, refused, considered }
end
