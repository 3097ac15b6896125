/**
 * Cluster session store on Redis: one server, a master watched by Sentinel, or a Redis Cluster
 * (storage/redis-connection.ts). The store is this class; its parts are split by concern:
 * redis-connection.ts (URLs, connections, key names, pub/sub), redis-scripts.ts (the Lua scripts),
 * redis-base.ts (what the parts share), redis-sessions.ts (the table and its mirror),
 * redis-recovery.ts (liveness and recovery), redis-leases.ts (leases).
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
 * On a Redis Cluster, pub/sub is sharded (SPUBLISH/SSUBSCRIBE) and the table's keys share one hash tag.
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
 *   removed by another node that took this one for lost (which leaves `<prefix>dropped:N`): their
 *   sessions are reported ('dropped'); missing with no such mark, Redis lost them (a Sentinel failover
 *   to a replica that missed the last writes) and they are written back. A lease this node still
 *   counts on that Redis lost that way is taken again on its next renewal.
 * - send() checks that someone listens on the node's channel (PUBLISH counts receivers), retries
 *   briefly, then rejects, so a payload for a node that cannot be reached is never dropped in silence.
 * - Every connection has an error handler; reachability is reported once per change (onHealth), and up
 *   only after the resync above: what the node missed is reported before it counts itself back.
 */
import { randomUUID } from 'node:crypto';
import { callAll } from './session-memory.js';
import { RedisLeases } from './redis-leases.js';
import { quit, type RedisClient } from './redis-connection.js';
import { sleep, type RedisSessionStoreOptions } from './redis-base.js';
import { HIT } from './redis-scripts.js';
import type { SendOptions, SessionStore } from './types.js';

export { broadcastToNodes } from './redis-connection.js';
export type { RedisSessionStoreOptions } from './redis-base.js';

/** A payload for another node that nobody took yet, sent again until its deadline. */
interface Unsent {
  seq: number;
  payload: string;
  deadline: number;
  resolve: () => void;
  reject: (e: unknown) => void;
}

export class RedisSessionStore extends RedisLeases implements SessionStore {
  /** Per node, the payloads waiting to be sent again, in the order send was called. */
  private readonly unsent = new Map<string, Unsent[]>();
  private sendSeq = 0;

  constructor(opts: RedisSessionStoreOptions) {
    super(opts);
    this.link.cmd.on('ready', () => {
      if (!this.started || this.closing) return;
      void this.resync(false);
    });
  }

  start(): Promise<void> {
    this.starting ??= this.doStart().catch((err: unknown) => {
      this.link.cmd.disconnect();
      this.link.sub.disconnect();
      throw err;
    });
    return this.starting;
  }

  private async doStart(): Promise<void> {
    this.link.onMessage((channel, message) => this.onChannelMessage(channel, message));
    await Promise.all([this.link.cmd.connect(), this.link.sub.connect()]);
    // The first node of a fresh cluster names the epoch; no recovery window for that.
    await this.link.cmd.set(this.keys.epoch, randomUUID(), 'NX');
    this.epoch = await this.link.cmd.get(this.keys.epoch);
    await this.beat();
    await this.link.subscribe(this.channels());
    await this.load(false);
    // Records left by an earlier process with this node id: nobody holds those connections now.
    const stale = this.list().filter((r) => r.node === this.nodeId);
    if (stale.length > 0) await this.drop(this.nodeId, stale.map((r) => r.jid));
    // Messages published while the subscription was down are lost: reload after a reconnect.
    this.link.sub.on('ready', () => void this.resync(true));
    this.started = true;
    this.every(this.heartbeatMs, () => this.watchedBeat());
    this.every(this.checkMs, () => this.checkNodes());
  }

  private onChannelMessage(channel: string, message: string): void {
    if (channel === this.keys.changes) this.onChange(message);
    else if (channel === this.keys.node(this.nodeId) || channel === this.keys.everyone) callAll(this.messageHandlers, message);
  }

  async send(node: string, payload: string, opts: SendOptions = {}): Promise<void> {
    if (node === this.nodeId) return this.deliverHere(payload);
    // Known down for a while (not just restarting): refuse at once rather than queue.
    if (this.downSince !== null && Date.now() - this.downSince > 1000) throw new Error(`node ${node} cannot be reached: Redis is unreachable`);
    const seq = ++this.sendSeq;
    // Earlier payloads for the node wait to be sent again: this one goes after them, never ahead. One
    // try (retry: false) is made at once whatever waits: its caller goes on without it when it fails.
    if (!this.unsent.has(node) || opts.retry === false) {
      if ((await this.link.publish(this.keys.node(node), payload)) > 0) return;
    }
    if (opts.retry === false) throw new Error(`node ${node} cannot be reached`);
    // Nobody subscribed (the node is down, cut off or resubscribing after a reconnect): retry briefly,
    // then say so, rather than let the payload vanish.
    return new Promise<void>((resolve, reject) => {
      const entry: Unsent = { seq, payload, deadline: Date.now() + this.sendRetryMs, resolve, reject };
      const queue = this.unsent.get(node);
      if (!queue) {
        this.unsent.set(node, [entry]);
        void this.sendAgain(node);
        return;
      }
      // In the order send was called: a publish that failed after a later one was queued goes before it.
      let i = queue.length;
      while (i > 0 && queue[i - 1]!.seq > seq) i--;
      queue.splice(i, 0, entry);
    });
  }

  /**
   * Sends a node's waiting payloads again, oldest first, each until it reaches the node or its time
   * is up: a payload that fails once and reaches the node on a retry never arrives after one sent
   * later (a room's messages fanned out while the node resubscribed would otherwise come out of order).
   * When the head gives up, those behind it give up with it, in order: sent on their own, they could
   * reach the node ahead of it while its caller holds it to send again (cluster-held.ts).
   */
  private async sendAgain(node: string): Promise<void> {
    const queue = this.unsent.get(node)!;
    const channel = this.keys.node(node);
    let wait = 50;
    let failure: unknown = null;
    while (queue.length > 0) {
      const head = queue[0]!;
      if (this.closing || Date.now() + wait > head.deadline) {
        failure = new Error(`node ${node} cannot be reached`);
        break;
      }
      if (wait > 0) await sleep(wait);
      try {
        if ((await this.link.publish(channel, head.payload)) > 0) {
          queue.shift();
          head.resolve();
          wait = 0;
          continue;
        }
      } catch (e) {
        failure = e;
        break;
      }
      wait = wait === 0 ? 50 : Math.min(wait * 2, 400);
    }
    this.unsent.delete(node);
    for (const entry of queue.splice(0)) entry.reject(failure);
  }

  async broadcast(payload: string): Promise<void> {
    await this.link.publish(this.keys.everyone, payload);
  }

  async hit(key: string, ttlSeconds: number): Promise<number> {
    return Number(await this.run(HIT, [this.keys.hits(key)], [ttlSeconds]));
  }

  async resetHits(key: string): Promise<void> {
    await this.link.cmd.del(this.keys.hits(key));
  }

  async stateSet(key: string, field: string, value: string | null): Promise<void> {
    if (value === null) await this.link.cmd.hdel(this.keys.state(key), field);
    else await this.link.cmd.hset(this.keys.state(key), field, value);
  }

  stateGetAll(key: string): Promise<Record<string, string>> {
    return this.link.cmd.hgetall(this.keys.state(key));
  }

  async stateDelete(key: string): Promise<void> {
    await this.link.cmd.del(this.keys.state(key));
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
        await this.link.cmd.del(this.keys.alive(this.nodeId));
      } catch {
        // Unreachable Redis: the other nodes clean up once the alive key expires.
      }
    }
    await Promise.all([quit(this.link.cmd), quit(this.link.sub)]);
    this.mirror.clear();
    this.own.clear();
  }

  /** Test hook: drops both connections with no clean-up, as a killed process would. */
  crash(): void {
    this.closing ??= Promise.resolve();
    this.stopTimers();
    for (const r of [this.link.cmd, this.link.sub] as RedisClient[]) r.disconnect();
  }
}
