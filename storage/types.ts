// Store interfaces. The server talks only to these; each backend is one file that implements them,
// and one contract suite (test/storage-contract.test.ts) proves the backends equal.

/** SQL access shared by PostgreSQL (`pg`) and PGlite: the SQL text is identical on both. */
export interface Db {
  readonly kind: 'postgres' | 'pglite';
  query<T = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<T[]>;
  /**
   * A query whose best plan is the same whatever its parameters (an archive's rows in id order from
   * a cursor): planned once per connection, not at each call. Not for a query whose plan should
   * follow its values (a filter on a sender or a word, where one archive's values are skewed).
   */
  queryPlannedOnce<T = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<T[]>;
  /**
   * A read parsed once per connection (a prepared statement) and planned as PostgreSQL's plan cache
   * decides: for its values at each call while that is cheaper than one plan for all. For the
   * statements every login runs (a lookup by account), where parsing cost more than the lookup.
   */
  queryPrepared<T = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<T[]>;
  /** Runs fn inside BEGIN/COMMIT on one connection; ROLLBACK when it throws. */
  transaction<R>(fn: (tx: DbTx) => Promise<R>): Promise<R>;
  /**
   * Opens every connection the Db may hold and runs `reads` on each, given a Db bound to it (on
   * PostgreSQL one connection of each pool, all at once). A new backend starts with cold catalog
   * caches and each prepared statement unplanned: the first requests after a start each paid for
   * one, 5-6 ms. Resolves to the number of connections warmed.
   */
  warm(reads: (conn: Db) => Promise<void>): Promise<number>;
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
  /**
   * null for an account imported from a server that kept SCRAM-SHA-1 keys only (XEP-0227): it signs
   * in with SCRAM-SHA-1 or PLAIN until a PLAIN sign-in or a new password derives these.
   */
  sha256: StoredScram | null;
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

/**
 * What an account's first available presence reads (RFC 6121 §4.2.2, §3.1.3, XEP-0160): its roster,
 * the subscription requests waiting for it and how many messages wait in offline storage, read
 * together from one snapshot (one statement on SQL, shared by the logins of one event-loop turn).
 */
export interface SessionStart {
  roster: Roster;
  pendingIn: { jid: string; stanza: string }[];
  /** Messages in offline storage: none means there is nothing to take (no write at login). */
  offlineCount: number;
}
export interface SessionStartStore {
  read(username: string): Promise<SessionStart>;
}

/** A stored affiliation (XEP-0045 §5.2); 'none' is the absence of an entry. */
export type RoomAffiliation = 'owner' | 'admin' | 'member' | 'outcast';

export interface RoomSubject {
  text: string;
  /** Nick of the occupant who set it; empty when the room itself did. */
  nick: string;
  stamp: Date;
}

/** A multi-user chat room (XEP-0045), keyed by its service domain and localpart. */
export interface RoomRecord {
  service: string;
  name: string;
  /** Room configuration as the MUC module keeps it; `public: true` marks a room listed in disco#items. */
  config: Record<string, unknown>;
  /** Bare JID to affiliation. */
  affiliations: Record<string, RoomAffiliation>;
  subject: RoomSubject | null;
  createdAt: Date;
  persistent: boolean;
}

export interface RoomListOptions {
  /** Only rooms whose config has `public: true` and not `locked: true`. */
  publicOnly?: boolean;
  /** Page starts after this room name (byte order). */
  after?: string;
  limit: number;
}

export interface RoomStore {
  get(service: string, name: string): Promise<RoomRecord | null>;
  /** Inserts or replaces the whole record. */
  put(room: RoomRecord): Promise<void>;
  delete(service: string, name: string): Promise<boolean>;
  /** Rooms of one service ordered by name (byte order). */
  list(service: string, opts: RoomListOptions): Promise<RoomRecord[]>;
  /** publicOnly: only rooms a public listing shows (public, and not locked awaiting configuration). */
  count(service: string, opts?: { publicOnly?: boolean }): Promise<number>;
  /** Sets or ('none') removes one affiliation; false when there is no such room. */
  setAffiliation(service: string, name: string, jid: string, affiliation: RoomAffiliation | 'none'): Promise<boolean>;
}

/** One message to archive (XEP-0313); stanzaId is chosen by the caller and unique per archive. */
export interface ArchiveEntry {
  /** Room JID, or the user's bare JID for a personal archive. */
  archive: string;
  stanzaId: string;
  stamp: Date;
  /** Occupant JID (room@service/nick) in a room archive; the sender's JID otherwise. */
  fromJid: string;
  /** Sender's bare JID; null when the archive's owner itself sent it (e.g. a room subject). */
  realJid: string | null;
  /** Text searched by full-text queries; null for messages without a body. */
  body: string | null;
  /** The serialised stanza. */
  stanza: string;
}

export interface ArchivedMessage extends ArchiveEntry {
  /** Archive-wide insertion order. */
  id: number;
  /** Replaced by a tombstone (XEP-0424); body is then null. */
  retracted: boolean;
}

export interface ArchiveQuery {
  /** Entries stamped on or after start and on or before end. */
  start?: Date;
  end?: Date;
  /** Both given: both must match. */
  with?: { occupant?: string; realJid?: string };
  /** Only entries strictly after / before this stanza id (XEP-0313 after-id / before-id). */
  afterId?: string;
  beforeId?: string;
  /** Only these stanza ids (XEP-0313 ids). */
  ids?: string[];
  /** Words that must all occur in the body, any case; the result set is then ordered newest first. */
  fulltext?: string;
  /**
   * Text the body must match (search and the admin's remove-messages share it); the result set is
   * then ordered newest first, as with fulltext. Both given: both must match.
   */
  match?: ArchiveMatch;
  /** Only entries by one of these authors: real bare JIDs, or occupant JIDs (room@service/nick); either matches. Newest first, as a search. */
  authors?: { realJids?: string[]; occupants?: string[] };
  /** XEP-0059 paging in the result set's order: the page starts after this stanza id. */
  after?: string;
  /** The page ends just before this stanza id, or true (an empty <before/>) for the last page. */
  before?: string | true;
  /** Position of the first entry wanted, when neither after nor before is given (XEP-0059 §2.6). */
  index?: number;
  /** Largest page; 0 asks for the count alone. */
  limit: number;
}

/**
 * Keywords or a phrase a body must match. all: every word (as a word, any case unless caseSensitive);
 * any: at least one word; exact: the text as typed, as a substring (any case unless caseSensitive).
 * A text with no word matches nothing.
 */
export interface ArchiveMatch {
  text: string;
  mode: 'all' | 'any' | 'exact';
  caseSensitive: boolean;
}

/**
 * A search across several archives (the rooms of a MUC service a user may read): the result set is
 * ordered newest first by row id (ArchivedMessage.id, unique table-wide), which is also the cursor.
 */
export interface ArchiveSearch {
  start?: Date;
  end?: Date;
  fulltext?: string;
  match?: ArchiveMatch;
  /**
   * Entries by one of these authors: occupant JIDs (room@service/nick) anywhere; real bare JIDs only
   * in the archives of realJidArchives when given (where the requester may see real JIDs).
   */
  authors?: { realJids?: string[]; occupants?: string[]; realJidArchives?: string[] };
  /** The page starts after the entry with this row id (older ones). */
  after?: number;
  /** The page ends just before the entry with this row id (newer ones), or true for the last page. */
  before?: number | true;
  /** Position of the first entry wanted, when neither after nor before is given (XEP-0059 §2.6). */
  index?: number;
  /** Largest page; 0 asks for the count alone. */
  limit: number;
}

export interface ArchiveQueryResult {
  /** The page, in the result set's order (oldest first, or newest first with fulltext, match or authors). */
  entries: ArchivedMessage[];
  /** The page reaches the end of the result set in the paging direction (its start when paging backwards). */
  complete: boolean;
  /** Entries matching the filters, whatever the page. */
  count?: number;
  /** Position of the page's first entry in the result set; absent for an empty page. */
  firstIndex?: number;
  /** after, before, afterId or beforeId names no entry of this archive (item-not-found); entries is empty. */
  notFound?: boolean;
}

export interface ArchiveStore {
  /**
   * Appends a batch in one statement, in order; returns each entry's id, in input order. Compliance
   * events given go in the same statement: both commit or neither does.
   */
  append(entries: ArchiveEntry[], compliance?: ComplianceEvent[]): Promise<{ id: number; stanzaId: string }[]>;
  /** The same statement without returning the ids (the group-commit writer, which needs none). */
  write(entries: ArchiveEntry[], compliance?: ComplianceEvent[]): Promise<void>;
  query(archive: string, q: ArchiveQuery): Promise<ArchiveQueryResult>;
  get(archive: string, stanzaId: string): Promise<ArchivedMessage | null>;
  /**
   * The newest entries for a room's join history, oldest first: at most n, none older than since,
   * and the newest ones whose stanzas together have at most maxChars characters.
   */
  lastN(archive: string, n: number, opts?: { maxChars?: number; since?: Date }): Promise<ArchivedMessage[]>;
  /** Marks the entry retracted, replacing its stanza by the tombstone and dropping its body; false when missing. */
  retract(archive: string, stanzaId: string, tombstoneStanza: string): Promise<boolean>;
  /**
   * Entries after the one with this stanza id whose stored stanza contains one of texts (how a later
   * message names it), oldest first, at most limit, retracted ones left out: what a retraction takes
   * with it. It reads the archive after that message, so it is for rare operations only.
   */
  mentioning(archive: string, stanzaId: string, texts: string[], limit: number): Promise<ArchivedMessage[]>;
  /** Deletes every entry of one archive (a deleted account's); returns how many there were. */
  removeArchive(archive: string): Promise<number>;
  /**
   * Deletes the oldest entries stamped on or before `before`, at most limit of them in one statement
   * (an administrator's clear runs it until it returns less than limit); returns how many went.
   */
  deleteBefore(archive: string, before: Date, limit: number): Promise<number>;
  /**
   * Rewrites entries in one statement (an administrator's remove or replace): each named stanza id
   * gets the new stanza, body (null: none, so searches no longer find it) and retracted flag. Returns
   * the stanza ids found.
   */
  rewrite(archive: string, entries: ArchiveRewrite[]): Promise<string[]>;
  /** Entries and bytes (UTF-8 octets of the stored stanzas) of each archive asked about; absent: empty. */
  sizes(archives: string[]): Promise<Map<string, ArchiveSize>>;
  /**
   * Folds the size deltas every write appends into the kept sizes (sizes reads both, so it answers the
   * same before and after): fewer rows for sizes to sum. Skipped while another fold runs.
   */
  foldCounts(): Promise<void>;
  /** Searches these archives together, newest first (an empty list finds nothing); count as query's. */
  search(archives: string[], q: ArchiveSearch): Promise<ArchiveQueryResult>;
}

export interface ArchiveRewrite { stanzaId: string; stanza: string; body: string | null; retracted: boolean }
export interface ArchiveSize { messages: number; bytes: number }

// --- Directory and persistent chat ----------------------------------------------------------------
// Principal keys are the canonical strings of protocol/principal.ts: 'alice@example.org',
// 'group:sales', 'ou:/corp/emea', 'domain:example.org'.

export interface GroupRecord {
  /** Canonical (lower-case) name. */
  name: string;
  description: string;
  /** Direct members: user keys and 'group:NAME' keys (nested groups). */
  members: string[];
}
export interface GroupSummary { name: string; description: string; members: number }
export interface OrgUnitRecord { path: string; description: string; users: number }

/** Groups (nested), org units and the users' places in them. Users are the accounts (or any bare JID). */
export interface DirectoryStore {
  /** Creates the group or updates its description; true when created. */
  putGroup(name: string, description: string): Promise<boolean>;
  getGroup(name: string): Promise<GroupRecord | null>;
  listGroups(): Promise<GroupSummary[]>;
  /** Deletes the group, its member rows and its rows as a member of other groups; false when absent. */
  deleteGroup(name: string): Promise<boolean>;
  /** Adds and removes direct members (keys); clear first when clear is set. False when the group is absent. */
  editGroupMembers(name: string, edit: { add: string[]; remove: string[]; clear?: boolean }): Promise<boolean>;
  /** Every nesting edge: group is a direct member of parent. */
  groupEdges(): Promise<{ group: string; parent: string }[]>;
  /** Direct groups and the org unit of each user asked about (users with neither are absent). */
  userEntries(users: string[]): Promise<Map<string, { groups: string[]; ou: string | null }>>;
  /** Creates or updates an org unit; true when created. Parents need not exist. */
  putOrgUnit(path: string, description: string): Promise<boolean>;
  listOrgUnits(): Promise<OrgUnitRecord[]>;
  /** Deletes an org unit; false when absent, 'not-empty' when users sit in it or in a unit below it. */
  deleteOrgUnit(path: string): Promise<boolean | 'not-empty'>;
  /** Puts a user into an org unit (null: none). The unit must exist: false otherwise. */
  setUserOrgUnit(user: string, path: string | null): Promise<boolean>;
  /**
   * The users a principal covers (a user itself; a group's members, nested; an org unit's subtree;
   * every known user of a domain: accounts of serverDomain and users placed in groups or units),
   * sorted, at most limit.
   */
  expandUsers(principal: string, serverDomain: string, limit: number): Promise<string[]>;
}

export type RoomPrivacy = 'open' | 'closed' | 'secret';
export type RoomKind = 'normal' | 'auditorium';

export interface CategoryRecord {
  service: string;
  /** Display name, unique per service case-insensitively. */
  name: string;
  description: string;
  allowed: string[];
  denied: string[];
  creators: string[];
  invitations: boolean;
  fileUpload: boolean;
  chatHistory: boolean;
  /** Authors may correct and retract their posted messages (XEP-0308, XEP-0424); false forbids it in every room of the category. */
  editing: boolean;
}

/** A room's persistent-chat settings, keyed by service and the room JID's localpart (never changes). */
export interface ChatRoomRecord {
  service: string;
  room: string;
  /** Category name (canonical: as stored in its record). */
  category: string;
  /** Display name, unique per service case-insensitively (default: the localpart). */
  name: string;
  description: string;
  privacy: RoomPrivacy;
  type: RoomKind;
  invitations: 'inherit' | 'off';
  disabled: boolean;
  addin: string | null;
  /** null: inherit the category's scope. */
  members: string[] | null;
  managers: string[];
  presenters: string[];
  createdAt: Date;
}

export interface AddinRecord { service: string; name: string; url: string }

export interface ChatServiceSettings {
  defaultHistory: number;
  maxFileSizeKb: number;
  participantUpdateLimit: number;
  roomManagementUrl: string;
}
export const DEFAULT_CHAT_SETTINGS: ChatServiceSettings = { defaultHistory: 30, maxFileSizeKb: 20000, participantUpdateLimit: 75, roomManagementUrl: '' };

/** Persistent chat on or off: scope 'global' (subject ''), 'group' (group name) or 'user' (bare JID). */
export interface ChatPolicyRecord { scope: 'global' | 'group' | 'user'; subject: string; enabled: boolean }

export interface InvitationRecord { id: number; user: string; service: string; room: string; inviter: string; at: Date }

/** Categories, room settings, add-ins, service settings, policies and invitations. */
export interface ChatStore {
  categories(service: string): Promise<CategoryRecord[]>;
  /** Inserts or replaces by name (case-insensitive); rename by passing previousName. Throws NameTaken when the new name is another's. */
  putCategory(rec: CategoryRecord, previousName?: string): Promise<void>;
  /** false when absent, 'not-empty' when rooms are in it. */
  deleteCategory(service: string, name: string): Promise<boolean | 'not-empty'>;
  rooms(service: string): Promise<ChatRoomRecord[]>;
  room(service: string, room: string): Promise<ChatRoomRecord | null>;
  /** Inserts or replaces; throws NameTaken when the display name is another room's or a category's. */
  putRoom(rec: ChatRoomRecord): Promise<void>;
  deleteRoom(service: string, room: string): Promise<boolean>;
  addins(service: string): Promise<AddinRecord[]>;
  /** Inserts or replaces by name; rename with previousName. */
  putAddin(rec: AddinRecord, previousName?: string): Promise<void>;
  deleteAddin(service: string, name: string): Promise<boolean>;
  settings(service: string): Promise<ChatServiceSettings>;
  putSettings(service: string, settings: ChatServiceSettings): Promise<void>;
  policies(): Promise<ChatPolicyRecord[]>;
  /** null removes the entry (global: back to the default, on). */
  setPolicy(scope: ChatPolicyRecord['scope'], subject: string, enabled: boolean | null): Promise<void>;
  /** Stores invitations and returns them with their ids (increasing). */
  addInvitations(items: Omit<InvitationRecord, 'id' | 'at'>[]): Promise<InvitationRecord[]>;
  invitations(user: string, afterId: number, limit: number): Promise<InvitationRecord[]>;
}

/** A display name already used in this service (by a room or a category). */
export class NameTaken extends Error {
  constructor(readonly taken: string, readonly by: 'room' | 'category' | 'addin') {
    super(`the name ${taken} is already used by a ${by}`);
  }
}

/** What the compliance capture records (the original's JOIN, PART, CHAT, BACKCHAT, FILEUPLOAD, FILEDOWNLOAD, and searches). */
export type ComplianceKind = 'join' | 'part' | 'chat' | 'backchat' | 'search' | 'upload' | 'download';

/** One captured action, written in the same transaction as the action itself. */
export interface ComplianceEvent {
  kind: ComplianceKind;
  stamp: Date;
  /** The room's bare JID; null for an action outside any room (a personal upload, a download by link). */
  room: string | null;
  /** The user's real bare JID; '' when Perch cannot tell who it is (a download by bare link). */
  actor: string;
  /** The room nick, where the action was an occupant's. */
  nick: string | null;
  /**
   * chat: the body; backchat: what was read (e.g. "join history: 20 messages", "mam: …"); search: the
   * query as text; upload and download: the stored file name (id.ext).
   */
  content: string;
  /** chat: the room's stanza id (XEP-0359). */
  messageId: string | null;
  /** Anything else worth keeping, as JSON (file size and type, search fields, the client's address …). */
  detail: Record<string, unknown> | null;
}
export interface ComplianceRecord extends ComplianceEvent { id: number }

/** Settings of capture and export, one set for the whole deployment (stored in the database). */
export interface ComplianceConfig {
  /** Capture on or off; off captures nothing (the original: no adapter, no compliance data). */
  enabled: boolean;
  /** Output format: the original's XmlAdapter XML, the Actiance layout, or JSON Lines. */
  format: 'xml' | 'actiance' | 'jsonl';
  /** Where export files go; '' means <dataDir>/compliance. */
  outputDirectory: string;
  /** Seconds between runs: 60 to 2,592,000 (1 minute to 30 days), default 900. */
  runIntervalSeconds: number;
  oneRoomPerFile: boolean;
  addRoomDetails: boolean;
  addUserDetails: boolean;
  /** A manifest of file transfers beside each output file (the original's .ATTACH files). */
  attachmentsManifest: boolean;
}
export const DEFAULT_COMPLIANCE_CONFIG: ComplianceConfig = {
  enabled: false, format: 'xml', outputDirectory: '', runIntervalSeconds: 900,
  oneRoomPerFile: false, addRoomDetails: false, addUserDetails: false, attachmentsManifest: false,
};

/** An export run: the events with from < id <= to, fixed when the run was opened. */
export interface ComplianceRun {
  id: number;
  node: string;
  fromId: number;
  toId: number;
  startedAt: Date;
  finishedAt: Date | null;
  events: number;
  files: string[];
  /** Who was in each room when the run's period ended (room → participants), for the next run's start. */
  present: Record<string, CompliancePresence[]>;
  error: string | null;
}
export interface CompliancePresence { actor: string; nick: string | null }

export interface ComplianceStore {
  /** Appends events in one statement (the capture's own writes; archive rows use ArchiveStore.append). */
  append(events: ComplianceEvent[]): Promise<void>;
  /** Events with after < id <= upTo, in id order, at most limit. */
  read(after: number, upTo: number, limit: number): Promise<ComplianceRecord[]>;
  /** Events waiting for export. */
  count(): Promise<number>;
  getConfig(): Promise<ComplianceConfig>;
  /** Stores the whole configuration (callers validate). */
  setConfig(config: ComplianceConfig): Promise<void>;
  /**
   * Takes or renews the exporter's lease for ttlMs: true when holder has it now (it was free, expired
   * or already holder's). One node exports at a time.
   */
  claimLease(holder: string, ttlMs: number): Promise<boolean>;
  releaseLease(holder: string): Promise<void>;
  /** Who holds the exporter's lease and until when; null when nobody does (or it expired). */
  leaseHolder(): Promise<{ holder: string; expires: Date } | null>;
  /** When the last run finished (null before the first). */
  lastRunAt(): Promise<Date | null>;
  /** The oldest run not finished (a run a dead node left), if any. */
  unfinishedRun(): Promise<ComplianceRun | null>;
  /**
   * Opens a run over every event committed so far and not in an earlier run: it waits for inserts in
   * flight (a short table lock), so no event with a lower id can commit later. null when there is none.
   */
  openRun(node: string): Promise<ComplianceRun | null>;
  /**
   * Records where an unfinished run is about to write its files (absolute paths), before it writes
   * them: a node finishing the run after a crash, under another configuration, removes those it does
   * not write itself. finishRun then stores the file names.
   */
  planRunFiles(runId: number, paths: string[]): Promise<void>;
  /** Deletes the run's events and marks it finished with its files, in one transaction; sets lastRunAt. */
  finishRun(runId: number, files: string[], events: number, present: Record<string, CompliancePresence[]>): Promise<void>;
  /** The last finished run (its present list starts the next period). */
  lastFinishedRun(): Promise<ComplianceRun | null>;
  /** Marks a run that found nothing to do, so lastRunAt moves on. */
  touchLastRun(): Promise<void>;
  /** Recent runs, newest first. */
  runs(limit: number): Promise<ComplianceRun[]>;
}

export interface DataStores {
  db: Db;
  users: UserStore;
  roster: RosterStore;
  offline: OfflineStore;
  userData: UserDataStore;
  sessionStart: SessionStartStore;
  rooms: RoomStore;
  archive: ArchiveStore;
  directory: DirectoryStore;
  chat: ChatStore;
  transfer: TransferStore;
  compliance: ComplianceStore;
  uploads: UploadStore;
}

/** An archived message as exported and imported: the entry and whether it was retracted. */
export interface TransferMessage extends ArchiveEntry { retracted: boolean }

/**
 * Whole-database reads in pages and idempotent writes, for export and import (src/data/): what the
 * other stores do not offer because the server itself never needs it.
 */
export interface TransferStore {
  /** Users ordered by username (byte order), after the given one. */
  users(after: string | null, limit: number): Promise<UserRecord[]>;
  /** Inserts or replaces a user: credentials, disabled flag and creation time as given. */
  putUser(rec: UserRecord): Promise<void>;
  /** Every user-data document of a user, by kind then key. */
  userData(username: string): Promise<{ kind: string; key: string; value: string }[]>;
  /** A user's offline queue, oldest first, without taking it. */
  offline(username: string): Promise<{ stanza: string; stamp: Date }[]>;
  /** Queues these messages with their stamps, except those already queued (same stanza and stamp); returns how many were added. */
  restoreOffline(username: string, messages: { stanza: string; stamp: Date }[]): Promise<number>;
  /** Every user's org unit, ordered by user. */
  userOrgUnits(): Promise<{ user: string; path: string }[]>;
  /** Invitations of every user, by id. */
  invitations(afterId: number, limit: number): Promise<InvitationRecord[]>;
  /** Stores invitations with their time, except those already stored (same user, room, inviter and time); returns how many were added. */
  restoreInvitations(items: Omit<InvitationRecord, 'id'>[]): Promise<number>;
  /**
   * Archived messages by id, after afterId: only those stamped on or after since, only these archives,
   * only archives whose JID's domain is one of domains (each filter when given).
   */
  messages(opts: { afterId: number; limit: number; since?: Date; archives?: string[]; domains?: string[] }): Promise<ArchivedMessage[]>;
  /** Which of these (archive, stanza id) pairs are archived, as `archive + ' ' + stanzaId`. */
  existingMessages(keys: { archive: string; stanzaId: string }[]): Promise<Set<string>>;
  /** Archives messages not archived yet (same archive and stanza id: skipped); returns how many were added. */
  restoreMessages(entries: TransferMessage[]): Promise<number>;
}

// The cluster's session store (Redis, or in process): its interfaces have a file of their own.
export type { SendOptions, SentinelReport, SessionRecord, SessionStore, StoreHealth, StoreReset } from './session-types.js';

/** An uploaded file's row (XEP-0363): a reserved slot until its bytes are stored, then a stored file. */
export interface UploadFile {
  /** Random, URL-safe; also the blob's key and the first part of its stored name. */
  id: string;
  /** The GET URL's secret (a capability: whoever holds the link may read the file). */
  token: string;
  /** The PUT URL's secret, good until expiresAt while the slot is pending. */
  putToken: string;
  /** The uploader's bare JID. */
  owner: string;
  /** The room's bare JID; null for a personal upload (one-to-one chats). */
  room: string | null;
  /** The file name the client gave. */
  name: string;
  contentType: string;
  size: number;
  state: 'pending' | 'stored';
  createdAt: Date;
  storedAt: Date | null;
  /** Pending: when the slot lapses. */
  expiresAt: Date;
  /** Found in an archived message by the expiry job: kept for good. */
  referenced: boolean;
}

/** What a new slot reserves. */
export type NewUpload = Omit<UploadFile, 'state' | 'createdAt' | 'storedAt' | 'referenced'>;

/** Byte limits checked when a slot is reserved (stored files plus pending slots); null: no limit. */
export interface UploadQuotas { user: number | null; service: number | null }

export type ReserveResult =
  | { ok: true }
  /** retryAt: when the earliest pending slot of that scope lapses (room may be freed then), or null. */
  | { ok: false; quota: 'user' | 'service'; used: number; retryAt: Date | null };

export interface UploadUsage { owner: string; files: number; bytes: number; pending: number }

export interface UploadStore {
  /** Inserts the slot when the quotas allow it (checked and inserted under one lock). */
  reserve(file: NewUpload, quotas: UploadQuotas): Promise<ReserveResult>;
  get(id: string): Promise<UploadFile | null>;
  /**
   * pending → stored, with these compliance events in the same transaction; false when the slot is
   * not pending (already stored, lapsed and removed). A failed event write fails the whole call.
   */
  markStored(id: string, compliance: ComplianceEvent[]): Promise<boolean>;
  /** Newest first; filters are ANDed. */
  list(filter: { owner?: string; room?: string; state?: UploadFile['state'] }, limit: number): Promise<UploadFile[]>;
  /** Totals per owner (stored bytes and files, pending slots), largest first. */
  usage(limit: number): Promise<UploadUsage[]>;
  /** The whole service's totals. */
  totals(): Promise<{ files: number; bytes: number; pending: number }>;
  /** Removes the row; returns it (its blob is the caller's to delete), or null. */
  delete(id: string): Promise<UploadFile | null>;
  /** Pending slots that lapsed before this instant. */
  lapsed(before: Date, limit: number): Promise<UploadFile[]>;
  /** Stored, not yet found referenced, stored before this instant: candidates for expiry. */
  unreferenced(storedBefore: Date, limit: number): Promise<UploadFile[]>;
  markReferenced(ids: string[]): Promise<void>;
  /** Does any message of this archive (a room's, or a user's personal archive) mention the text? */
  mentionedIn(archive: string, text: string): Promise<boolean>;
}

/** Bytes of a file, by key. A directory on disk now; an S3-compatible bucket can implement the same. */
export interface BlobStore {
  /**
   * Streams the body to a temporary name and renames it to the key once exactly `size` bytes arrived
   * and are durable. Rejects (and leaves nothing behind) when the body is shorter, longer or fails.
   */
  put(key: string, body: NodeJS.ReadableStream, size: number): Promise<void>;
  /** The bytes from start to end inclusive (the whole blob without a range); null when absent. */
  get(key: string, range?: { start: number; end: number }): Promise<NodeJS.ReadableStream | null>;
  stat(key: string): Promise<{ size: number } | null>;
  /** false when absent. */
  delete(key: string): Promise<boolean>;
}
