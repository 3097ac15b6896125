// A room's ordered outbox: everything a room sends runs in the order the room decided it, and a
// slot taken for I/O (an archive commit) holds back whatever was emitted after it until released.
export interface OutSlot { ready: boolean; run: () => void }

export class Outbox {
  private readonly queue: OutSlot[] = [];

  constructor(private readonly onError: (e: unknown) => void) {}

  /** Runs now if nothing waits before it, else in turn. */
  emit(run: () => void): void {
    if (this.queue.length === 0) run();
    else this.queue.push({ ready: true, run });
  }

  /** Takes a place in the order, to be filled by release() once some I/O is done. */
  slot(): OutSlot {
    const item: OutSlot = { ready: false, run: () => {} };
    this.queue.push(item);
    return item;
  }

  release(item: OutSlot, run: () => void): void {
    item.run = run;
    item.ready = true;
    while (this.queue.length > 0 && this.queue[0]!.ready) {
      const next = this.queue.shift()!;
      try {
        next.run();
      } catch (e) {
        this.onError(e);
      }
    }
  }
}
