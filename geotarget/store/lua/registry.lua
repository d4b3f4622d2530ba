-- remember(registry, key, ttl): note a device's key in its registry, the set of every key that holds something
-- of the device (geotarget/store/redis_devices.py: an erasure deletes what it lists, never scanning the
-- keyspace). The registry lives at least as long as the longest-lived key it names (ttl seconds; 0 = forever).
-- Names of keys gone meanwhile (a day's counter after its day) are pruned every PRUNE_EVERY new names, so a
-- registry kept for years by a lifetime cap holds the device's live keys and at most that many more.
local PRUNE_EVERY = 32

local function prune(registry)
  for _, name in ipairs(redis.call('SMEMBERS', registry)) do
    if redis.call('EXISTS', name, name .. ':pending') == 0 then -- a held counter exists by its held slots
      redis.call('SREM', registry, name)
    end
  end
end

local function remember(registry, key, ttl)
  local left = redis.call('TTL', registry) -- -2: no registry yet, -1: kept forever
  if redis.call('SADD', registry, key) == 1 and redis.call('SCARD', registry) % PRUNE_EVERY == 0 then
    prune(registry)
  end
  if ttl <= 0 then
    if left >= 0 then
      redis.call('PERSIST', registry)
    end
  elseif left == -2 or (left >= 0 and left < ttl) then
    redis.call('EXPIRE', registry, ttl)
  end
end
