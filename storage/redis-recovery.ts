/**
 * Node liveness and recovery for the Redis session store (docs/architecture.md, "When Redis restarts
 * or is cut off"): the heartbeat that refreshes this node's alive key and reads the epoch, the
 * write-back when Redis came back empty, the reload after a reconnect, and the watchdog for a
 * connection that went silent.
 */
import { randomUUID } from 'node:crypto';
import { callAll } from './session-memory.js';
import { RedisSessionTable } from './redis-sessions.js';
import { BEAT } from './redis-scripts.js';
import type { SessionRecord } from './types.js';

/** A resync that failed with both connections up is tried again after this long. */
const RESYNC_RETRY_MS = 500;

export abstract class RedisRecovery extends RedisSessionTable {
  private beating = false;
  /** The epoch this node last saw; another one means Redis lost everything meanwhile. */
  protected epoch: string | null = null;

  /** Refreshes the alive key; finds out whether Redis came back empty (and then recovers). */
  protected async beat(): Promise<void> {
    const epoch = await this.run(BEAT, [this.keys.alive(this.nodeId), this.keys.epoch, this.keys.recovering],
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
    const skipped = await this.restore(records);
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
      if ((await this.link.cmd.exists(this.keys.alive(node))) > 0) continue;
      // Every node finds the same ones: one of them reports them, as the lost-node sweep does.
      const first = await this.link.cmd.set(this.keys.lostAfterReset(node, this.epoch ?? ''), this.nodeId, 'PX', 60_000, 'NX');
      if (first === 'OK') callAll(this.lostHandlers, node, records);
    }
  }

  private resyncing: Promise<void> | null = null;
  private resyncAgain = false;
  private resubscribe = false;

  /**
   * After a connection came back (messages published meanwhile are lost): resubscribes if the subscriber
   * reconnected, finds out whether Redis came back empty, reloads the table and reports the sessions
   * other nodes removed meanwhile; only then is Redis reported up. Reported up before that, the node
   * would take stanzas from sessions the cluster has already ended: a room's owner elsewhere answers
   * them as from a non-occupant, to a session it cannot reach, and the sender's count says handled.
   */
  protected resync(resubscribe = false): Promise<void> {
    if (resubscribe) this.resubscribe = true;
    if (this.resyncing) {
      this.resyncAgain = true;
      return this.resyncing;
    }
    this.resyncing = this.resyncUntilDone().finally(() => { this.resyncing = null; });
    return this.resyncing;
  }

  private async resyncUntilDone(): Promise<void> {
    do {
      this.resyncAgain = false;
      if (this.closing || !this.started) return;
      // Both connections are needed; the other one's 'ready' runs this again.
      if (this.link.cmd.status !== 'ready' || this.link.sub.status !== 'ready') return;
      const resubscribing = this.resubscribe;
      this.resubscribe = false;
      try {
        if (resubscribing) await this.link.subscribe(this.channels());
        // Finds out first whether Redis came back empty (the write-back then keeps the mirror).
        await this.beat();
        await this.recovery;
        const dropped = await this.load(Date.now() < this.recoveringUntil);
        if (dropped.length > 0) await this.emitReset({ kind: 'dropped', records: dropped });
        this.markUp();
      } catch {
        this.resubscribe ||= resubscribing;
        // A reconnect runs this again; with both connections still up, nothing would: try again soon.
        const t = setTimeout(() => { this.timers = this.timers.filter((x) => x !== t); void this.resync(); }, RESYNC_RETRY_MS);
        t.unref();
        this.timers.push(t);
        return;
      }
    } while (this.resyncAgain);
  }

  protected channels(): string[] {
    return [this.keys.changes, this.keys.node(this.nodeId), this.keys.everyone];
  }

  /** The periodic beat, one at a time, with a watchdog for a connection that went silent. */
  protected async watchedBeat(): Promise<void> {
    if (this.beating) return;
    this.beating = true;
    const watchdog = setTimeout(() => {
      if (this.closing) return;
      this.markDown(`no answer from Redis in ${this.stallMs} ms`);
      // Nothing closed the socket, so nothing would reconnect it. Closing it on purpose fails every
      // command waiting on it now (a stanza's sender hears of it) instead of resending them later;
      // then the connections are made again.
      for (const r of [this.link.cmd, this.link.sub]) {
        // A connection already waiting to reconnect has nothing stuck on a silent socket.
        if (r.status !== 'ready' && r.status !== 'connect' && r.status !== 'connecting') continue;
        // Reconnected a turn later: the commands queued behind the silent ones (auto-pipelining sends
        // one batch at a time, the next as the stuck one fails) must fail now too. Reconnecting at
        // once would queue them for the new connection, where they would wait for the next watchdog.
        r.once('end', () => setTimeout(() => { if (!this.closing) r.connect().catch(() => {}); }, 0));
        r.disconnect(false);
        // disconnect() only half-closes, and over a silent network the close never completes.
        (r as { stream?: { destroy(): void } }).stream?.destroy();
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
}
