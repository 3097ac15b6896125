// Store interfaces. The server talks only to these; each backend is one file that implements them,
// and one contract suite (test/storage-contract.test.ts) proves the backends equal.

/** SQL access shared by PostgreSQL (`pg`) and PGlite: the SQL text is identical on both. */
export interface Db {
  readonly kind: 'postgres' | 'pglite';
  query<T = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<T[]>;
  /** Runs fn inside BEGIN/COMMIT on one connection; ROLLBACK when it throws. */
  transaction<R>(fn: (tx: DbTx) => Promise<R>): Promise<R>;
  close(): Promise<void>;
}
export interface DbTx {
  query<T = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<T[]>;
}

/** Salted SCRAM keys: the only form in which a password is ever stored. */
export interface StoredScram {
  salt: Buffer;
  iterations: number;
  storedKey: Buffer;
  serverKey: Buffer;
}
export interface StoredCredentials {
  sha1: StoredScram;
  sha256: StoredScram;
}
export interface UserRecord {
  username: string;
  disabled: boolean;
  createdAt: Date;
  credentials: StoredCredentials;
}

export interface UserStore {
  /** false when the user already exists. */
  create(username: string, credentials: StoredCredentials): Promise<boolean>;
  get(username: string): Promise<UserRecord | null>;
  setCredentials(username: string, credentials: StoredCredentials): Promise<boolean>;
  setDisabled(username: string, disabled: boolean): Promise<boolean>;
  /** Deletes the user and everything stored for them (roster, offline, user data). */
  delete(username: string): Promise<boolean>;
  list(): Promise<string[]>;
  count(): Promise<number>;
}

export type Subscription = 'none' | 'to' | 'from' | 'both';
export interface RosterItem {
  jid: string;
  name: string | null;
  subscription: Subscription;
  /** We asked the contact for a subscription and wait for the answer (ask='subscribe'). */
  askOut: boolean;
  /** Subscription pre-approved by the user (RFC 6121 §3.4). */
  approved: boolean;
  groups: string[];
}
export interface Roster {
  version: number;
  items: RosterItem[];
}
export interface RosterStore {
  get(username: string): Promise<Roster>;
  getItem(username: string, jid: string): Promise<RosterItem | null>;
  /** Inserts or replaces; returns the roster's new version. */
  put(username: string, item: RosterItem): Promise<number>;
  /** Returns the new version, or null when there was no such item. */
  remove(username: string, jid: string): Promise<number | null>;
  /** Inbound subscription requests waiting for the user's answer, with the original stanza. */
  putPendingIn(username: string, jid: string, stanza: string): Promise<void>;
  removePendingIn(username: string, jid: string): Promise<boolean>;
  listPendingIn(username: string): Promise<{ jid: string; stanza: string }[]>;
}

export interface OfflineMessage {
  id: number;
  stanza: string;
  stamp: Date;
}
export interface OfflineStore {
  /** Returns false when the user's offline queue is full (limit given by the caller). */
  push(username: string, stanza: string, limit: number): Promise<boolean>;
  /** Removes and returns every queued message, oldest first. */
  take(username: string): Promise<OfflineMessage[]>;
  count(username: string): Promise<number>;
}

/** Small per-user documents keyed by kind and key: vCards, private XML, block lists, preferences. */
export interface UserDataStore {
  get(username: string, kind: string, key: string): Promise<string | null>;
  put(username: string, kind: string, key: string, value: string): Promise<void>;
  delete(username: string, kind: string, key: string): Promise<boolean>;
  list(username: string, kind: string): Promise<{ key: string; value: string }[]>;
  clear(username: string, kind: string): Promise<number>;
}

export interface DataStores {
  db: Db;
  users: UserStore;
  roster: RosterStore;
  offline: OfflineStore;
  userData: UserDataStore;
}

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
  /** Every resource of a bare JID, any node. */
  resources(bareJid: string): SessionRecord[];
  count(): number;
  list(): SessionRecord[];
  /** Delivers payload to node's onMessage handler (possibly this node). */
  send(node: string, payload: string): Promise<void>;
  onMessage(handler: (payload: string) => void): void;
  /** Called with the records of a node that stopped heart-beating, after they were removed. */
  onNodeLost(handler: (node: string, records: SessionRecord[]) => void): void;
  /** Cluster-wide counter that expires ttlSeconds after its first increment (throttling). */
  hit(key: string, ttlSeconds: number): Promise<number>;
  resetHits(key: string): Promise<void>;
  close(): Promise<void>;
}
