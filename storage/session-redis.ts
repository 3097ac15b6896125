/**
 * Cluster session store on Redis.
 *
 * Table: hash `<prefix>sessions`, field = full JID, value = JSON SessionRecord. Every write is a Lua
 * script that changes the hash and PUBLISHes the change on `<prefix>sessions:changes` atomically, so
 * the change stream is in exactly the order of the writes. Each node keeps a mirror (full JID →
 * record, bare JID → full JIDs) fed by that stream; reads never touch Redis. start() subscribes
 * before HGETALL and replays changes that arrived during the load on top of it, so none is lost.
 * A write resolves once its own change came back on the stream, so the writer reads its own write
 * and a concurrent write by another node cannot be overwritten in the mirror by a late local apply.
 *
 * Routing: node N listens on `<prefix>node:N`; send() publishes there.
 * Liveness: each node refreshes `<prefix>alive:N` (TTL) periodically; every node periodically
 * checks the nodes present in its mirror and, for one whose key expired, deletes the records still
 * owned by it (script, so each record is removed once cluster-wide); only the node whose script
 * removed records calls the onNodeLost handlers with them.
 * Counters: `<prefix>hits:<key>` with INCR + EXPIRE NX.
 * Leases: `<prefix>lease:<key>` = holder node id, taken with SET NX PX; renew and release are scripts
 * that compare the holder first, so a node never extends or deletes another node's lease.
 * Shared state: hash `<prefix>state:<key>` (plain HSET/HDEL/HGETALL).
 * One connection for commands, one for subscriptions (a subscribed connection can do nothing else).
 */
import { createHash, randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { MirroredSessionStore, callAll, leaseTtl } from './session-memory.js';
import type { SessionRecord, SessionStore } from './types.js';

export interface RedisSessionStoreOptions {
  url: string;
  nodeId: string;
  /** Key and channel prefix; default 'perch:'. */
  prefix?: string;
  /** How often this node refreshes its alive key; default 3000. */
  heartbeatMs?: number;
  /** Alive key TTL: a node silent this long is lost; default 10000. */
  aliveTtlMs?: number;
  /** How often to look for lost nodes; default 5000. */
  checkMs?: number;
}

type Change = { src: string; seq: number } & (
  | { op: 'put'; rec: SessionRecord }
  | { op: 'del'; jid: string; node: string }
  | { op: 'drop'; node: string; jids: string[] }
);

class Script {
  readonly sha: string;
  constructor(readonly src: string) {
    this.sha = createHash('sha1').update(src).digest('hex');
  }
}

// KEYS[1] hash; ARGV: jid, record, channel, change.
const PUT = new Script(`
local prev = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return prev`);

// KEYS[1] hash; ARGV: jid, node, channel, change.
const REMOVE = new Script(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return 0 end
local ok, rec = pcall(cjson.decode, cur)
if not ok or rec.node ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1`);

// KEYS[1] hash; ARGV: node, channel, src, seq, jids...; returns the removed records.
const DROP = new Script(`
local removed, jids = {}, {}
for i = 5, #ARGV do
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
  redis.call('PUBLISH', ARGV[2], cjson.encode({op = 'drop', node = ARGV[1], jids = jids, src = ARGV[3], seq = tonumber(ARGV[4])}))
end
return removed`);

// KEYS[1] lease; ARGV: node, ttl ms; returns the holder after the call.
const ACQUIRE_LEASE = new Script(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return ARGV[1] end
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return cur`);

// KEYS[1] lease; ARGV: node, ttl ms.
const RENEW_LEASE = new Script(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`);

// KEYS[1] lease; ARGV: node.
const RELEASE_LEASE = new Script(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])`);

// A write whose change never comes back (subscription down) must not hang its caller.
const ECHO_TIMEOUT_MS = 2000;
const DROP_CHUNK = 500;

/**
 * Publishes one payload to every node of the cluster on Redis without joining it (a CLI on a machine
 * that runs no node). Resolves with the number of nodes that heard it.
 */
export async function broadcastToNodes(url: string, payload: string, prefix = 'perch:'): Promise<number> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await client.connect();
    return await client.publish(`${prefix}nodes`, payload);
  } finally {
    client.disconnect();
  }
}

export class RedisSessionStore extends MirroredSessionStore implements SessionStore {
  private readonly prefix: string;
  private readonly heartbeatMs: number;
  private readonly aliveTtlMs: number;
  private readonly checkMs: number;
  private readonly cmd: Redis;
  private readonly sub: Redis;
  private readonly lostHandlers: ((node: string, records: SessionRecord[]) => void)[] = [];
  /** Identifies this instance's own changes on the stream. */
  private readonly src = randomUUID();
  private seq = 0;
  private readonly waiting = new Map<number, () => void>();
  /** Non-null while loading the hash: changes received meanwhile, replayed after it. */
  private buffered: Change[] | null = null;
  private timers: NodeJS.Timeout[] = [];
  private starting: Promise<void> | null = null;
  private closing: Promise<void> | null = null;
  private checking = false;

  constructor(opts: RedisSessionStoreOptions) {
    super(opts.nodeId);
    this.prefix = opts.prefix ?? 'perch:';
    this.heartbeatMs = opts.heartbeatMs ?? 3000;
    this.aliveTtlMs = opts.aliveTtlMs ?? 10_000;
    this.checkMs = opts.checkMs ?? 5000;
    // Commands issued in the same event-loop turn leave in one write (login storms put many records at once).
    this.cmd = new Redis(opts.url, { lazyConnect: true, enableAutoPipelining: true });
    this.sub = new Redis(opts.url, { lazyConnect: true });
  }

  private get hashKey(): string {
    return `${this.prefix}sessions`;
  }
  private get changesChannel(): string {
    return `${this.prefix}sessions:changes`;
  }
  private nodeChannel(node: string): string {
    return `${this.prefix}node:${node}`;
  }
  private get everyoneChannel(): string {
    return `${this.prefix}nodes`;
  }
  private aliveKey(node: string): string {
    return `${this.prefix}alive:${node}`;
  }
  private leaseKey(key: string): string {
    return `${this.prefix}lease:${key}`;
  }

  start(): Promise<void> {
    this.starting ??= this.doStart().catch((err: unknown) => {
      this.cmd.disconnect();
      this.sub.disconnect();
      throw err;
    });
    return this.starting;
  }

  private async doStart(): Promise<void> {
    this.sub.on('message', (channel: string, message: string) => this.onChannelMessage(channel, message));
    await Promise.all([this.cmd.connect(), this.sub.connect()]);
    await this.beat();
    await this.sub.subscribe(this.changesChannel, this.nodeChannel(this.nodeId), this.everyoneChannel);
    await this.load();
    // Records left by an earlier process with this node id: nobody holds those connections now.
    const stale = this.list().filter((r) => r.node === this.nodeId);
    if (stale.length > 0) await this.drop(this.nodeId, stale.map((r) => r.jid));
    // Messages published while the subscription was down are lost: reload after a reconnect.
    this.sub.on('ready', () => void this.resync());
    const every = (ms: number, fn: () => Promise<unknown>) => {
      const t = setInterval(() => void fn().catch(() => {}), ms);
      t.unref();
      this.timers.push(t);
    };
    every(this.heartbeatMs, () => this.beat());
    every(this.checkMs, () => this.checkNodes());
  }

  private async resync(): Promise<void> {
    if (this.closing) return;
    try {
      await this.sub.subscribe(this.changesChannel, this.nodeChannel(this.nodeId), this.everyoneChannel);
      await this.load();
    } catch {
      // The next reconnect tries again.
    }
  }

  private async load(): Promise<void> {
    this.buffered = [];
    try {
      const all = await this.cmd.hgetall(this.hashKey);
      this.mirror.clear();
      for (const value of Object.values(all)) {
        const rec = parseJson<SessionRecord>(value);
        if (rec) this.mirror.set(rec);
      }
    } finally {
      const changes = this.buffered;
      this.buffered = null;
      for (const c of changes) this.apply(c);
    }
  }

  private beat(): Promise<unknown> {
    return this.cmd.set(this.aliveKey(this.nodeId), '1', 'PX', this.aliveTtlMs);
  }

  private onChannelMessage(channel: string, message: string): void {
    if (channel === this.changesChannel) {
      const change = parseJson<Change>(message);
      if (!change) return;
      if (this.buffered) this.buffered.push(change);
      else this.apply(change);
    } else if (channel === this.nodeChannel(this.nodeId) || channel === this.everyoneChannel) {
      callAll(this.messageHandlers, message);
    }
  }

  private apply(c: Change): void {
    if (c.op === 'put') this.mirror.set(c.rec);
    else if (c.op === 'del') this.mirror.delete(c.jid);
    else for (const jid of c.jids) this.mirror.delete(jid);
    if (c.src === this.src) {
      this.waiting.get(c.seq)?.();
      this.waiting.delete(c.seq);
    }
  }

  /** Registers for the echo of a change before it is written (the echo may beat the reply). */
  private expectEcho(): { seq: number; echoed: Promise<void>; cancel: () => void } {
    const seq = ++this.seq;
    let timer: NodeJS.Timeout | undefined;
    const echoed = new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiting.delete(seq);
        resolve();
      };
      this.waiting.set(seq, done);
      timer = setTimeout(done, ECHO_TIMEOUT_MS);
      timer.unref();
    });
    return { seq, echoed, cancel: () => this.waiting.get(seq)?.() };
  }

  private async run(script: Script, keys: string[], args: (string | number)[]): Promise<unknown> {
    try {
      return await this.cmd.evalsha(script.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return this.cmd.eval(script.src, keys.length, ...keys, ...args);
    }
  }

  async put(rec: SessionRecord): Promise<SessionRecord | null> {
    const { seq, echoed, cancel } = this.expectEcho();
    const change: Change = { op: 'put', rec, src: this.src, seq };
    try {
      const prev = await this.run(PUT, [this.hashKey], [rec.jid, JSON.stringify(rec), this.changesChannel, JSON.stringify(change)]);
      await echoed;
      return typeof prev === 'string' ? parseJson<SessionRecord>(prev) : null;
    } catch (err) {
      cancel();
      throw err;
    }
  }

  async remove(jid: string, node: string): Promise<void> {
    const { seq, echoed, cancel } = this.expectEcho();
    const change: Change = { op: 'del', jid, node, src: this.src, seq };
    try {
      const removed = await this.run(REMOVE, [this.hashKey], [jid, node, this.changesChannel, JSON.stringify(change)]);
      if (removed === 1) await echoed;
      else cancel();
    } catch (err) {
      cancel();
      throw err;
    }
  }

  /** Removes the given records if still owned by node; returns those it removed. */
  private async drop(node: string, jids: string[]): Promise<SessionRecord[]> {
    const out: SessionRecord[] = [];
    for (let i = 0; i < jids.length; i += DROP_CHUNK) {
      const { seq, echoed, cancel } = this.expectEcho();
      try {
        const args = [node, this.changesChannel, this.src, seq, ...jids.slice(i, i + DROP_CHUNK)];
        const removed = (await this.run(DROP, [this.hashKey], args)) as string[];
        for (const r of removed) {
          const rec = parseJson<SessionRecord>(r);
          if (rec) out.push(rec);
        }
        if (removed.length > 0) await echoed;
        else cancel();
      } catch (err) {
        cancel();
        throw err;
      }
    }
    return out;
  }

  private async checkNodes(): Promise<void> {
    if (this.checking || this.closing) return;
    this.checking = true;
    try {
      const byNode = new Map<string, string[]>();
      for (const rec of this.mirror.records.values()) {
        if (rec.node === this.nodeId) continue;
        const jids = byNode.get(rec.node);
        if (jids) jids.push(rec.jid);
        else byNode.set(rec.node, [rec.jid]);
      }
      for (const [node, jids] of byNode) {
        if ((await this.cmd.exists(this.aliveKey(node))) > 0) continue;
        const removed = await this.drop(node, jids);
        if (removed.length > 0) callAll(this.lostHandlers, node, removed);
      }
    } finally {
      this.checking = false;
    }
  }

  async send(node: string, payload: string): Promise<void> {
    if (node === this.nodeId) return this.deliverHere(payload);
    await this.cmd.publish(this.nodeChannel(node), payload);
  }

  async broadcast(payload: string): Promise<void> {
    await this.cmd.publish(this.everyoneChannel, payload);
  }

  onNodeLost(handler: (node: string, records: SessionRecord[]) => void): void {
    this.lostHandlers.push(handler);
  }

  async hit(key: string, ttlSeconds: number): Promise<number> {
    const k = `${this.prefix}hits:${key}`;
    const res = await this.cmd.multi().incr(k).expire(k, ttlSeconds, 'NX').exec();
    const [err, n] = res?.[0] ?? [new Error('hit: transaction aborted'), 0];
    if (err) throw err;
    return Number(n);
  }

  async resetHits(key: string): Promise<void> {
    await this.cmd.del(`${this.prefix}hits:${key}`);
  }

  async acquireLease(key: string, ttlMs: number): Promise<string | null> {
    const holder = await this.run(ACQUIRE_LEASE, [this.leaseKey(key)], [this.nodeId, leaseTtl(ttlMs)]);
    return typeof holder === 'string' ? holder : null;
  }

  async renewLease(key: string, ttlMs: number): Promise<boolean> {
    return (await this.run(RENEW_LEASE, [this.leaseKey(key)], [this.nodeId, leaseTtl(ttlMs)])) === 1;
  }

  async releaseLease(key: string): Promise<void> {
    await this.run(RELEASE_LEASE, [this.leaseKey(key)], [this.nodeId]);
  }

  leaseHolder(key: string): Promise<string | null> {
    return this.cmd.get(this.leaseKey(key));
  }

  async stateSet(key: string, field: string, value: string | null): Promise<void> {
    if (value === null) await this.cmd.hdel(`${this.prefix}state:${key}`, field);
    else await this.cmd.hset(`${this.prefix}state:${key}`, field, value);
  }

  stateGetAll(key: string): Promise<Record<string, string>> {
    return this.cmd.hgetall(`${this.prefix}state:${key}`);
  }

  async stateDelete(key: string): Promise<void> {
    await this.cmd.del(`${this.prefix}state:${key}`);
  }

  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    this.stopTimers();
    if (this.starting) {
      try {
        await this.starting;
        const mine = this.list().filter((r) => r.node === this.nodeId);
        await this.drop(this.nodeId, mine.map((r) => r.jid));
        await this.cmd.del(this.aliveKey(this.nodeId));
      } catch {
        // Unreachable Redis: the other nodes clean up once the alive key expires.
      }
    }
    await Promise.all([quit(this.cmd), quit(this.sub)]);
    this.mirror.clear();
  }

  /** Test hook: drops both connections with no clean-up, as a killed process would. */
  crash(): void {
    this.closing ??= Promise.resolve();
    this.stopTimers();
    this.cmd.disconnect();
    this.sub.disconnect();
  }

  private stopTimers(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
  }
}

async function quit(r: Redis): Promise<void> {
  if (r.status === 'end') return;
  try {
    await r.quit();
  } catch {
    r.disconnect();
  }
}

function parseJson<T>(s: string): T | null {
  try {
    return JSON.parse(s) as T;
  } catch {
    return null;
  }
}
