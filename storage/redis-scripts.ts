/**
 * The session store's Lua scripts, each one atomic on the server. A script's keys always share one
 * slot on a Redis Cluster (see RedisKeys): the session table's scripts touch only its family, the lease
 * scripts one lease key. Scripts that publish take the command (PUBLISH, or SPUBLISH on a Cluster, whose
 * channel is then in the script's slot) as an argument.
 */
import { createHash } from 'node:crypto';
import type { RedisClient } from './redis-connection.js';

export class Script {
  readonly sha: string;
  constructor(readonly src: string) {
    this.sha = createHash('sha1').update(src).digest('hex');
  }

  /** EVALSHA, falling back to EVAL the first time a server has not seen the script. */
  async run(client: RedisClient, keys: string[], args: (string | number)[]): Promise<unknown> {
    try {
      return await client.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return client.eval(this.src, keys.length, ...keys, ...args);
    }
  }
}

// KEYS[1] hash; ARGV: jid, record, publish command, channel, change.
export const PUT = new Script(`
local prev = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call(ARGV[3], ARGV[4], ARGV[5])
return prev`);

// KEYS[1] hash; ARGV: jid, node, publish command, channel, change.
export const REMOVE = new Script(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return 0 end
local ok, rec = pcall(cjson.decode, cur)
if not ok or rec.node ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call(ARGV[3], ARGV[4], ARGV[5])
return 1`);

// KEYS[1] hash, KEYS[2] the node's alive key, KEYS[3] the node's dropped mark; ARGV: node, publish
// command, channel, src, seq, onlyIfLost, jids...; returns the removed records. onlyIfLost '1': nothing
// is removed if the node is alive again (it may have written its records back since its liveness was
// checked), and what is removed leaves the mark, so the node, when it comes back, knows it was taken
// for lost rather than that Redis lost its records (a failover to a replica that missed the last writes).
export const DROP = new Script(`
local removed, jids = {}, {}
if ARGV[6] == '1' and redis.call('EXISTS', KEYS[2]) == 1 then return removed end
for i = 7, #ARGV do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  if cur then
    local ok, rec = pcall(cjson.decode, cur)
    if ok and rec.node == ARGV[1] then
      redis.call('HDEL', KEYS[1], ARGV[i])
      removed[#removed + 1] = cur
      jids[#jids + 1] = ARGV[i]
    end
  end
end
if #jids > 0 then
  if ARGV[6] == '1' then redis.call('SET', KEYS[3], '1', 'PX', 600000) end
  redis.call(ARGV[2], ARGV[3], cjson.encode({op = 'drop', node = ARGV[1], jids = jids, src = ARGV[4], seq = tonumber(ARGV[5])}))
end
return removed`);

// KEYS[1] lease; ARGV: node, ttl ms, hold back a free lease ('1' during the recovery window). Returns
// the holder after the call, or -1 for a free lease held back (the caller waits and asks again).
export const ACQUIRE_LEASE = new Script(`
if ARGV[3] == '1' and redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return ARGV[1] end
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return cur`);

// KEYS[1] lease; ARGV: node, ttl ms, '1' if this node still counts on the lease. 1: renewed. 0: another
// node holds it, or it lapsed. Missing while this node still counts on it (its TTL, counted from
// before the last renewal was asked, has not run out, so Redis cannot have expired it): Redis lost it,
// either everything (the caller checks the epoch) or the last writes (a failover to a replica that
// missed them): 2, taken again; -2: missing and not this node's any more.
export const RENEW_LEASE = new Script(`
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if cur then return 0 end
if ARGV[3] == '1' then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
return -2`);

// KEYS: leases; ARGV: node, ttl ms. RENEW_LEASE's first step for many leases in one call: 1 renewed,
// 0 anything else (the caller then asks about that lease alone, with RENEW_LEASE).
export const RENEW_LEASES = new Script(`
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out`);

// KEYS[1] lease; ARGV: node.
export const RELEASE_LEASE = new Script(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])`);

// KEYS[1] counter; ARGV: ttl s. One round trip instead of MULTI/INCR/EXPIRE/EXEC.
export const HIT = new Script(`
local n = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[1], 'NX')
return n`);

// KEYS[1] alive, KEYS[2] epoch, KEYS[3] recovering; ARGV: alive ttl ms, new epoch, window ms.
// Refreshes this node's alive key and returns the epoch, creating it (and the recovery window) when
// Redis lost it.
export const BEAT = new Script(`
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
local e = redis.call('GET', KEYS[2])
if e then return e end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SET', KEYS[3], '1', 'PX', ARGV[3])
return ARGV[2]`);

// KEYS[1] hash; ARGV: publish command, channel, then (jid, record, change) triples. Writes each record
// back unless the JID is held by another node now; returns the JIDs it did not write.
export const RESTORE = new Script(`
local skipped = {}
for i = 3, #ARGV, 3 do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  local mine = true
  if cur then
    local ok, rec = pcall(cjson.decode, cur)
    local was = cjson.decode(ARGV[i + 1])
    mine = ok and rec.node == was.node
  end
  if mine then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    redis.call(ARGV[1], ARGV[2], ARGV[i + 2])
  else
    skipped[#skipped + 1] = ARGV[i]
  end
end
return skipped`);
