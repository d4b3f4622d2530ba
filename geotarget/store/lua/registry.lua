-- remember(registry, key, ttl): note a device's key in its registry, the set of every key that holds something
-- of the device (geotarget/store/redis_devices.py: an erasure deletes what it lists, never scanning the
-- keyspace). The registry lives at least as long as the longest-lived key it names (ttl seconds; 0 = forever).
-- A name whose key expired meanwhile stays until the registry goes: deleting it again costs nothing.
local function remember(registry, key, ttl)
  local left = redis.call('TTL', registry) -- -2: no registry yet, -1: kept forever
  redis.call('SADD', registry, key)
  if ttl <= 0 then
    if left >= 0 then
      redis.call('PERSIST', registry)
    end
  elseif left == -2 or (left >= 0 and left < ttl) then
    redis.call('EXPIRE', registry, ttl)
  end
end
