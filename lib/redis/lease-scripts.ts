import { redisScript } from './redis-script.js';

// The Lua scripts behind the Redis lease and position stores. A script runs atomically: nothing
// else happens between its GET and its SET. Fences and TTLs cross the script boundary as decimal
// strings, formatted with %d (Lua's default would switch to exponent notation for large numbers).

/**
 * `stored(key)`: the fence and holder of a stored position envelope (canonical EJSON
 * `{"$numberInt": "5"}`, or a plain number); 0 and nil for values without them (no lease, version
 * 0.1, a bare token, not JSON). `supersedes`: whether that stored position forbids a write by
 * (fence, holder): written with a larger fence, or with the same fence by another holder (a fence
 * handed out twice because the counter was rolled back, e.g. by a failover that lost writes).
 */
const STORED_FENCE = `
local function stored(key)
  local raw = redis.call('GET', key)
  if not raw then return 0 end
  local ok, envelope = pcall(cjson.decode, raw)
  if not ok or type(envelope) ~= 'table' then return 0 end
  local fence = envelope.fence
  if type(fence) == 'table' then fence = fence['$numberInt'] or fence['$numberLong'] or fence['$numberDouble'] end
  return tonumber(fence) or 0, type(envelope.holder) == 'string' and envelope.holder or nil
end
local function supersedes(storedFence, storedHolder, fence, holder)
  return storedFence > fence or (storedFence == fence and storedHolder ~= nil and storedHolder ~= holder)
end
`;

export type AcquireReply = [1, number, number] | [0, string, number] | [2, string, number];
/** [renewed, the pause key's value or null]. */
export type RenewReply = [0 | 1, string | null];
export type WriteFencedReply = [1] | [0, 'held' | 'fence', string] | [0, 'stored', string, string];

/**
 * `waitMs` > 0 when the fence counter was missing on a Redis up for less than a TTL (it restarted
 * empty, or this is a first start on a new Redis): a holder of a lease from before the restart may
 * still believe it valid until its TTL ran out, so the new holder waits that long before it reads.
 * INFO comes after the writes: before Redis 5 a script may not write after a non-deterministic call.
 */
export const ACQUIRE = redisScript<AcquireReply>()({
  name: 'nestjsChangeStreamsLeaseAcquire',
  keys: ['position', 'lease', 'fence', 'paused'],
  argv: ['holder', 'ttlMs'],
  replies:
    '{1, fence, waitMs} acquired; {0, "<fence> <holder>", pttl} held by someone else; ' +
    '{2, pause key value, 0} paused fleet-wide (nobody may acquire)',
  lua: `${STORED_FENCE}
local paused = redis.call('GET', KEYS[4])
if paused then return {2, paused, 0} end
local current = redis.call('GET', KEYS[2])
if current then return {0, current, redis.call('PTTL', KEYS[2])} end
local counterMissing = redis.call('EXISTS', KEYS[3]) == 0
local fence = redis.call('INCR', KEYS[3])
-- A counter that was lost (evicted, deleted) must not hand out a fence a stored position already carries.
local storedFence = stored(KEYS[1])
if fence <= storedFence then
  fence = storedFence + 1
  redis.call('SET', KEYS[3], string.format('%d', fence))
end
redis.call('SET', KEYS[2], string.format('%d', fence) .. ' ' .. ARGV[1], 'PX', ARGV[2])
local wait = 0
if counterMissing then
  local uptime = tonumber(string.match(redis.call('INFO', 'server'), 'uptime_in_seconds:(%d+)')) or 0
  wait = math.max(0, tonumber(ARGV[2]) - uptime * 1000)
end
return {1, fence, wait}`,
});

/**
 * An expired lease is taken back when nobody acquired it since: the counter still reads our fence
 * and the stored position does not supersede us (see `supersedes`). The pause key is read in the
 * same step, so a holder learns of a fleet-wide pause within one renewal and without a poll of its
 * own; it renews all the same (it keeps the lease while it drains and saves, then releases it).
 */
export const RENEW = redisScript<RenewReply>()({
  name: 'nestjsChangeStreamsLeaseRenewPaused',
  keys: ['position', 'lease', 'fence', 'paused'],
  argv: ['fence', 'holder', 'ttlMs'],
  replies: '{1 renewed or 0 lost, the pause key value or nil}',
  lua: `${STORED_FENCE}
local paused = redis.call('GET', KEYS[4])
local mine = ARGV[1] .. ' ' .. ARGV[2]
local current = redis.call('GET', KEYS[2])
if current == mine then
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
  return {1, paused}
end
if current or redis.call('GET', KEYS[3]) ~= ARGV[1] then return {0, paused} end
local storedFence, storedHolder = stored(KEYS[1])
if supersedes(storedFence, storedHolder, tonumber(ARGV[1]), ARGV[2]) then return {0, paused} end
redis.call('SET', KEYS[2], mine, 'PX', ARGV[3])
return {1, paused}`,
});

export const RELEASE = redisScript<0 | 1>()({
  name: 'nestjsChangeStreamsLeaseRelease',
  keys: ['lease'],
  argv: ['"<fence> <holder>"'],
  replies: '1 released, 0 not ours',
  lua: `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`,
});

export const WRITE_FENCED = redisScript<WriteFencedReply>()({
  name: 'nestjsChangeStreamsWriteFenced',
  keys: ['position', 'lease', 'fence'],
  argv: ['envelope', 'fence', 'holder'],
  replies:
    '{1} written; refused: {0, "held", "<fence> <holder>"} another lease is current, ' +
    '{0, "fence", counter or ""} the lease is gone and the counter moved on (or is missing), ' +
    '{0, "stored", fence, holder or ""} the stored position supersedes us',
  lua: `${STORED_FENCE}
local mine = ARGV[2] .. ' ' .. ARGV[3]
local current = redis.call('GET', KEYS[2])
if current then
  if current ~= mine then return {0, 'held', current} end
else
  local latest = redis.call('GET', KEYS[3])
  if latest ~= ARGV[2] then return {0, 'fence', latest or ''} end
end
local storedFence, storedHolder = stored(KEYS[1])
if supersedes(storedFence, storedHolder, tonumber(ARGV[2]), ARGV[3]) then
  return {0, 'stored', string.format('%d', storedFence), storedHolder or ''}
end
redis.call('SET', KEYS[1], ARGV[1])
return {1}`,
});

/** Expiry comes from the Redis clock, so instances with skewed clocks agree on who is live. */
export const HEARTBEAT = redisScript<number>()({
  name: 'nestjsChangeStreamsHeartbeat',
  keys: ['group'],
  argv: ['member', 'ttlMs'],
  replies: 'the number of live members (this one included)',
  lua: `
-- Before Redis 5 a script that reads TIME and then writes must ask for effects replication.
if redis.replicate_commands then redis.replicate_commands() end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now))
redis.call('ZADD', KEYS[1], string.format('%d', now + tonumber(ARGV[2])), ARGV[1])
-- The set lives as long as its longest-lived member, so an abandoned group disappears.
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
return redis.call('ZCARD', KEYS[1])`,
});

/**
 * `HEARTBEAT` that also records the member's handler set in a hash beside the group (expiring
 * with it; sets of members that expired are removed).
 */
export const ANNOUNCE = redisScript<[number, ...string[]]>()({
  name: 'nestjsChangeStreamsAnnounce',
  keys: ['group', 'handler sets'],
  argv: ['member', 'ttlMs', 'handler set'],
  replies: '{live members, member, set, member, set, ...}',
  lua: `
if redis.replicate_commands then redis.replicate_commands() end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now))
redis.call('ZADD', KEYS[1], string.format('%d', now + tonumber(ARGV[2])), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
redis.call('PEXPIREAT', KEYS[2], last[2])
local reply = {redis.call('ZCARD', KEYS[1])}
local sets = redis.call('HGETALL', KEYS[2])
for i = 1, #sets, 2 do
  if redis.call('ZSCORE', KEYS[1], sets[i]) then
    table.insert(reply, sets[i])
    table.insert(reply, sets[i + 1])
  else
    redis.call('HDEL', KEYS[2], sets[i])
  end
end
return reply`,
});

/**
 * Called by an instance that lost its lease (fence, holder); `saved` is "1" if it stored a position
 * under that lease. Leaves `envelope` (where it got to) at the left-position key, unless something
 * is there (a left position, or the marker left once one was used), when Redis shows it lost the
 * stream's data: the counter is missing or below that fence, or the lease or the stored position
 * carries that fence for another holder; and, if it had saved, the stored position is missing or
 * has a lower fence. None of that happens in a normal takeover (fences only grow), so then it
 * leaves nothing.
 */
export const LEAVE_POSITION = redisScript<0 | 1>()({
  name: 'nestjsChangeStreamsLeaveOrphan',
  keys: ['position', 'lease', 'fence', 'left position'],
  argv: ['fence', 'holder', 'envelope', 'ttlSeconds', 'saved'],
  replies: '1 left, 0 not needed or already there',
  lua: `${STORED_FENCE}
local fence = tonumber(ARGV[1])
local counter = tonumber(redis.call('GET', KEYS[3]) or '')
local lost = counter == nil or counter < fence
local current = redis.call('GET', KEYS[2])
if current then
  local leaseFence, leaseHolder = string.match(current, '^(%d+) (.*)$')
  if tonumber(leaseFence) == fence and leaseHolder ~= ARGV[2] then lost = true end
end
local storedFence, storedHolder = stored(KEYS[1])
if storedFence == fence and storedHolder ~= nil and storedHolder ~= ARGV[2] then lost = true end
if ARGV[5] == '1' and (redis.call('EXISTS', KEYS[1]) == 0 or storedFence < fence) then lost = true end
if not lost then return 0 end
if redis.call('SET', KEYS[4], ARGV[3], 'EX', ARGV[4], 'NX') then return 1 end
return 0`,
});

/**
 * A plain GET sent as a script: ioredis sends scripts to the master, while a Cluster client with
 * `scaleReads` sends GET to a replica that may lag behind (and not have the position yet: the
 * stream would start from now).
 */
export const READ = redisScript<string | null>()({
  name: 'nestjsChangeStreamsRead',
  keys: ['key'],
  argv: [],
  replies: 'its value or nil',
  lua: `return redis.call('GET', KEYS[1])`,
});

/** Every script, for registering them together. */
export const LEASE_SCRIPTS = {
  ACQUIRE,
  RENEW,
  RELEASE,
  WRITE_FENCED,
  HEARTBEAT,
  ANNOUNCE,
  LEAVE_POSITION,
  READ,
};
