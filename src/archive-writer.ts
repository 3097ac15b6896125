// Group commit for every archive write of a server (rooms and personal archives alike), and for the
// compliance events that must commit with them: one writer per server, so concurrent messages share
// INSERTs whatever they are.
import type { ArchiveEntry, ArchiveStore, ComplianceEvent } from '../storage/types.js';
import type { Server } from './context.js';

interface Queued {
  entry: ArchiveEntry | null;
  /** Entries that commit with entry, in the same statement (a one-to-one message's two copies). */
  also: ArchiveEntry[] | null;
  compliance: ComplianceEvent[] | null;
  resolve(): void;
  reject(err: unknown): void;
}

/**
 * Group commit: entries queued while a batch is being written go together in the next one, so a
 * busy server makes one INSERT per batch rather than one per message. Promises settle in queue order.
 */
export class ArchiveWriter {
  private queue: Queued[] = [];
  private writing = false;
  private queuedCount = 0;
  private doneCount = 0;
  private barriers: { at: number; resolve(): void }[] = [];

  /** Batches written and entries in them (metrics). */
  batches = 0;
  written = 0;

  constructor(private readonly store: ArchiveStore, private readonly maxBatch = 500) {}

  /** The callback form of append, for hot paths that need no promise: done(null) once committed. */
  write(entry: ArchiveEntry, done: (err: Error | null) => void): void {
    this.writeWith(entry, null, done);
  }

  /**
   * An archive entry (or none: a room with history off) and compliance events (or none) that commit
   * together, in the same batch statement; done(null) once committed.
   */
  writeWith(entry: ArchiveEntry | null, compliance: ComplianceEvent[] | null, done: (err: Error | null) => void): void {
    this.enqueue({ entry, also: null, compliance, resolve: () => done(null), reject: (e) => done(e instanceof Error ? e : new Error(String(e))) });
  }

  /** Resolves once the entry (and those in also, in the same statement) is committed; rejects if its batch failed. */
  append(entry: ArchiveEntry, compliance: ComplianceEvent[] | null = null, also: ArchiveEntry[] | null = null): Promise<void> {
    return new Promise((resolve, reject) => this.enqueue({ entry, also, compliance, resolve, reject }));
  }

  /** Compliance events alone, committed in the next batch (joins, leaves, history reads). */
  capture(compliance: ComplianceEvent[]): Promise<void> {
    return new Promise((resolve, reject) => this.enqueue({ entry: null, also: null, compliance, resolve, reject }));
  }

  private enqueue(q: Queued): void {
    this.queue.push(q);
    this.queuedCount++;
    if (!this.writing) {
      this.writing = true;
      // Whatever else is queued in this turn of the event loop joins the first batch.
      setImmediate(() => void this.drain());
    }
  }

  /** Resolves once everything queued so far is written (or failed). */
  flushed(): Promise<void> {
    if (this.doneCount === this.queuedCount) return Promise.resolve();
    return new Promise((resolve) => this.barriers.push({ at: this.queuedCount, resolve }));
  }

  private async writeBatch(batch: Queued[]): Promise<void> {
    const entries: ArchiveEntry[] = [];
    let compliance: ComplianceEvent[] | undefined;
    for (const q of batch) {
      if (q.entry) entries.push(q.entry);
      if (q.also) entries.push(...q.also);
      if (q.compliance) (compliance ??= []).push(...q.compliance);
    }
    await this.store.append(entries, compliance);
    this.batches++;
    this.written += batch.length;
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.length <= this.maxBatch ? this.queue : this.queue.slice(0, this.maxBatch);
      this.queue = this.queue.length <= this.maxBatch ? [] : this.queue.slice(this.maxBatch);
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
      this.doneCount += batch.length;
      if (this.barriers.length > 0) {
        this.barriers = this.barriers.filter((b) => (b.at <= this.doneCount ? (b.resolve(), false) : true));
      }
    }
    this.writing = false;
  }
}


/** A failure of the connection rather than of the statement: trying each entry alone would not help. */
function isConnectionError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  // SQLSTATE classes 08 (connection exception) and 57 (operator intervention: shutdown, restart).
  if (typeof code === 'string') return code.startsWith('08') || code.startsWith('57');
  return true;
}

const writers = new WeakMap<Server, ArchiveWriter>();

/** The server's archive writer, made on first use. */
export function archiveWriter(server: Server): ArchiveWriter {
  let w = writers.get(server);
  if (!w) writers.set(server, (w = new ArchiveWriter(server.stores.archive)));
  return w;
}
