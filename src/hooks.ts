// Named events that feature modules hook, in priority order (higher first). A handler that returns
// true consumes the event and stops the chain. Handlers may be async; a chain of synchronous handlers
// stays synchronous, so the hot path pays for no promise it does not need.
type Result = boolean | void;
export type Handler<T> = (event: T) => Result | Promise<Result>;

interface Entry<T> { handler: Handler<T>; priority: number }

export class Hooks<Events extends object> {
  private readonly chains = new Map<keyof Events, Entry<never>[]>();

  on<K extends keyof Events>(name: K, handler: Handler<Events[K]>, priority = 0): void {
    const chain = (this.chains.get(name) ?? []) as Entry<Events[K]>[];
    chain.push({ handler, priority });
    chain.sort((a, b) => b.priority - a.priority);
    this.chains.set(name, chain as Entry<never>[]);
  }

  has<K extends keyof Events>(name: K): boolean {
    return (this.chains.get(name)?.length ?? 0) > 0;
  }

  /** Runs the chain; true when some handler consumed the event. */
  fire<K extends keyof Events>(name: K, event: Events[K]): boolean | Promise<boolean> {
    const chain = this.chains.get(name) as Entry<Events[K]>[] | undefined;
    if (!chain) return false;
    for (let i = 0; i < chain.length; i++) {
      const r = chain[i]!.handler(event);
      if (r === true) return true;
      if (r instanceof Promise) return this.continueAsync(chain, i, r, event);
    }
    return false;
  }

  private async continueAsync<T>(chain: Entry<T>[], at: number, pending: Promise<Result>, event: T): Promise<boolean> {
    if ((await pending) === true) return true;
    // The rest as in fire: a synchronous handler costs no turn of its own.
    for (let i = at + 1; i < chain.length; i++) {
      const r = chain[i]!.handler(event);
      if (r === true) return true;
      if (r instanceof Promise && (await r) === true) return true;
    }
    return false;
  }
}
