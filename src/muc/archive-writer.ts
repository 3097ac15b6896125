// Group commit for room archives: messages that arrive while a write is in flight go out together in
// the next multi-row INSERT, so a busy node makes one database round trip per batch, not per message.
// A message is fanned out only once its batch has committed.
import type { ArchiveEntry, ArchiveStore } from '../../storage/types.js';

const MAX_BATCH = 500;

interface Pending {
  entry: ArchiveEntry;
  done: (err: Error | null) => void;
}

export class ArchiveWriter {
  private queue: Pending[] = [];
  private writing = false;
  /** Batches written and messages in them (metrics). */
  batches = 0;
  written = 0;

  constructor(private readonly store: ArchiveStore) {}

  /** Calls done(null) once the entry is committed, done(err) if its batch failed. */
  write(entry: ArchiveEntry, done: (err: Error | null) => void): void {
    this.queue.push({ entry, done });
    if (!this.writing) void this.flush();
  }

  private async flush(): Promise<void> {
    this.writing = true;
    while (this.queue.length > 0) {
      const batch = this.queue.length <= MAX_BATCH ? this.queue : this.queue.slice(0, MAX_BATCH);
      this.queue = this.queue.length <= MAX_BATCH ? [] : this.queue.slice(MAX_BATCH);
      let err: Error | null = null;
      try {
        await this.store.append(batch.map((p) => p.entry));
        this.batches++;
        this.written += batch.length;
      } catch (e) {
        err = e instanceof Error ? e : new Error(String(e));
      }
      for (const p of batch) p.done(err);
    }
    this.writing = false;
  }

  /** Resolves when everything queued so far is written. */
  async drain(): Promise<void> {
    while (this.writing || this.queue.length > 0) await new Promise((r) => setTimeout(r, 5));
  }
}
