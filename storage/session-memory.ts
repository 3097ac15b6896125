import type { SentinelReport, SessionRecord, SessionStore, StoreHealth, StoreReset } from './types.js';

export function bareOf(jid: string): string {
  const slash = jid.indexOf('/');
  return slash < 0 ? jid : jid.slice(0, slash);
}

const NO_RECORDS: readonly SessionRecord[] = Object.freeze([]);

/**
 * Session table mirror shared by both session stores: full JID → record, bare JID → its records. A
 * bare JID's list is replaced, never changed, when a record comes or goes, so resources() hands out
 * the list itself: routing asks for it several times per message (delivery, carbons, archiving).
 */
export class SessionMirror {
  readonly records = new Map<string, SessionRecord>();
  private readonly byBare = new Map<string, readonly SessionRecord[]>();

  set(rec: SessionRecord): void {
    this.records.set(rec.jid, rec);
    const bare = bareOf(rec.jid);
    const list = this.byBare.get(bare) ?? NO_RECORDS;
    const at = list.findIndex((r) => r.jid === rec.jid);
    this.byBare.set(bare, at === -1 ? [...list, rec] : list.map((r, i) => (i === at ? rec : r)));
  }
  delete(jid: string): void {
    if (!this.records.delete(jid)) return;
    const bare = bareOf(jid);
    const rest = (this.byBare.get(bare) ?? NO_RECORDS).filter((r) => r.jid !== jid);
    if (rest.length === 0) this.byBare.delete(bare);
    else this.byBare.set(bare, rest);
  }
  clear(): void {
    this.records.clear();
    this.byBare.clear();
  }
  resources(bareJid: string): readonly SessionRecord[] {
    return this.byBare.get(bareJid) ?? NO_RECORDS;
  }
}

/** Calls each handler, keeping one failing handler from starving the others. */
export function callAll<A extends unknown[]>(handlers: ((...args: A) => void)[], ...args: A): void {
  for (const h of handlers) {
    try {
      h(...args);
    } catch (err) {
      console.error('session store handler failed:', err);
    }
  }
}

/**
 * What both session stores share: the in-memory mirror every routing look-up reads, and delivery of
 * payloads addressed to this node.
 */
export abstract class MirroredSessionStore {
  protected readonly mirror = new SessionMirror();
  protected readonly messageHandlers: ((payload: string) => void)[] = [];

  constructor(readonly nodeId: string) {}

  get(jid: string): SessionRecord | undefined {
    return this.mirror.records.get(jid);
  }

  resources(bareJid: string): readonly SessionRecord[] {
    return this.mirror.resources(bareJid);
  }

  count(): number {
    return this.mirror.records.size;
  }

  list(): SessionRecord[] {
    return [...this.mirror.records.values()];
  }

  onMessage(handler: (payload: string) => void): void {
    this.messageHandlers.push(handler);
  }

  protected deliverHere(payload: string): void {
    queueMicrotask(() => callAll(this.messageHandlers, payload));
  }
}

const SWEEP_MS = 60_000;

/** Lease TTL in whole milliseconds; rejects values that would make a lease never or always expire. */
export function leaseTtl(ttlMs: number): number {
  if (!Number.isFinite(ttlMs) || ttlMs <= 0) throw new RangeError(`lease TTL must be a positive number of ms, got ${ttlMs}`);
  return Math.ceil(ttlMs);
}

/** In-process lease table: key → holder and expiry. Can be shared by several stores to stand for nodes. */
export class MemoryLeases {
  private readonly leases = new Map<string, { holder: string; expires: number }>();
  /** Shared state hashes (SessionStore.stateSet), cluster-wide like the leases. */
  readonly state = new Map<string, Map<string, string>>();
  private lastSweep = Date.now();

  holder(key: string, now = Date.now()): string | null {
    const lease = this.leases.get(key);
    if (!lease) return null;
    if (lease.expires > now) return lease.holder;
    this.leases.delete(key);
    return null;
  }

  acquire(key: string, node: string, ttlMs: number): string {
    const now = Date.now();
    this.sweep(now);
    const holder = this.holder(key, now);
    if (holder !== null && holder !== node) return holder;
    this.leases.set(key, { holder: node, expires: now + ttlMs });
    return node;
  }

  renew(key: string, node: string, ttlMs: number): boolean {
    const now = Date.now();
    if (this.holder(key, now) !== node) return false;
    this.leases.set(key, { holder: node, expires: now + ttlMs });
    return true;
  }

  release(key: string, node: string): void {
    if (this.holder(key) === node) this.leases.delete(key);
  }

  private sweep(now: number): void {
    if (now - this.lastSweep <= SWEEP_MS) return;
    this.lastSweep = now;
    for (const [k, lease] of this.leases) if (lease.expires <= now) this.leases.delete(k);
  }
}

/** Single-node session store: everything lives in this process. */
export class MemorySessionStore extends MirroredSessionStore implements SessionStore {
  private readonly hits = new Map<string, { count: number; expires: number }>();
  private lastSweep = Date.now();

  /** leases: pass one table to several stores to have them contend as nodes of one cluster (tests). */
  constructor(
    nodeId: string,
    private readonly leases: MemoryLeases = new MemoryLeases(),
  ) {
    super(nodeId);
  }

  async start(): Promise<void> {}

  async put(rec: SessionRecord): Promise<SessionRecord | null> {
    const prev = this.mirror.records.get(rec.jid) ?? null;
    this.mirror.set({ ...rec });
    return prev;
  }

  async remove(jid: string, node: string): Promise<void> {
    if (this.mirror.records.get(jid)?.node === node) this.mirror.delete(jid);
  }

  async send(node: string, payload: string): Promise<void> {
    // There is no other node to reach: as on Redis, a payload nobody can take is an error, not a loss.
    if (node !== this.nodeId) throw new Error(`node ${node} cannot be reached`);
    this.deliverHere(payload);
  }

  async broadcast(payload: string): Promise<void> {
    this.deliverHere(payload);
  }

  onNodeLost(_handler: (node: string, records: SessionRecord[]) => void): void {
    // A single node never loses another.
  }

  async hit(key: string, ttlSeconds: number): Promise<number> {
    const now = Date.now();
    if (now - this.lastSweep > SWEEP_MS) {
      this.lastSweep = now;
      for (const [k, h] of this.hits) if (h.expires <= now) this.hits.delete(k);
    }
    const h = this.hits.get(key);
    if (!h || h.expires <= now) {
      this.hits.set(key, { count: 1, expires: now + ttlSeconds * 1000 });
      return 1;
    }
    return ++h.count;
  }

  async resetHits(key: string): Promise<void> {
    this.hits.delete(key);
  }

  async acquireLease(key: string, ttlMs: number): Promise<string | null> {
    return this.leases.acquire(key, this.nodeId, leaseTtl(ttlMs));
  }

  async renewLease(key: string, ttlMs: number): Promise<boolean> {
    return this.leases.renew(key, this.nodeId, leaseTtl(ttlMs));
  }

  async renewLeases(keys: readonly string[], ttlMs: number): Promise<boolean[]> {
    return keys.map((k) => this.leases.renew(k, this.nodeId, leaseTtl(ttlMs)));
  }

  async releaseLease(key: string): Promise<void> {
    this.leases.release(key, this.nodeId);
  }

  async leaseHolder(key: string): Promise<string | null> {
    return this.leases.holder(key);
  }

  async reclaimLease(key: string, ttlMs: number): Promise<string | null> {
    return this.leases.acquire(key, this.nodeId, leaseTtl(ttlMs));
  }

  holdsLease(key: string): boolean {
    return this.leases.holder(key) === this.nodeId;
  }

  onHealth(_handler: (health: StoreHealth) => void): void {
    // Always up: the store is this process.
  }

  onSentinel(_handler: (report: SentinelReport) => void): void {
    // No sentinels: the store is this process.
  }

  onReset(_handler: (reset: StoreReset) => void | Promise<void>): void {
    // Nothing outside this process can lose its state.
  }

  async stateSet(key: string, field: string, value: string | null): Promise<void> {
    const state = this.leases.state;
    let h = state.get(key);
    if (value === null) {
      h?.delete(field);
      if (h?.size === 0) state.delete(key);
      return;
    }
    if (!h) state.set(key, (h = new Map()));
    h.set(field, value);
  }

  async stateGetAll(key: string): Promise<Record<string, string>> {
    return Object.fromEntries(this.leases.state.get(key) ?? []);
  }

  async stateDelete(key: string): Promise<void> {
    this.leases.state.delete(key);
  }

  async close(): Promise<void> {
    this.mirror.clear();
    this.hits.clear();
  }
}
