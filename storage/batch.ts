interface Waiter<V> {
  promise: Promise<V>;
  resolve(value: V): void;
  reject(err: unknown): void;
}

/**
 * Loads every key asked for in one event-loop turn with a single call to `run`, so many concurrent
 * callers cost one database round trip instead of one each. Keys `run` leaves out of its map get
 * `fallback` (a function is called per key, for values callers may mutate).
 */
export class KeyBatcher<K, V> {
  private pending = new Map<K, Waiter<V>>();

  constructor(
    private readonly run: (keys: K[]) => Promise<Map<K, V>>,
    private readonly fallback: V | (() => V),
    private readonly maxBatch = 500,
  ) {}

  load(key: K): Promise<V> {
    const queued = this.pending.get(key);
    if (queued) return queued.promise;
    if (this.pending.size === 0) setImmediate(() => this.flush());
    let resolve!: (value: V) => void;
    let reject!: (err: unknown) => void;
    const promise = new Promise<V>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    this.pending.set(key, { promise, resolve, reject });
    return promise;
  }

  private flush(): void {
    const batch = this.pending;
    this.pending = new Map();
    const keys = [...batch.keys()];
    for (let i = 0; i < keys.length; i += this.maxBatch) {
      const chunk = keys.slice(i, i + this.maxBatch);
      Promise.resolve()
        .then(() => this.run(chunk))
        .then((found) => {
          for (const k of chunk) batch.get(k)!.resolve(found.has(k) ? (found.get(k) as V) : this.fallbackValue());
        })
        .catch((err: unknown) => {
          // Waiters already resolved ignore this.
          for (const k of chunk) batch.get(k)!.reject(err);
        });
    }
  }

  private fallbackValue(): V {
    return typeof this.fallback === 'function' ? (this.fallback as () => V)() : this.fallback;
  }
}
