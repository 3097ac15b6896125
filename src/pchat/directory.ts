// The company directory as the access rules need it: for each user, the set of principal keys that
// cover them (the user, its domain, its org unit and every unit above, its groups and every group
// those sit in). The nesting of groups is small (thousands of edges) and kept whole in memory; a
// user's own entries are read on first use, many users per statement, and cached until the
// directory changes anywhere in the cluster (model.ts carries that news).
import { ouLineage } from '../../protocol/principal.js';
import type { DirectoryStore } from '../../storage/types.js';

/** What a directory change touched (see invalidate). */
export interface DirectoryScope {
  /** Users whose own groups or org unit changed. */
  users?: string[];
  /** Principal keys (group:X, ou:/P) whose holders' sets changed: every cached set holding one goes. */
  keys?: string[];
  /** The group nesting changed: read it again. */
  edges?: boolean;
}

/** How many users' principal sets are kept; the oldest go first beyond it. */
const DEFAULT_CAPACITY = 200_000;

export class Directory {
  /** group → the groups it is a direct member of. */
  private parents = new Map<string, string[]>();
  /** group → itself and every group above it (memoised per generation). */
  private lineage = new Map<string, readonly string[]>();
  private readonly sets = new Map<string, ReadonlySet<string>>();
  private readonly inflight = new Map<string, Promise<void>>();
  /** Bumped by every invalidation: a load that started before it does not fill the cache. */
  private generation = 0;
  private edgesLoaded: Promise<void> | null = null;

  constructor(private readonly store: DirectoryStore, private readonly capacity = DEFAULT_CAPACITY) {}

  /** The principal set of a user whose entries are cached, else undefined (see load). */
  peek(bare: string): ReadonlySet<string> | undefined {
    return this.sets.get(bare);
  }

  /**
   * Reads the entries of the users not cached yet and caches their sets. Users asked for in the same
   * turn of the event loop (concurrent joiners, a room's occupants) share one statement.
   */
  async load(bares: Iterable<string>): Promise<void> {
    const waits = new Set<Promise<void>>();
    for (const b of new Set(bares)) {
      if (this.sets.has(b)) continue;
      waits.add(this.inflight.get(b) ?? this.enqueue(b));
    }
    await Promise.all(waits);
  }

  private queued: string[] = [];
  private queuedRead: Promise<void> | null = null;

  private enqueue(bare: string): Promise<void> {
    let read = this.queuedRead;
    if (!read) {
      const batch = (this.queued = []);
      read = new Promise<void>((resolve) => setImmediate(resolve)).then(async () => {
        this.queuedRead = null;
        try {
          await this.fetch(batch);
        } finally {
          for (const b of batch) if (this.inflight.get(b) === read) this.inflight.delete(b);
        }
      });
      this.queuedRead = read;
    }
    this.queued.push(bare);
    this.inflight.set(bare, read);
    return read;
  }

  private async fetch(bares: string[]): Promise<void> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const gen = this.generation;
      await this.edges();
      const entries = await this.store.userEntries(bares);
      if (gen !== this.generation) continue; // the directory changed meanwhile: read again
      for (const bare of bares) this.remember(bare, this.compute(bare, entries.get(bare)));
      return;
    }
    // Changing under us three times in a row: serve what we read, uncached.
    const entries = await this.store.userEntries(bares);
    for (const bare of bares) if (!this.sets.has(bare)) this.sets.set(bare, this.compute(bare, entries.get(bare)));
  }

  private remember(bare: string, set: ReadonlySet<string>): void {
    if (this.sets.size >= this.capacity) {
      const oldest = this.sets.keys().next().value;
      if (oldest !== undefined) this.sets.delete(oldest);
    }
    this.sets.set(bare, set);
  }

  /** The principal set of a user with these direct entries. */
  compute(bare: string, entry: { groups: string[]; ou: string | null } | undefined): ReadonlySet<string> {
    const set = new Set<string>([bare]);
    const at = bare.lastIndexOf('@');
    set.add(`domain:${at >= 0 ? bare.slice(at + 1) : bare}`);
    if (entry?.ou) for (const p of ouLineage(entry.ou)) set.add(`ou:${p}`);
    if (entry) for (const g of entry.groups) for (const a of this.groupLineage(g)) set.add(`group:${a}`);
    return set;
  }

  /** The group and every group above it (cycles are cut). */
  groupLineage(group: string): readonly string[] {
    const known = this.lineage.get(group);
    if (known) return known;
    const seen = new Set<string>([group]);
    const stack = [group];
    while (stack.length > 0) {
      for (const p of this.parents.get(stack.pop()!) ?? []) {
        if (!seen.has(p)) { seen.add(p); stack.push(p); }
      }
    }
    const out = [...seen];
    this.lineage.set(group, out);
    return out;
  }

  /** Is a principal structurally inside one of the list's principals (itself, a group or unit above it, its domain)? */
  structurallyCovered(key: string, list: readonly string[]): boolean {
    const within = new Set(list);
    if (within.has(key)) return true;
    if (key.startsWith('group:')) return this.groupLineage(key.slice(6)).some((g) => within.has(`group:${g}`));
    if (key.startsWith('ou:')) return ouLineage(key.slice(3)).some((p) => within.has(`ou:${p}`));
    return false;
  }

  private edges(): Promise<void> {
    this.edgesLoaded ??= (async () => {
      const parents = new Map<string, string[]>();
      for (const { group, parent } of await this.store.groupEdges()) {
        const list = parents.get(group);
        if (list) list.push(parent);
        else parents.set(group, [parent]);
      }
      this.parents = parents;
      this.lineage = new Map();
    })().catch((e: unknown) => {
      this.edgesLoaded = null;
      throw e;
    });
    return this.edgesLoaded;
  }

  /** Loads the group nesting (at start). */
  async start(): Promise<void> {
    await this.edges();
  }

  /**
   * The directory changed. Without a scope: forget every set and the nesting, and read the nesting
   * again. With one: forget only the sets the change can have altered (the users named, and every set
   * holding a key named), so everyone else's next check stays warm.
   */
  async invalidate(scope?: DirectoryScope): Promise<void> {
    this.generation++;
    if (!scope) {
      this.sets.clear();
    } else {
      for (const u of scope.users ?? []) this.sets.delete(u);
      const keys = scope.keys ?? [];
      if (keys.length > 0) {
        for (const [bare, set] of this.sets) if (keys.some((k) => set.has(k))) this.sets.delete(bare);
      }
    }
    if (!scope || scope.edges) {
      this.edgesLoaded = null;
      await this.edges();
    }
  }

  get cached(): number {
    return this.sets.size;
  }
}
