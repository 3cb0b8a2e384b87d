/**
 * The Lua script that records one attempt of a triplet and decides its verdict. It runs atomically
 * in Redis, so concurrent checks of one triplet (parallel connections, several replicas) never
 * see a half-written record.
 *
 * The triplet key is a hash with `first` (epoch ms of the first attempt) and, once a retry has
 * passed, `passed` (epoch ms of the latest pass). Every write also sets the TTL: the retry window
 * for a pending record, the maximum age for a whitelisted one. The script compares the stored
 * times with `now` as well, so the verdict follows the clock it is given even where the TTL runs
 * on another clock.
 *
 * The group key is the auto-whitelist counter of the client group, a hash with `count` (passes
 * counted) and `counted` (epoch ms of the latest counted pass). A pass of any triplet of the
 * group adds one, at most once per count interval. A group whose count reached the threshold
 * passes at once with `auto-whitelisted`. Each count and each such pass renews its TTL to the
 * maximum age.
 *
 * KEYS[1]: the triplet's key. KEYS[2]: the client group's key.
 * NOTE: Redis Cluster would need both keys in one hash slot, which the keys do not arrange.
 * ARGV: delay, retry window and maximum age in ms, then `now` in epoch ms, or '' for the Redis
 * server clock (TIME), then the auto-whitelist threshold (0 turns it off) and the count interval
 * in ms.
 * Returns { action, reason, retryAfter, delayed } with -1 for an absent number. retryAfter and
 * delayed are in whole seconds.
 */
export const CHECK_SCRIPT = `
local key = KEYS[1]
local groupKey = KEYS[2]
local delay = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local maxAge = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local threshold = tonumber(ARGV[5])
local countInterval = tonumber(ARGV[6])
if not now then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end
local nowText = string.format('%.0f', now)

if threshold > 0 then
  local count = tonumber(redis.call('HGET', groupKey, 'count'))
  if count and count >= threshold then
    redis.call('PEXPIRE', groupKey, maxAge)
    return { 'pass', 'auto-whitelisted', -1, -1 }
  end
end

local function countPass()
  if threshold <= 0 then
    return
  end
  local counted = tonumber(redis.call('HGET', groupKey, 'counted'))
  if counted and now - counted < countInterval then
    return
  end
  redis.call('HINCRBY', groupKey, 'count', 1)
  redis.call('HSET', groupKey, 'counted', nowText)
  redis.call('PEXPIRE', groupKey, maxAge)
end

local function whitelist(reason, delayed)
  redis.call('HSET', key, 'passed', nowText)
  redis.call('PEXPIRE', key, maxAge)
  countPass()
  return { 'pass', reason, -1, delayed }
end

local record = redis.call('HMGET', key, 'first', 'passed')
local first = tonumber(record[1])
local passed = tonumber(record[2])

if passed then
  if now - passed < maxAge then
    return whitelist('whitelisted', -1)
  end
  first = nil
elseif first and now - first >= window then
  first = nil
end

if not first then
  redis.call('DEL', key)
  redis.call('HSET', key, 'first', nowText)
  if delay <= 0 then
    return whitelist('no-delay', 0)
  end
  redis.call('PEXPIRE', key, window)
  return { 'defer', 'new', math.ceil(delay / 1000), -1 }
end

-- A retry leaves the record alone, so neither the first-seen time nor the TTL moves.
local elapsed = math.max(0, now - first)
if elapsed < delay then
  return { 'defer', 'too-early', math.ceil((delay - elapsed) / 1000), -1 }
end
return whitelist('retried', math.floor(elapsed / 1000))
`;

/** The script's reply as Redis returns it. */
export type CheckScriptReply = [
  action: string,
  reason: string,
  retryAfter: number,
  delayed: number,
];
