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
 *
 * Faults (docs/architecture.md, "When Redis restarts or is cut off"):
 * - Each node keeps its own records apart from the mirror (`own`): they are what it holds for sure, so
 *   routing to them never depends on Redis, and they are what it writes back.
 * - `<prefix>epoch` holds a random id set once; every heartbeat and every reconnect reads it. Gone or
 *   changed: Redis came back empty. The node writes its records and alive key back, runs the reset
 *   handlers (modules re-take their leases and shared state), and keeps the other nodes' records in its
 *   mirror for a recovery window (they write theirs back meanwhile) before it reloads the table. The
 *   node that recreates the epoch also sets `<prefix>recovering` for that window: while it lasts a free
 *   lease is not handed out (acquireLease waits), so the nodes that held leases get them back first.
 * - After a reconnect without a reset, the table is reloaded; records of this node missing from it were
 *   removed by another node that took this one for lost: their sessions are reported ('dropped').
 * - send() checks that someone listens on the node's channel (PUBLISH counts receivers), retries
 *   briefly, then rejects, so a payload for a node that cannot be reached is never dropped in silence.
 * - Every connection has an error handler; reachability is reported once per change (onHealth).
 */
import { createHash, randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { MirroredSessionStore, callAll, leaseTtl } from './session-memory.js';
import type { SessionRecord, SessionStore, StoreHealth, StoreReset } from './types.js';

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
  /** After Redis came back empty: how long free leases are held back and other nodes' records kept; default 2000. */
  recoveryWindowMs?: number;
  /** How long send() retries a node nobody listens for before it rejects; default 1500. */
  sendRetryMs?: number;
  /**
   * A heartbeat unanswered this long means the connection is dead without having closed (a network
   * that drops packets): both connections are dropped and made again; default 3000.
   */
  stallMs?: number;
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

// KEYS[1] hash, KEYS[2] the node's alive key; ARGV: node, channel, src, seq, onlyIfLost, jids...;
// returns the removed records. onlyIfLost '1': nothing is removed if the node is alive again (it may
// have written its records back since its liveness was checked).
const DROP = new Script(`
local removed, jids = {}, {}
if ARGV[5] == '1' and redis.call('EXISTS', KEYS[2]) == 1 then return removed end
for i = 6, #ARGV do
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

// KEYS[1] lease, KEYS[2] recovering; ARGV: node, ttl ms. Returns the holder after the call, or, for a
// free lease during the recovery window, the window's remaining ms (the caller waits and asks again).
const ACQUIRE_LEASE = new Script(`
if redis.call('EXISTS', KEYS[1]) == 0 and redis.call('EXISTS', KEYS[2]) == 1 then
  return math.max(redis.call('PTTL', KEYS[2]), 1)
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return ARGV[1] end
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return cur`);

// As ACQUIRE_LEASE without the recovery window (the previous holder taking its lease back).
const RECLAIM_LEASE = new Script(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return ARGV[1] end
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return cur`);

// KEYS[1] lease, KEYS[2] epoch; ARGV: node, ttl ms, the epoch this node knows. -1: the lease is gone
// because Redis lost everything (not because it lapsed), which the caller must find out first.
const RENEW_LEASE = new Script(`
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not cur and redis.call('GET', KEYS[2]) ~= ARGV[3] then return -1 end
return 0`);

// KEYS[1] alive, KEYS[2] epoch, KEYS[3] recovering; ARGV: alive ttl ms, new epoch, window ms.
// Refreshes this node's alive key and returns the epoch, creating it (and the recovery window) when
// Redis lost it.
const BEAT = new Script(`
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
local e = redis.call('GET', KEYS[2])
if e then return e end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SET', KEYS[3], '1', 'PX', ARGV[3])
return ARGV[2]`);

// KEYS[1] hash; ARGV: channel, then (jid, record, change) triples. Writes each record back unless the
// JID is held by another node now; returns the JIDs it did not write.
const RESTORE = new Script(`
local skipped = {}
for i = 2, #ARGV, 3 do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  local mine = true
  if cur then
    local ok, rec = pcall(cjson.decode, cur)
    local was = cjson.decode(ARGV[i + 1])
    mine = ok and rec.node == was.node
  end
  if mine then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    redis.call('PUBLISH', ARGV[1], ARGV[i + 2])
  else
    skipped[#skipped + 1] = ARGV[i]
  end
end
return skipped`);

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
  // The failure reaches the caller through the rejected command; no "Unhandled error event".
  client.on('error', () => {});
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
  private readonly recoveryWindowMs: number;
  private readonly sendRetryMs: number;
  private readonly stallMs: number;
  private beating = false;
  private readonly cmd: Redis;
  private readonly sub: Redis;
  private readonly lostHandlers: ((node: string, records: SessionRecord[]) => void)[] = [];
  private readonly healthHandlers: ((health: StoreHealth) => void)[] = [];
  private readonly resetHandlers: ((reset: StoreReset) => void | Promise<void>)[] = [];
  /** Identifies this instance's own changes on the stream. */
  private readonly src = randomUUID();
  private seq = 0;
  private readonly waiting = new Map<number, () => void>();
  /** Non-null while loading the hash: changes received meanwhile, replayed after it. */
  private buffered: Change[] | null = null;
  private timers: NodeJS.Timeout[] = [];
  private starting: Promise<void> | null = null;
  private started = false;
  private closing: Promise<void> | null = null;
  private checking = false;
  /** This node's records: what it holds for sure, whatever Redis says (routing and write-back). */
  private readonly own = new Map<string, SessionRecord>();
  /** The epoch this node last saw; another one means Redis lost everything meanwhile. */
  private epoch: string | null = null;
  /** Until then, after Redis came back empty, other nodes' records stay in the mirror. */
  private recoveringUntil = 0;
  /** The write-back after Redis came back empty, while it runs. */
  private recovery: Promise<void> | null = null;
  /** Leases this node took or renewed: until when it may count on them (from when it asked). */
  private readonly leaseUntil = new Map<string, number>();
  /** Since when Redis is unreachable; null while it answers. */
  private downSince: number | null = null;
  /** Own JIDs with a write in flight, and those written while a load runs: a load must not judge them. */
  private readonly writing = new Map<string, number>();
  private touchedDuringLoad: Set<string> | null = null;

  constructor(opts: RedisSessionStoreOptions) {
    super(opts.nodeId);
    this.prefix = opts.prefix ?? 'perch:';
    this.heartbeatMs = opts.heartbeatMs ?? 3000;
    this.aliveTtlMs = opts.aliveTtlMs ?? 10_000;
    this.checkMs = opts.checkMs ?? 5000;
    this.recoveryWindowMs = opts.recoveryWindowMs ?? 2000;
    this.sendRetryMs = opts.sendRetryMs ?? 1500;
    this.stallMs = opts.stallMs ?? 3000;
    // A command waits for a few reconnection attempts (a restart takes well under a second), then
    // fails, so callers answer with an error instead of hanging while Redis is cut off.
    const common = {
      lazyConnect: true,
      maxRetriesPerRequest: 3,
      connectTimeout: 3000,
      retryStrategy: (times: number) => Math.min(times * 100, 1000),
    };
    // Commands issued in the same event-loop turn leave in one write (login storms put many records at once).
    this.cmd = new Redis(opts.url, { ...common, enableAutoPipelining: true });
    this.sub = new Redis(opts.url, common);
    // Without a listener ioredis prints "Unhandled error event" for every failed attempt.
    for (const r of [this.cmd, this.sub]) {
      r.on('error', (err: Error) => this.markDown(err.message));
      r.on('close', () => this.markDown('connection closed'));
    }
    this.cmd.on('ready', () => {
      if (!this.started || this.closing) return;
      this.markUp();
      void this.beat().catch(() => {});
    });
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
  private get epochKey(): string {
    return `${this.prefix}epoch`;
  }
  private get recoveringKey(): string {
    return `${this.prefix}recovering`;
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
    // The first node of a fresh cluster names the epoch; no recovery window for that.
    await this.cmd.set(this.epochKey, randomUUID(), 'NX');
    this.epoch = await this.cmd.get(this.epochKey);
    await this.beat();
    await this.sub.subscribe(this.changesChannel, this.nodeChannel(this.nodeId), this.everyoneChannel);
    await this.load(false);
    // Records left by an earlier process with this node id: nobody holds those connections now.
    const stale = this.list().filter((r) => r.node === this.nodeId);
    if (stale.length > 0) await this.drop(this.nodeId, stale.map((r) => r.jid));
    // Messages published while the subscription was down are lost: reload after a reconnect.
    this.sub.on('ready', () => void this.resync());
    this.started = true;
    const every = (ms: number, fn: () => Promise<unknown>) => {
      const t = setInterval(() => void fn().catch(() => {}), ms);
      t.unref();
      this.timers.push(t);
    };
    every(this.heartbeatMs, () => this.watchedBeat());
    every(this.checkMs, () => this.checkNodes());
  }

  private markDown(error: string): void {
    if (!this.started || this.closing || this.downSince !== null) return;
    this.downSince = Date.now();
    callAll(this.healthHandlers, { up: false, error });
  }

  private markUp(): void {
    if (this.downSince === null) return;
    const downMs = Date.now() - this.downSince;
    this.downSince = null;
    callAll(this.healthHandlers, { up: true, downMs });
  }

  private async resync(): Promise<void> {
    if (this.closing || !this.started) return;
    try {
      await this.sub.subscribe(this.changesChannel, this.nodeChannel(this.nodeId), this.everyoneChannel);
      // Finds out first whether Redis came back empty (the write-back then keeps the mirror).
      await this.beat();
      await this.recovery;
      const dropped = await this.load(Date.now() < this.recoveringUntil);
      if (dropped.length > 0) await this.emitReset({ kind: 'dropped', records: dropped });
    } catch {
      // The next reconnect tries again.
    }
  }

  /**
   * Loads the table into the mirror. keepOthers (recovery window): records missing from Redis stay.
   * Returns this node's records that other nodes removed (they took it for lost); stale records of
   * this node that it no longer holds are removed from Redis.
   */
  private async load(keepOthers: boolean): Promise<SessionRecord[]> {
    this.buffered = [];
    const dropped: SessionRecord[] = [];
    const stale: string[] = [];
    this.touchedDuringLoad = new Set();
    try {
      const all = await this.cmd.hgetall(this.hashKey);
      if (!keepOthers) this.mirror.clear();
      const loaded = new Map<string, SessionRecord>();
      for (const value of Object.values(all)) {
        const rec = parseJson<SessionRecord>(value);
        if (!rec) continue;
        loaded.set(rec.jid, rec);
        this.mirror.set(rec);
        if (rec.node === this.nodeId && !this.own.has(rec.jid) && !this.judgedLater(rec.jid)) stale.push(rec.jid);
      }
      for (const rec of this.own.values()) {
        const there = loaded.get(rec.jid);
        if (there?.node === this.nodeId || this.judgedLater(rec.jid)) continue;
        if (keepOthers) this.mirror.set(rec); // written back by the recovery
        else dropped.push(rec);
      }
      for (const rec of dropped) this.own.delete(rec.jid);
    } finally {
      this.touchedDuringLoad = null;
      const changes = this.buffered;
      this.buffered = null;
      for (const c of changes) this.apply(c);
    }
    // Removed while Redis could not be reached (the session ended here meanwhile).
    if (stale.length > 0 && this.started) await this.drop(this.nodeId, stale).catch(() => {});
    return dropped;
  }

  /** The periodic beat, one at a time, with a watchdog for a connection that went silent. */
  private async watchedBeat(): Promise<void> {
    if (this.beating) return;
    this.beating = true;
    const watchdog = setTimeout(() => {
      if (this.closing) return;
      this.markDown(`no answer from Redis in ${this.stallMs} ms`);
      // Nothing closed the socket, so nothing would reconnect it. Closing it on purpose fails every
      // command waiting on it now (a stanza's sender hears of it) instead of resending them later;
      // then the connections are made again.
      for (const r of [this.cmd, this.sub]) {
        // A connection already waiting to reconnect has nothing stuck on a silent socket.
        if (r.status !== 'ready' && r.status !== 'connect' && r.status !== 'connecting') continue;
        r.once('end', () => { if (!this.closing) r.connect().catch(() => {}); });
        r.disconnect(false);
        // disconnect() only half-closes, and over a silent network the close never completes.
        r.stream?.destroy();
      }
      this.beating = false;
    }, this.stallMs);
    watchdog.unref();
    try {
      await this.beat();
    } finally {
      clearTimeout(watchdog);
      this.beating = false;
    }
  }

  /** A write of this JID raced the load: the table read may not show it yet, or show it already. */
  private judgedLater(jid: string): boolean {
    return this.writing.has(jid) || this.touchedDuringLoad?.has(jid) === true;
  }

  /** Runs a write of one of this node's JIDs, marked as in flight for load(). */
  private async writingOwn<T>(jid: string, write: () => Promise<T>): Promise<T> {
    this.writing.set(jid, (this.writing.get(jid) ?? 0) + 1);
    this.touchedDuringLoad?.add(jid);
    try {
      return await write();
    } finally {
      const n = this.writing.get(jid)! - 1;
      if (n === 0) this.writing.delete(jid);
      else this.writing.set(jid, n);
      this.touchedDuringLoad?.add(jid);
    }
  }

  /** Refreshes the alive key; finds out whether Redis came back empty (and then recovers). */
  private async beat(): Promise<void> {
    const epoch = await this.run(BEAT, [this.aliveKey(this.nodeId), this.epochKey, this.recoveringKey],
      [this.aliveTtlMs, randomUUID(), this.recoveryWindowMs]);
    if (typeof epoch !== 'string' || epoch === this.epoch || this.closing) return;
    this.epoch = epoch;
    this.recovery = this.recoverEmpty().finally(() => { this.recovery = null; });
    await this.recovery;
  }

  /** Redis came back empty: writes this node's records back, then lets the modules re-assert theirs. */
  private async recoverEmpty(): Promise<void> {
    this.recoveringUntil = Date.now() + this.recoveryWindowMs + 500;
    const records = [...this.own.values()];
    for (const rec of records) this.mirror.set(rec);
    const skipped: SessionRecord[] = [];
    for (let i = 0; i < records.length; i += DROP_CHUNK) {
      const chunk = records.slice(i, i + DROP_CHUNK);
      const args: string[] = [this.changesChannel];
      for (const rec of chunk) {
        const change: Change = { op: 'put', rec, src: this.src, seq: 0 };
        args.push(rec.jid, JSON.stringify(rec), JSON.stringify(change));
      }
      const notWritten = new Set((await this.run(RESTORE, [this.hashKey], args)) as string[]);
      for (const rec of chunk) if (notWritten.has(rec.jid)) skipped.push(rec);
    }
    for (const rec of skipped) this.own.delete(rec.jid);
    await this.emitReset({ kind: 'empty', records: records.filter((r) => this.own.has(r.jid)) });
    if (skipped.length > 0) await this.emitReset({ kind: 'dropped', records: skipped });
    // The other nodes write theirs back meanwhile; then the table is read whole again.
    const t = setTimeout(() => void this.reloadAfterRecovery().catch(() => {}), this.recoveryWindowMs + 500);
    t.unref();
    this.timers.push(t);
  }

  /** After the recovery window: the table as Redis has it; records nobody wrote back belong to lost nodes. */
  private async reloadAfterRecovery(): Promise<void> {
    if (this.closing) return;
    const before = new Map(this.mirror.records);
    const dropped = await this.load(false);
    if (dropped.length > 0) await this.emitReset({ kind: 'dropped', records: dropped });
    const vanished = new Map<string, SessionRecord[]>();
    for (const rec of before.values()) {
      if (rec.node === this.nodeId || this.mirror.records.has(rec.jid)) continue;
      const list = vanished.get(rec.node);
      if (list) list.push(rec);
      else vanished.set(rec.node, [rec]);
    }
    for (const [node, records] of vanished) {
      if ((await this.cmd.exists(this.aliveKey(node))) > 0) continue;
      // Every node finds the same ones: one of them reports them, as the lost-node sweep does.
      const first = await this.cmd.set(`${this.prefix}lost-after-reset:${node}:${this.epoch ?? ''}`, this.nodeId, 'PX', 60_000, 'NX');
      if (first === 'OK') callAll(this.lostHandlers, node, records);
    }
  }

  private async emitReset(reset: StoreReset): Promise<void> {
    for (const h of this.resetHandlers) {
      try {
        await h(reset);
      } catch (err) {
        console.error('session store reset handler failed:', err);
      }
    }
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
    if (c.op === 'put') {
      this.mirror.set(c.rec);
      // The same full JID bound on another node since: that one is the session now.
      if (c.rec.node !== this.nodeId) this.own.delete(c.rec.jid);
    } else if (c.op === 'del') {
      this.mirror.delete(c.jid);
      if (c.node === this.nodeId) this.own.delete(c.jid);
    } else {
      const dropped: SessionRecord[] = [];
      for (const jid of c.jids) {
        const mine = c.node === this.nodeId && c.src !== this.src ? this.own.get(jid) : undefined;
        if (mine) {
          // Another node took this one for lost (it stalled past its alive key).
          this.own.delete(jid);
          dropped.push(mine);
        }
        this.mirror.delete(jid);
      }
      if (dropped.length > 0) void this.emitReset({ kind: 'dropped', records: dropped });
    }
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

  put(rec: SessionRecord): Promise<SessionRecord | null> {
    return rec.node === this.nodeId || this.own.has(rec.jid) ? this.writingOwn(rec.jid, () => this.write(rec)) : this.write(rec);
  }

  private async write(rec: SessionRecord): Promise<SessionRecord | null> {
    const { seq, echoed, cancel } = this.expectEcho();
    const change: Change = { op: 'put', rec, src: this.src, seq };
    try {
      const prev = await this.run(PUT, [this.hashKey], [rec.jid, JSON.stringify(rec), this.changesChannel, JSON.stringify(change)]);
      if (rec.node === this.nodeId) this.own.set(rec.jid, { ...rec });
      else this.own.delete(rec.jid);
      await echoed;
      return typeof prev === 'string' ? parseJson<SessionRecord>(prev) : null;
    } catch (err) {
      cancel();
      throw err;
    }
  }

  remove(jid: string, node: string): Promise<void> {
    return node === this.nodeId ? this.writingOwn(jid, () => this.erase(jid, node)) : this.erase(jid, node);
  }

  private async erase(jid: string, node: string): Promise<void> {
    if (node === this.nodeId && this.own.delete(jid)) {
      // Gone here whatever Redis answers: no more local delivery to it.
      if (this.mirror.records.get(jid)?.node === node) this.mirror.delete(jid);
    }
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
  private async drop(node: string, jids: string[], onlyIfLost = false): Promise<SessionRecord[]> {
    const out: SessionRecord[] = [];
    for (let i = 0; i < jids.length; i += DROP_CHUNK) {
      const { seq, echoed, cancel } = this.expectEcho();
      try {
        const args = [node, this.changesChannel, this.src, seq, onlyIfLost ? '1' : '0', ...jids.slice(i, i + DROP_CHUNK)];
        const removed = (await this.run(DROP, [this.hashKey, this.aliveKey(node)], args)) as string[];
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
    if (this.checking || this.closing || this.recovery || Date.now() < this.recoveringUntil) return;
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
        const removed = await this.drop(node, jids, true);
        if (removed.length > 0) callAll(this.lostHandlers, node, removed);
      }
    } finally {
      this.checking = false;
    }
  }

  async send(node: string, payload: string): Promise<void> {
    if (node === this.nodeId) return this.deliverHere(payload);
    // Known down for a while (not just restarting): refuse at once rather than queue.
    if (this.downSince !== null && Date.now() - this.downSince > 1000) throw new Error(`node ${node} cannot be reached: Redis is unreachable`);
    if ((await this.cmd.publish(this.nodeChannel(node), payload)) > 0) return;
    // Nobody subscribed (the node is down, cut off or resubscribing after a reconnect): retry briefly,
    // then say so, rather than let the payload vanish.
    const deadline = Date.now() + this.sendRetryMs;
    for (let wait = 50; ; wait = Math.min(wait * 2, 400)) {
      if (Date.now() + wait > deadline || this.closing) throw new Error(`node ${node} cannot be reached`);
      await sleep(wait);
      if ((await this.cmd.publish(this.nodeChannel(node), payload)) > 0) return;
    }
  }

  async broadcast(payload: string): Promise<void> {
    await this.cmd.publish(this.everyoneChannel, payload);
  }

  onNodeLost(handler: (node: string, records: SessionRecord[]) => void): void {
    this.lostHandlers.push(handler);
  }

  onHealth(handler: (health: StoreHealth) => void): void {
    this.healthHandlers.push(handler);
  }

  onReset(handler: (reset: StoreReset) => void | Promise<void>): void {
    this.resetHandlers.push(handler);
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
    const ttl = leaseTtl(ttlMs);
    // A free lease during the recovery window waits for it to end (its holder may be taking it back).
    const giveUp = Date.now() + this.recoveryWindowMs + 1000;
    for (;;) {
      const asked = Date.now();
      const r = await this.run(ACQUIRE_LEASE, [this.leaseKey(key), this.recoveringKey], [this.nodeId, ttl]);
      if (typeof r === 'number') {
        if (Date.now() > giveUp) return null;
        await sleep(Math.min(r, 200));
        continue;
      }
      const holder = typeof r === 'string' ? r : null;
      if (holder === this.nodeId) this.leaseUntil.set(key, asked + ttl);
      return holder;
    }
  }

  async reclaimLease(key: string, ttlMs: number): Promise<string | null> {
    const ttl = leaseTtl(ttlMs);
    const asked = Date.now();
    const r = await this.run(RECLAIM_LEASE, [this.leaseKey(key)], [this.nodeId, ttl]);
    const holder = typeof r === 'string' ? r : null;
    if (holder === this.nodeId) this.leaseUntil.set(key, asked + ttl);
    else this.leaseUntil.delete(key);
    return holder;
  }

  async renewLease(key: string, ttlMs: number): Promise<boolean> {
    const ttl = leaseTtl(ttlMs);
    const asked = Date.now();
    const r = await this.run(RENEW_LEASE, [this.leaseKey(key), this.epochKey], [this.nodeId, ttl, this.epoch ?? '']);
    if (r === 1) {
      this.leaseUntil.set(key, asked + ttl);
      return true;
    }
    if (r === -1) {
      // Redis came back empty and this node has not noticed yet: recover (the reset handlers take
      // the lease back), then answer for what holds now.
      await this.beat();
      await this.recovery;
      return this.holdsLease(key) && (await this.leaseHolder(key)) === this.nodeId;
    }
    this.leaseUntil.delete(key);
    return false;
  }

  async releaseLease(key: string): Promise<void> {
    this.leaseUntil.delete(key);
    await this.run(RELEASE_LEASE, [this.leaseKey(key)], [this.nodeId]);
  }

  holdsLease(key: string): boolean {
    return (this.leaseUntil.get(key) ?? 0) > Date.now();
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
    this.own.clear();
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

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
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
