// The session store's interfaces: where every bound resource of the cluster is, the messages nodes
// send each other, room leases, and how the backend (Redis, or this process) reports its health.
// One contract suite (test/session-store-contract.test.ts) proves the backends equal.

/** One bound resource, wherever in the cluster it lives. */
export interface SessionRecord {
  /** Full JID. */
  jid: string;
  /** Node that holds the connection. */
  node: string;
  /** Priority of the last available presence; meaningless when !available. */
  priority: number;
  /** Sent initial presence and not yet unavailable. */
  available: boolean;
  /** Last broadcast available presence, serialised, for probes from other nodes. */
  presence: string | null;
  /** Asked for its roster (RFC 6121 "interested resource"): gets roster pushes. */
  interested: boolean;
  /** XEP-0280 carbons enabled. */
  carbons: boolean;
  since: number;
}

/** How SessionStore.send tries. */
export interface SendOptions {
  /** false: one try, rejected at once when nobody listens (default true: retried briefly). */
  retry?: boolean;
}

/**
 * Sessions, presence and cross-node routing. Every node keeps a mirror of the whole session table so
 * routing decisions are synchronous map look-ups; writes go through the backend and reach every
 * node's mirror.
 */
export interface SessionStore {
  readonly nodeId: string;
  start(): Promise<void>;
  /** Stores or replaces the record for rec.jid; returns the record it replaced, if any. */
  put(rec: SessionRecord): Promise<SessionRecord | null>;
  /** Removes rec for jid if it still belongs to node. */
  remove(jid: string, node: string): Promise<void>;
  get(jid: string): SessionRecord | undefined;
  /** Every resource of a bare JID, any node (a list the store shares: never changed by the caller). */
  resources(bareJid: string): readonly SessionRecord[];
  count(): number;
  list(): SessionRecord[];
  /**
   * Delivers payload to node's onMessage handler (possibly this node). Rejects when nobody listens for
   * that node (down, cut off, or never there) after retrying briefly (at once with retry false): the
   * payload was not delivered.
   */
  send(node: string, payload: string, opts?: SendOptions): Promise<void>;
  /** Delivers payload to every node's onMessage handler, this one included (pub/sub: nodes up now). */
  broadcast(payload: string): Promise<void>;
  onMessage(handler: (payload: string) => void): void;
  /** Called with the records of a node that stopped heart-beating, after they were removed. */
  onNodeLost(handler: (node: string, records: SessionRecord[]) => void): void;
  /** Cluster-wide counter that expires ttlSeconds after its first increment (throttling). */
  hit(key: string, ttlSeconds: number): Promise<number>;
  resetHits(key: string): Promise<void>;
  /**
   * Cluster lease (one holder at a time, e.g. a room's owning node). Takes the lease if it is free or
   * expired, renews it for ttlMs if this node already holds it; returns the node holding it after the
   * call (this node, or the other holder). A holder that stops renewing loses it after ttlMs.
   */
  acquireLease(key: string, ttlMs: number): Promise<string | null>;
  /** Extends the lease to ttlMs from now only if this node still holds it; true if it did. */
  renewLease(key: string, ttlMs: number): Promise<boolean>;
  /** renewLease for many leases at once (fewer round trips and scripts); one answer per key, in order. */
  renewLeases(keys: readonly string[], ttlMs: number): Promise<boolean[]>;
  /** Frees the lease only if this node holds it; never releases another node's lease. */
  releaseLease(key: string): Promise<void>;
  /** The node currently holding the lease, or null if it is free. */
  leaseHolder(key: string): Promise<string | null>;
  /**
   * Small shared state beside the sessions, one hash per key (a room's occupants, so that the node
   * that takes a room over knows who is in it). A null value deletes the field.
   */
  stateSet(key: string, field: string, value: string | null): Promise<void>;
  stateGetAll(key: string): Promise<Record<string, string>>;
  stateDelete(key: string): Promise<void>;
  /**
   * Takes the lease again after the store lost it (StoreReset 'empty'): as acquireLease, but not held
   * back by the recovery window in which other nodes wait for the previous holders to come back.
   */
  reclaimLease(key: string, ttlMs: number): Promise<string | null>;
  /**
   * True while this node's last successful take or renewal of the lease, counted from when it was
   * asked, has not run out: past that another node may hold it, whatever this node was told.
   * Synchronous and local, so it stays true or false while the store is unreachable.
   */
  holdsLease(key: string): boolean;
  /**
   * Reachability of the backend: called once per change (down with the first error; up once it answers
   * again and this node has caught up: resubscribed, and what the store lost or the other nodes removed
   * meanwhile reported through onReset first).
   */
  onHealth(handler: (health: StoreHealth) => void): void;
  /** The backend lost what this node had written (see StoreReset); handlers run in turn and are awaited. */
  onReset(handler: (reset: StoreReset) => void | Promise<void>): void;
  /** Redis Sentinel: a sentinel lost (once per outage) or reached again; never called on other backends. */
  onSentinel(handler: (report: SentinelReport) => void): void;
  close(): Promise<void>;
}

/** A sentinel the store's failover detector lost (up: false, with the error) or reached again (up: true). */
export interface SentinelReport {
  /** host:port, as the store was given it or a sentinel announced it. */
  address: string;
  up: boolean;
  error?: string;
  /** When up again: how long it was unreachable. */
  downMs?: number;
}

export interface StoreHealth {
  up: boolean;
  /** The error that made it down. */
  error?: string;
  /** When up again: how long it was down. */
  downMs?: number;
}

/**
 * What a node finds when the shared backend comes back.
 * - 'empty': the backend came back without this node's state (restarted without persistence). The
 *   store has written this node's session records and alive key back before the handlers run; they
 *   re-assert the rest (room leases with reclaimLease, shared state). Other nodes wait out a short
 *   recovery window before they take leases, so the previous holders get theirs back first.
 * - 'dropped': other nodes took this node for lost while it was cut off and removed these records
 *   cluster-wide (contacts were told the sessions went, rooms let them go): their sessions must end.
 */
export type StoreReset =
  | { kind: 'empty'; records: SessionRecord[] }
  | { kind: 'dropped'; records: SessionRecord[] };
