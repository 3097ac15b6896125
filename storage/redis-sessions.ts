/**
 * The session table on Redis and this node's mirror of it (see storage/session-redis.ts for the
 * whole design): writes through scripts that publish their change, the change stream applied in
 * order, the table loaded whole, and the sweep for nodes whose alive key expired.
 */
import { callAll } from './session-memory.js';
import { DROP_CHUNK, RedisStoreBase, parseJson, type Change } from './redis-base.js';
import { DROP, PUT, REMOVE, RESTORE } from './redis-scripts.js';
import type { SessionRecord } from './types.js';

export abstract class RedisSessionTable extends RedisStoreBase {
  /** Non-null while loading the hash: changes received meanwhile, replayed after it. */
  private buffered: Change[] | null = null;
  private checking = false;
  /** This node's records: what it holds for sure, whatever Redis says (routing and write-back). */
  protected readonly own = new Map<string, SessionRecord>();
  /** Own JIDs with a write in flight, and those written while a load runs: a load must not judge them. */
  private readonly writing = new Map<string, number>();
  private touchedDuringLoad: Set<string> | null = null;
  /** Until then, after Redis came back empty, other nodes' records stay in the mirror. */
  protected recoveringUntil = 0;
  /** The write-back after Redis came back empty, while it runs. */
  protected recovery: Promise<void> | null = null;

  /**
   * Loads the table into the mirror. keepOthers (recovery window): records missing from Redis stay.
   * Returns this node's records that other nodes removed (they took it for lost); stale records of
   * this node that it no longer holds are removed from Redis. This node's records missing without
   * another node having removed them were lost by Redis (a failover to a replica that missed the last
   * writes): they are written back.
   */
  protected async load(keepOthers: boolean): Promise<SessionRecord[]> {
    this.buffered = [];
    let dropped: SessionRecord[] = [];
    const stale: string[] = [];
    this.touchedDuringLoad = new Set();
    let takenForLost = false;
    const lostByRedis: SessionRecord[] = [];
    try {
      const [all, mark] = await Promise.all([this.link.cmd.hgetall(this.keys.sessions), this.link.cmd.get(this.keys.droppedMark(this.nodeId))]);
      takenForLost = mark !== null;
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
        // Written back by the recovery, or by Redis that lost it; another node's now if it holds the JID.
        if (keepOthers) this.mirror.set(rec); // written back by the recovery
        else if (!takenForLost && !there) {
          this.mirror.set(rec);
          lostByRedis.push(rec);
        } else dropped.push(rec);
      }
      for (const rec of dropped) this.own.delete(rec.jid);
    } finally {
      this.touchedDuringLoad = null;
      const changes = this.buffered;
      this.buffered = null;
      for (const c of changes) this.apply(c);
    }
    if (takenForLost) await this.link.cmd.del(this.keys.droppedMark(this.nodeId)).catch(() => {});
    if (lostByRedis.length > 0) dropped = dropped.concat(await this.restore(lostByRedis));
    // Removed while Redis could not be reached (the session ended here meanwhile).
    if (stale.length > 0 && this.started) await this.drop(this.nodeId, stale).catch(() => {});
    return dropped;
  }

  /** Writes records of this node back; returns those it could not (another node holds the JID now). */
  protected async restore(records: SessionRecord[]): Promise<SessionRecord[]> {
    const skipped: SessionRecord[] = [];
    for (let i = 0; i < records.length; i += DROP_CHUNK) {
      const chunk = records.slice(i, i + DROP_CHUNK);
      const args: string[] = [this.link.publishCommand, this.keys.changes];
      for (const rec of chunk) {
        const change: Change = { op: 'put', rec, src: this.src, seq: 0 };
        args.push(rec.jid, JSON.stringify(rec), JSON.stringify(change));
      }
      const notWritten = new Set((await this.run(RESTORE, [this.keys.sessions], args)) as string[]);
      for (const rec of chunk) if (notWritten.has(rec.jid)) skipped.push(rec);
    }
    for (const rec of skipped) this.own.delete(rec.jid);
    return skipped;
  }

  protected onChange(message: string): void {
    const change = parseJson<Change>(message);
    if (!change) return;
    if (this.buffered) this.buffered.push(change);
    else this.apply(change);
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

  put(rec: SessionRecord): Promise<SessionRecord | null> {
    return rec.node === this.nodeId || this.own.has(rec.jid) ? this.writingOwn(rec.jid, () => this.write(rec)) : this.write(rec);
  }

  private async write(rec: SessionRecord): Promise<SessionRecord | null> {
    const { seq, echoed, cancel } = this.expectEcho();
    const change: Change = { op: 'put', rec, src: this.src, seq };
    try {
      const prev = await this.run(PUT, [this.keys.sessions], [rec.jid, JSON.stringify(rec), this.link.publishCommand, this.keys.changes, JSON.stringify(change)]);
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
      const removed = await this.run(REMOVE, [this.keys.sessions], [jid, node, this.link.publishCommand, this.keys.changes, JSON.stringify(change)]);
      if (removed === 1) await echoed;
      else cancel();
    } catch (err) {
      cancel();
      throw err;
    }
  }

  /** Removes the given records if still owned by node; returns those it removed. */
  protected async drop(node: string, jids: string[], onlyIfLost = false): Promise<SessionRecord[]> {
    const out: SessionRecord[] = [];
    for (let i = 0; i < jids.length; i += DROP_CHUNK) {
      const { seq, echoed, cancel } = this.expectEcho();
      try {
        const args = [node, this.link.publishCommand, this.keys.changes, this.src, seq, onlyIfLost ? '1' : '0', ...jids.slice(i, i + DROP_CHUNK)];
        const removed = (await this.run(DROP, [this.keys.sessions, this.keys.alive(node), this.keys.droppedMark(node)], args)) as string[];
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

  protected async checkNodes(): Promise<void> {
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
        if ((await this.link.cmd.exists(this.keys.alive(node))) > 0) continue;
        const removed = await this.drop(node, jids, true);
        if (removed.length > 0) callAll(this.lostHandlers, node, removed);
      }
    } finally {
      this.checking = false;
    }
  }
}
