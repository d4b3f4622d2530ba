-- Release a lock only if we still hold it, in one step: between a GET and a DEL another process could take an
-- expired lock, and the DEL would then remove that one. KEYS[1] lock, ARGV[1] our token. Returns 1 if released.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
