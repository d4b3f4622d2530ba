-- Extend a lock only if we still hold it. KEYS[1] lock, ARGV[1] our token, ARGV[2] lifetime in ms.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
