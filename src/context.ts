// What a feature module sees of the server: stores, router, hooks, IQ handlers, disco, sessions.
// A module is one file exporting a `Module`; it registers handlers in `init` and touches nothing else.
import type { Element } from '../protocol/xml.js';
import type { Jid } from '../protocol/jid.js';
import type { StanzaError } from '../protocol/errors.js';
import type { DataStores, SessionRecord, SessionStore } from '../storage/types.js';
import type { Config } from './config.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import type { Hooks } from './hooks.js';

/** A bound client session held by this node. */
export interface LocalSession {
  readonly jid: Jid;
  readonly username: string;
  readonly full: string;
  readonly bare: string;
  readonly ip: string;
  readonly secure: boolean;
  /** When the client last sent anything (ms since the epoch); null while it has no connection (awaiting resumption). */
  readonly lastActivity: number | null;
  /** This session's row in the cluster-wide session table (a copy; change it through updateRecord). */
  readonly record: SessionRecord;
  updateRecord(change: Partial<SessionRecord>): Promise<void>;
  /** Sends a stanza to the client (counted for stream management). */
  send(stanza: Element): void;
  /** Sends an already serialised stanza. */
  sendRaw(xml: string, name: string): void;
  /**
   * Ends the session with a stream error (or a clean close when condition is omitted). ack: first an
   * XEP-0198 <a/> for what was handled, so the client does not send that again after reconnecting.
   */
  close(condition?: string, text?: string, opts?: { ack?: boolean }): void;
  /** Per-module state, keyed by module name. */
  readonly data: Map<string, unknown>;
  readonly closed: boolean;
  /**
   * Bound after the client tried to resume a session on this stream and could not (XEP-0198 §5:
   * <failed/>): in its first moments it sends again what that session's server never acknowledged.
   */
  readonly afterFailedResume?: boolean;
}

/**
 * A stanza on its way to one local session. The head (name, type, from, to) is read from the start tag;
 * the tree is built only when a handler asks for it. What the session receives is the stanza as it came:
 * a serialised one is written untouched, so handlers must not change the element they get.
 */
export interface Delivery {
  readonly session: LocalSession;
  readonly name: string;
  readonly type: string | undefined;
  readonly from: string | undefined;
  readonly to: string | undefined;
  /** The stanza serialised (as it came, or serialised once on first use when it came as an element). */
  readonly xml: string;
  /** The stanza as an element, parsed once on first call; null when it does not parse. Read only. */
  element(): Element | null;
}

export interface IqRequest {
  stanza: Element;
  /** The single child of the get/set IQ. */
  payload: Element;
  from: Jid;
  to: Jid;
  /** The sender's session when it is a client of this node. */
  session: LocalSession | null;
}
/** Return an element to send it as the result's payload, nothing for an empty result; throw StanzaError to fail. */
export type IqHandler = (req: IqRequest) => Element | void | null | Promise<Element | void | null>;

/** Where an IQ handler answers: the server's own JID, or any local account's bare JID. */
export type IqScope = 'host' | 'account';

export interface StanzaEvent {
  stanza: Element;
  from: Jid;
  to: Jid;
}
export interface ClientStanzaEvent {
  stanza: Element;
  session: LocalSession;
}

export interface ServerEvents {
  /** A stanza from a local client, before routing (from is stamped). Consume to stop routing. */
  'client/stanza': ClientStanzaEvent;
  /** Presence without 'to' from a local client (broadcast). */
  'client/presence': ClientStanzaEvent;
  /** Message to a local account's bare JID, before delivery. */
  'message/bare': StanzaEvent;
  /** Message about to be delivered to one local full JID (carbons hook here). Consume to stop that delivery. */
  'message/full': StanzaEvent;
  /** Message for a local account with no resource to take it (offline storage consumes it). */
  'message/offline': StanzaEvent;
  /** Presence to a local account's bare JID (subscriptions, probes). Consume to stop default delivery. */
  'presence/bare': StanzaEvent;
  /** Presence addressed to this server's domain. */
  'presence/host': StanzaEvent;
  /** Message addressed to this server's domain. */
  'message/host': StanzaEvent;
  /**
   * A stanza from any source about to be delivered to a local session; consume to drop or hold it
   * (blocking, CSI). Decide from the head where possible: element() parses a serialised stanza.
   */
  'deliver/filter': Delivery;
  /** An IQ on a stream that has not authenticated yet (in-band registration). Consume to answer it. */
  'preauth/iq': { stanza: Element; stream: PreAuthStream };
  /**
   * A password given in the clear (SASL PLAIN, over TLS) for an account: a module that checks it
   * elsewhere (an LDAP bind) consumes the event and sets verified; unconsumed, the stored credentials decide.
   */
  'auth/password': { username: string; password: string; verified: boolean };
  'session/bound': LocalSession;
  /** Initial presence sent. */
  'session/online': LocalSession;
  'session/closed': { session: LocalSession; reason: string };
  /** A node vanished with these sessions (presence must say they are gone). */
  'cluster/lost': { node: string; records: SessionRecord[] };
  /**
   * The session store came back empty (Redis restarted without persistence). This node's session
   * records are written back already; each module re-asserts what it keeps there (MUC: its rooms'
   * leases, with sessions.reclaimLease, and their occupants). Handlers are awaited.
   */
  'cluster/store-reset': { records: SessionRecord[] };
  'user/deleted': { username: string };
  /** An IQ result or error addressed to a local account's bare JID (answers to requests sent from it). */
  'iq/account-reply': StanzaEvent;
  /** An element was stored in an account's private XML storage (XEP-0049). */
  'private/stored': { username: string; element: Element };
  /** An account's owner stored a new vCard (XEP-0054), photo and all. */
  'vcard/stored': { username: string; card: Element };
  'stream/features': { session: PreBindFeatures };
}

/** A client stream before authentication, as pre-auth IQ handlers see it. */
export interface PreAuthStream {
  reply(el: Element): void;
  readonly remoteAddress: string;
  readonly secure: boolean;
}

/** Lets modules add elements to the stream features offered after authentication. */
export interface PreBindFeatures {
  features: Element;
  authenticated: boolean;
  secure: boolean;
}

export interface DiscoIdentity { category: string; type: string; name?: string }
export interface DiscoRegistry {
  /** Features of the server's own JID. */
  hostFeatures: Set<string>;
  hostIdentities: DiscoIdentity[];
  /** Features answered on an account's bare JID. */
  accountFeatures: Set<string>;
  /** Identities answered on an account's bare JID besides account/registered (pubsub/pep). */
  accountIdentities: DiscoIdentity[];
  /** Extra disco#info forms (XEP-0128) on the server JID. */
  hostForms: (() => Element)[];
  /** Items listed on the server JID (components, services). */
  hostItems: { jid: string; name?: string }[];
  /** Items listed on an account's bare JID (its PEP nodes), asked of each provider in turn. */
  accountItems: ((account: Jid, from: Jid) => Promise<Element[]>)[];
  /**
   * Node-qualified queries on the server JID (XEP-0030 §3.2), by node. `info` returns the whole
   * disco#info <query/> to answer with, `items` the <item/> children of the disco#items answer;
   * either may throw StanzaError (e.g. forbidden). A node without the queried handler, or a null
   * info, is item-not-found.
   */
  nodes: Map<string, DiscoNodeHandler>;
}
export interface DiscoNodeHandler {
  info?(from: Jid): Element | null;
  items?(from: Jid): Element[];
}

export interface Router {
  /** Routes a stanza whose from/to are set and trusted. */
  route(stanza: Element): void;
  /** Delivers to one session record wherever it lives (no further routing decisions). */
  deliverTo(rec: SessionRecord, stanza: Element | string, name: string): void;
  /** Sends an error reply for stanza (unless it must not be answered). */
  bounce(stanza: Element, err: StanzaError): void;
  /** Registers a handler for every stanza to a domain (components, MUC services). */
  addDomain(domain: string, handler: (stanza: Element) => void): void;
  removeDomain(domain: string): void;
  /** Is this domain served here (host, component or service)? */
  isLocalDomain(domain: string): boolean;
}

export interface ClusterBus {
  /** Sends a module message to one node (or this one). */
  send(node: string, topic: string, data: unknown): void;
  /** Sends a module message to every node up now, this one included; resolves once published. */
  broadcast(topic: string, data: unknown): Promise<void>;
  on(topic: string, handler: (data: unknown) => void): void;
}

/**
 * This node's part in the cluster's life: whether it takes new clients, and the steps of a drain
 * (src/cluster-nodes.ts runs them in order).
 */
export interface NodeControl {
  readonly state: 'active' | 'draining';
  /** The client address (host:port) other nodes may send clients to, or null when none is configured. */
  publicAddress(): string | null;
  /** Closes the client listeners (TCP, direct TLS, WebSocket): new connections are refused from now on. */
  stopAccepting(): void;
  /** Sends every client elsewhere (see-other-host to otherHost, else system-shutdown), stream management acked first. */
  moveClients(otherHost: string | null): Promise<void>;
  /** Open client connections, bound or not. */
  connectionCount(): number;
  /** Stops the server as on SIGTERM; the process then exits with 0 (when run by `perch start`). */
  exit(): Promise<void>;
}

export interface Server {
  readonly config: Config;
  readonly node: NodeControl;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly stores: DataStores;
  readonly sessions: SessionStore;
  readonly hooks: Hooks<ServerEvents>;
  readonly router: Router;
  readonly cluster: ClusterBus;
  readonly disco: DiscoRegistry;
  readonly domain: string;
  /** The ports the listeners got (c2s, c2sDirectTls, component, metrics), once started. */
  readonly ports: Record<string, number>;
  /** Local sessions by full JID. */
  readonly local: Map<string, LocalSession>;
  /** Local sessions of one account. */
  localOf(bare: string): LocalSession[];
  /**
   * Settles once what the account's sessions that ended on this node were still handling when they
   * ended is complete (a message waiting for its commit or its route), or after a few seconds.
   */
  endedSessionsSettled(bare: string): Promise<void>;
  iq(scope: IqScope, ns: string, types: 'get' | 'set' | 'both', handler: IqHandler): void;
  /** Sends an IQ get/set from the server and resolves with the reply (result or error), or null on timeout. */
  request(iq: Element, timeoutMs?: number): Promise<Element | null>;
  isAdmin(jid: Jid | string): boolean;
  /** True when the account exists (online sessions answer without a query). */
  userExists(username: string): Promise<boolean>;
}

export interface Module {
  readonly name: string;
  init(server: Server): void | Promise<void>;
  /**
   * Called at shutdown, before storage closes: stops what init started for this server only (tests
   * and tools run several servers in one process).
   */
  stop?(server: Server): void | Promise<void>;
}
