// Group commit for every archive write of a server (rooms and personal archives alike), and for the
// compliance events that must commit with them, in several lanes: each lane has its own batch in
// flight, so one slow commit holds only the archives whose entries are in it.
import type { ArchiveEntry, ArchiveStore, ComplianceEvent } from '../storage/types.js';
import { POSTGRES_POOL_SIZE } from '../storage/db-postgres.js';
import type { Server } from './context.js';

/**
 * Lanes on PostgreSQL: several batches in flight (measured in docs/benchmarks.md), leaving most of
 * the pool to queries and logins.
 */
export const ARCHIVE_LANES = Math.min(4, POSTGRES_POOL_SIZE - 2);

interface Queued {
  entry: ArchiveEntry | null;
  /** Entries that commit with entry, in the same statement (a one-to-one message's two copies). */
  also: ArchiveEntry[] | null;
  compliance: ComplianceEvent[] | null;
  resolve(): void;
  reject(err: unknown): void;
  /** Entries of these lanes, up to these positions, must settle first (an archive moved lanes). */
  after: { lane: Lane; at: number }[] | null;
}

/** One batch pipeline: items settle in the order they were queued. */
interface Lane {
  queue: Queued[];
  writing: boolean;
  /** Items ever queued in this lane, and settled: positions are counted from 1. */
  queued: number;
  done: number;
}

/** Where an archive's last unsettled item is; its next items go to the same lane, so they commit in order. */
interface Pin { lane: Lane; at: number }

/** What the writer reports per batch written (src/metrics.ts): entries in it and how long it took. */
export interface ArchiveWriterObserver {
  batch(entries: number, seconds: number): void;
}

/**
 * Group commit in lanes: entries queued while a lane's batch is being written go together in its next
 * one, so a busy server makes one INSERT per batch and lane rather than one per message.
 *
 * An archive with an unsettled entry is pinned to that entry's lane, so an archive's entries commit
 * in order and two lanes never write the same archive at once (its ids then follow the order its
 * entries were accepted in, which MAM paging relies on). An archive with nothing unsettled goes to the
 * least busy lane. An item naming archives pinned to two lanes (a one-to-one message whose two copies commit in
 * one statement) joins the first one's lane and waits there for the other lane's earlier entries of
 * its archives to settle: the waits point only to earlier items, so they always end. Promises
 * settle in each archive's order.
 */
export class ArchiveWriter {
  private readonly lanes: Lane[];
  private readonly pins = new Map<string, Pin>();
  private barriers: { at: number[]; resolve(): void }[] = [];

  /** Batches written and entries in them (metrics). */
  batches = 0;
  written = 0;

  private readonly observer: ArchiveWriterObserver | null;

  constructor(
    private readonly store: ArchiveStore,
    private readonly maxBatch = 500,
    opts: { lanes?: number; observer?: ArchiveWriterObserver } = {},
  ) {
    this.lanes = Array.from({ length: Math.max(1, opts.lanes ?? 1) }, () => ({ queue: [], writing: false, queued: 0, done: 0 }));
    this.observer = opts.observer ?? null;
  }

  get laneCount(): number {
    return this.lanes.length;
  }

  /** The callback form of append, for hot paths that need no promise: done(null) once committed. */
  write(entry: ArchiveEntry, done: (err: Error | null) => void): void {
    this.writeWith(entry, null, done);
  }

  /**
   * An archive entry (or none: a room with history off) and compliance events (or none) that commit
   * together, in the same batch statement; done(null) once committed.
   */
  writeWith(entry: ArchiveEntry | null, compliance: ComplianceEvent[] | null, done: (err: Error | null) => void): void {
    this.enqueue({ entry, also: null, compliance, resolve: () => done(null), reject: (e) => done(e instanceof Error ? e : new Error(String(e))), after: null });
  }

  /** Resolves once the entry (and those in also, in the same statement) is committed; rejects if its batch failed. */
  append(entry: ArchiveEntry, compliance: ComplianceEvent[] | null = null, also: ArchiveEntry[] | null = null): Promise<void> {
    return new Promise((resolve, reject) => this.enqueue({ entry, also, compliance, resolve, reject, after: null }));
  }

  /** Compliance events alone, committed in the next batch of their room's lane (joins, leaves, history reads). */
  capture(compliance: ComplianceEvent[]): Promise<void> {
    return new Promise((resolve, reject) => this.enqueue({ entry: null, also: null, compliance, resolve, reject, after: null }));
  }

  /** Resolves once everything queued so far is written (or failed). */
  flushed(): Promise<void> {
    if (this.lanes.every((l) => l.done === l.queued)) return Promise.resolve();
    return new Promise((resolve) => this.barriers.push({ at: this.lanes.map((l) => l.queued), resolve }));
  }

  private enqueue(q: Queued): void {
    // The archives the item writes: its entries', or for compliance events alone their rooms' (a
    // room's archive is its JID), so a room's events keep their order with its messages.
    let lane = this.lanes[0]!;
    if (this.lanes.length > 1) {
      const first = q.entry?.archive ?? q.compliance?.[0]?.room ?? null;
      lane = this.laneFor(first, q.also);
      if (first !== null) this.pin(first, lane, q);
      if (q.also) for (const e of q.also) this.pin(e.archive, lane, q);
      if (q.entry === null && q.compliance) for (const c of q.compliance) if (c.room !== null && c.room !== first) this.pin(c.room, lane, q);
    }
    lane.queued++;
    lane.queue.push(q);
    if (!lane.writing) {
      lane.writing = true;
      // Whatever else is queued in this turn of the event loop joins the first batch.
      setImmediate(() => void this.drain(lane));
    }
  }

  /** The lane of the first pinned archive among the item's, else the least busy (ties: the first archive's hash). */
  private laneFor(first: string | null, also: ArchiveEntry[] | null): Lane {
    if (first !== null) {
      const pin = this.pins.get(first);
      if (pin) return pin.lane;
    }
    if (also) for (const e of also) {
      const pin = this.pins.get(e.archive);
      if (pin) return pin.lane;
    }
    const n = this.lanes.length;
    const start = first === null ? 0 : hash(first) % n;
    let best = this.lanes[start]!;
    for (let i = 1; i < n && best.queued > best.done; i++) {
      const l = this.lanes[(start + i) % n]!;
      if (l.queued - l.done < best.queued - best.done) best = l;
    }
    return best;
  }

  private pin(archive: string, lane: Lane, q: Queued): void {
    const at = lane.queued + 1;
    const pin = this.pins.get(archive);
    if (!pin) { this.pins.set(archive, { lane, at }); return; }
    if (pin.lane !== lane && pin.lane.done < pin.at) (q.after ??= []).push({ lane: pin.lane, at: pin.at });
    pin.lane = lane;
    pin.at = at;
  }

  private unpin(archive: string, lane: Lane): void {
    const pin = this.pins.get(archive);
    if (pin && pin.lane === lane && pin.at <= lane.done) this.pins.delete(archive);
  }

  private async writeBatch(batch: Queued[]): Promise<void> {
    const entries: ArchiveEntry[] = [];
    let compliance: ComplianceEvent[] | undefined;
    for (const q of batch) {
      if (q.entry) entries.push(q.entry);
      if (q.also) entries.push(...q.also);
      if (q.compliance) (compliance ??= []).push(...q.compliance);
    }
    const t0 = this.observer ? performance.now() : 0;
    await this.store.write(entries, compliance);
    this.observer?.batch(entries.length, (performance.now() - t0) / 1000);
    this.batches++;
    this.written += batch.length;
  }

  /** How many items at the head of the lane may go now: those whose waits on other lanes are over. */
  private ready(lane: Lane): number {
    const limit = Math.min(lane.queue.length, this.maxBatch);
    let n = 0;
    for (; n < limit; n++) {
      const after = lane.queue[n]!.after;
      if (after && !after.every((a) => a.lane.done >= a.at)) break;
    }
    return n;
  }

  private async drain(lane: Lane): Promise<void> {
    for (let n = this.ready(lane); n > 0; n = this.ready(lane)) {
      const batch = n === lane.queue.length ? lane.queue : lane.queue.slice(0, n);
      lane.queue = n === lane.queue.length ? [] : lane.queue.slice(n);
      try {
        await this.writeBatch(batch);
        for (const q of batch) q.resolve();
      } catch (err) {
        // One bad entry (a key already stored, a value the database refuses) must not refuse the others
        // that shared its statement: each is tried alone. When the database itself is down they all fail.
        if (batch.length > 1 && !isConnectionError(err)) {
          for (const q of batch) {
            try {
              await this.writeBatch([q]);
              q.resolve();
            } catch (e) {
              q.reject(e);
            }
          }
        } else {
          for (const q of batch) q.reject(err);
        }
      }
      lane.done += batch.length;
      if (this.lanes.length > 1) for (const q of batch) this.settled(q, lane);
      if (this.barriers.length > 0) {
        this.barriers = this.barriers.filter((b) => (b.at.every((at, i) => this.lanes[i]!.done >= at) ? (b.resolve(), false) : true));
      }
      // A lane whose head waited for this one may go on.
      if (this.lanes.length > 1) for (const other of this.lanes) this.wake(other);
    }
    lane.writing = false;
  }

  private wake(lane: Lane): void {
    if (lane.writing || lane.queue.length === 0 || this.ready(lane) === 0) return;
    lane.writing = true;
    void this.drain(lane);
  }

  private settled(q: Queued, lane: Lane): void {
    const first = q.entry?.archive ?? q.compliance?.[0]?.room ?? null;
    if (first !== null) this.unpin(first, lane);
    if (q.also) for (const e of q.also) this.unpin(e.archive, lane);
    if (q.entry === null && q.compliance) for (const c of q.compliance) if (c.room !== null) this.unpin(c.room, lane);
  }
}

/** FNV-1a: a cheap, stable spread of archive names over lanes. */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** A failure of the connection rather than of the statement: trying each entry alone would not help. */
function isConnectionError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  // SQLSTATE classes 08 (connection exception) and 57 (operator intervention: shutdown, restart).
  if (typeof code === 'string') return code.startsWith('08') || code.startsWith('57');
  return true;
}

const writers = new WeakMap<Server, ArchiveWriter>();

/**
 * The server's archive writer, made on first use: on PostgreSQL ARCHIVE_LANES lanes (each holds a
 * pooled connection while its batch commits), on PGlite one (a single connection: lanes would queue).
 */
export function archiveWriter(server: Server): ArchiveWriter {
  let w = writers.get(server);
  if (!w) {
    const lanes = server.stores.db.kind === 'postgres' ? ARCHIVE_LANES : 1;
    const m = server.metrics;
    w = new ArchiveWriter(server.stores.archive, undefined, {
      lanes,
      observer: { batch: (entries, seconds) => { m.archiveBatchEntries.observe(entries); m.archiveCommitSeconds.observe(seconds); } },
    });
    writers.set(server, w);
  }
  return w;
}
