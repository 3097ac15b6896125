// The server: stores, listeners, sessions, router and IQ dispatch, with feature modules plugged in.
import net from 'node:net';
import tls from 'node:tls';
import { randomBytes } from 'node:crypto';
import { Element } from '../protocol/xml.js';
import { NS } from '../protocol/namespaces.js';
import { parseJid, tryParseJid, type Jid } from '../protocol/jid.js';
import { StanzaError, errorReply } from '../protocol/errors.js';
import { parseStanzaString } from '../protocol/xml-stream.js';
import type { DataStores, SessionRecord, SessionStore } from '../storage/types.js';
import { openDataStores, openSessionStore } from '../storage/open.js';
import { warmReads } from '../storage/sql-stores.js';
import type { Config } from './config.js';
import { createLogger, type Logger } from './log.js';
import { Metrics } from './metrics.js';
import { Hooks } from './hooks.js';
import { TcpTransport } from './transport/tcp.js';
import { WebListener, defaultPublicUrl } from './transport/web-listener.js';
import type { Transport } from './transport/transport.js';
import { C2SStream, type ClientSession, type StreamHost } from './c2s.js';
import { StanzaRouter } from './router.js';
import { deliveryOf } from './delivery.js';
import { hold, continueWith } from './streams/completion.js';
import { loadTlsContext, loadTlsMaterial } from './tls.js';
import type {
  ClusterBus, DiscoRegistry, IqHandler, IqScope, LocalSession, Module, NodeControl, PreAuthStream, Server, ServerEvents,
} from './context.js';
import { allModules } from './modules/index.js';
import { ComponentListener } from './component.js';
import { watchSessionStore, type SessionStoreWatch } from './cluster-recovery.js';

/** d: deliver x to a local session; k: a session was replaced; m: a module topic; r: the reply x to a request of that node. */
import { HeldForNodes } from './cluster-held.js';
import { readStanzaHead } from '../protocol/stanza-head.js';
import { encodeClusterMessage, decodeBatch, FORMS_TOPIC, type ClusterEnvelope, type FormsNotice } from './cluster-message.js';
import { ClusterOutbox } from './cluster-batch.js';

/**
 * How long a bind waits for another node to end the session it replaces: that session's departures
 * (its rooms' unavailable) go first, or one reaching a room after the new session's join would take the
 * new occupant out (both have the same full JID). A node that cannot be reached ends the wait at once.
 */
const REPLACE_WAIT_MS = 2000;
/** Read once: see testDepartureDelay. */
const TEST_DEPARTURE_DELAY_MS = Number(process.env.PERCH_TEST_DEPARTURE_DELAY_MS ?? 0);

/** Waits for p, or ms at most: whichever comes first. */
function atMost(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<void>((resolve) => { timer = setTimeout(resolve, ms); });
  return Promise.race([p.then(() => undefined), limit]).finally(() => clearTimeout(timer));
}

/** The node that sent a server request, from the request's id (see request()). */
function requestNode(id: string): string | null {
  return /^[0-9a-f]{16}\./.test(id) ? id.slice(17) : null;
}

/** Failed-authentication counters, cluster-wide through the session store. */
class AuthThrottle {
  private readonly known = new Map<string, { n: number; until: number }>();
  constructor(private readonly sessions: SessionStore) {}
  private static readonly WINDOW = 600;
  private peek(key: string): number {
    const k = this.known.get(key);
    if (!k || k.until < Date.now()) return 0;
    return k.n;
  }
  async peekIp(ip: string): Promise<number> { return this.peek('ip:' + ip); }
  async peekAccount(user: string): Promise<number> { return this.peek('acct:' + user); }
  async failed(ip: string, user: string | null): Promise<void> {
    for (const key of user ? ['ip:' + ip, 'acct:' + user] : ['ip:' + ip]) {
      const n = await this.sessions.hit('auth:' + key, AuthThrottle.WINDOW);
      this.known.set(key, { n, until: Date.now() + AuthThrottle.WINDOW * 1000 });
    }
  }
}

export class ServerCore implements Server, StreamHost {
  readonly log: Logger;
  readonly metrics = new Metrics();
  readonly hooks = new Hooks<ServerEvents>();
  readonly router: StanzaRouter;
  readonly local = new Map<string, LocalSession>();
  readonly resumable = new Map<string, ClientSession>();
  readonly disco: DiscoRegistry = {
    hostFeatures: new Set([NS.discoInfo, NS.discoItems]),
    hostIdentities: [{ category: 'server', type: 'im', name: 'Perch' }],
    accountFeatures: new Set([NS.discoInfo]),
    hostForms: [],
    hostItems: [],
    accountItems: [],
    accountIdentities: [],
    nodes: new Map(),
  };
  readonly cluster: ClusterBus;
  stores!: DataStores;
  sessions!: SessionStore;
  tlsContext: tls.SecureContext | null = null;
  authThrottle!: AuthThrottle;
  readonly domain: string;
  private readonly iqHandlers = new Map<string, IqHandler>();
  private readonly pendingIq = new Map<string, { resolve: (el: Element | null) => void; timer: NodeJS.Timeout }>();
  /** Sessions of this node being ended, by full JID: done once their departures are routed. */
  private readonly ending = new Map<string, Promise<void>>();
  /** Per account, what its ended sessions were still handling (see endedSessionsSettled). */
  private readonly endedHandling = new Map<string, Promise<void>>();
  /** Binds waiting for another node to end the session they replace, by request id. */
  private readonly replacing = new Map<string, () => void>();
  private readonly byAccount = new Map<string, Set<LocalSession>>();
  private readonly clusterTopics = new Map<string, (data: unknown) => void>();
  private readonly listeners: net.Server[] = [];
  private readonly connections = new Set<Transport>();
  private modules: Module[] = [];
  private components: ComponentListener | null = null;
  private web: WebListener | null = null;
  private storeWatch: SessionStoreWatch | null = null;
  /** Groupchat messages for nodes that cannot be reached now, sent again once they can. */
  private held: HeldForNodes | null = null;
  /** Sends to other nodes, one publish per node and turn (cluster-batch.ts). */
  private outbox: ClusterOutbox | null = null;
  private stopping = false;
  private nodeState: 'active' | 'draining' = 'active';
  readonly ports: Record<string, number> = {};
  /** Called once a drained node has stopped (`perch start` exits the process there). */
  onExit: () => void = () => {};
  readonly node: NodeControl;

  constructor(readonly config: Config, log?: Logger) {
    this.log = log ?? createLogger(config.logLevel, { node: config.nodeId });
    this.domain = config.domain;
    this.router = new StanzaRouter({
      server: this,
      deliverLocal: (full, stanza, name) => this.deliverLocal(full, stanza, name),
      forward: (node, full, xml) => this.forwardStanza(node, full, xml),
      handleIq: (stanza, from, to) => this.handleIq(stanza, from, to),
    });
    const core = this;
    this.node = {
      get state() { return core.nodeState; },
      publicAddress: () => this.publicAddress(),
      stopAccepting: () => this.stopAccepting(),
      moveClients: (otherHost) => this.moveClients(otherHost),
      connectionCount: () => this.connections.size,
      exit: async () => { await this.stop(); this.onExit(); },
    };
    this.cluster = {
      send: (node, topic, data) => this.sendCluster(node, { t: 'm', topic, data }),
      broadcast: (topic, data) => this.sessions.broadcast(encodeClusterMessage(topic, data)),
      on: (topic, handler) => { this.clusterTopics.set(topic, handler); },
    };
  }

  // --- lifecycle ---------------------------------------------------------------------------------

  /** Starts everything; a start that fails closes what it opened before the error goes up. */
  async start(): Promise<void> {
    try {
      await this.startUp();
    } catch (err) {
      await this.abortStart();
      throw err;
    }
  }

  /**
   * Closes what a failed start opened, the database above all: an embedded database left open by a
   * process that exits (a port in use is the usual first-start failure) can be left unopenable.
   */
  private async abortStart(): Promise<void> {
    this.stopping = true;
    const quietly = async (f: () => unknown): Promise<void> => { try { await f(); } catch { /* closing anyway */ } };
    for (const l of this.listeners) await quietly(() => l.close());
    await quietly(() => this.web?.close());
    await quietly(() => this.components?.close());
    for (const m of [...this.modules].reverse()) await quietly(() => m.stop?.(this));
    await quietly(() => this.metrics.close());
    if (this.sessions) await quietly(() => this.sessions.close());
    if (this.stores) await quietly(() => this.stores.db.close());
  }

  /**
   * Every database connection opened and its first reads made before the server listens: the first
   * joins after a start each paid 5-6 ms for a new backend (connect, cold catalog caches, a prepared
   * statement planned). A database short of free connections slows the start, never stops it.
   */
  private async warmDatabase(): Promise<void> {
    const started = performance.now();
    try {
      const connections = await this.stores.db.warm((conn) => warmReads(conn, { fulltextLanguage: this.config.archive.fulltextLanguage }));
      this.log.info('database connections opened', { connections, ms: Math.round(performance.now() - started) });
    } catch (err) {
      this.log.warn('could not open every database connection at start; they open as load asks', { err });
    }
  }

  private async startUp(): Promise<void> {
    const c = this.config;
    this.stores = await openDataStores({
      databaseUrl: c.databaseUrl, dataDir: c.dataDir,
      onMigrationProgress: (done, total, name) => this.log.info('migration applied', { done, total, name }),
      fulltextLanguage: c.archive.fulltextLanguage,
      onFulltextRebuild: (from, to) => this.log.info('rebuilding the archive full-text index', { from, to }),
    });
    await this.warmDatabase();
    this.sessions = await openSessionStore({ redisUrl: c.redisUrl, nodeId: c.nodeId });
    this.authThrottle = new AuthThrottle(this.sessions);
    this.sessions.onMessage((payload) => this.onClusterMessage(payload));
    this.held = new HeldForNodes((node, payload) => this.sessions.send(node, payload), (full) => this.sessions.get(full)?.since, this.log);
    const outbox = this.outbox = new ClusterOutbox((node, payload) => this.sessions.send(node, payload));
    // Which nodes read batched envelopes: each says so when it starts, and answers a newcomer.
    this.cluster.on(FORMS_TOPIC, (data) => {
      const notice = data as FormsNotice | null;
      if (!notice || typeof notice.node !== 'string' || notice.node === this.sessions.nodeId) return;
      outbox.readsBatches(notice.node, Array.isArray(notice.forms) && notice.forms.includes('b'));
      if (notice.ask) this.cluster.send(notice.node, FORMS_TOPIC, { node: this.sessions.nodeId, forms: ['b'], ask: false } satisfies FormsNotice);
    });
    this.sessions.onNodeLost((node, records) => {
      this.held?.drop(node);
      outbox.readsBatches(node, false);
      void this.hooks.fire('cluster/lost', { node, records });
    });
    this.storeWatch = watchSessionStore(this);
    await this.sessions.start();
    // Not heard (Redis lost a moment): the others send this node one envelope at a time, as before.
    await this.cluster.broadcast(FORMS_TOPIC, { node: this.sessions.nodeId, forms: ['b'], ask: true } satisfies FormsNotice)
      .catch((e: unknown) => this.log.warn('cluster: could not announce the envelope forms this node reads', { err: e }));
    this.tlsContext = await loadTlsContext(c, this.log);
    this.modules = allModules();
    for (const m of this.modules) await m.init(this);
    if (c.listen.c2s) this.ports.c2s = await this.listen(c.listen.c2s.host, c.listen.c2s.port, false);
    if (c.listen.c2sDirectTls && this.tlsContext) {
      this.ports.c2sDirectTls = await this.listen(c.listen.c2sDirectTls.host, c.listen.c2sDirectTls.port, true);
    }
    if (c.listen.component) {
      this.components = new ComponentListener(this);
      for (const domain of Object.keys(c.components)) {
        this.router.addDomain(domain, (stanza) => this.components!.routeTo(domain, stanza));
        this.disco.hostItems.push({ jid: domain });
      }
      this.ports.component = await this.components.listen(c.listen.component.host, c.listen.component.port);
    }
    if (c.listen.websocket || c.listen.websocketPlain) {
      this.web = new WebListener(this, c.listen.websocket ? await loadTlsMaterial(c, this.log) : null);
      if (c.listen.websocket) this.ports.websocket = await this.web.listen(c.listen.websocket.host, c.listen.websocket.port, false);
      if (c.listen.websocketPlain) this.ports.websocketPlain = await this.web.listen(c.listen.websocketPlain.host, c.listen.websocketPlain.port, true);
      this.web.publicUrl = defaultPublicUrl(c, this.ports.websocket ?? null);
    }
    if (c.listen.metrics) this.ports.metrics = await this.metrics.listen(c.listen.metrics.host, c.listen.metrics.port);
    this.log.info('perch started', { domain: this.domain, ports: this.ports, database: this.stores.db.kind, sessions: c.redisUrl ? 'redis' : 'memory' });
  }

  /** A client stream over a transport some other listener accepted (WebSocket); returns its release. */
  acceptClient(conn: Transport): () => void {
    if (this.stopping || this.nodeState === 'draining') { conn.destroy(); return () => {}; }
    this.connections.add(conn);
    new C2SStream(this, conn);
    return () => { this.connections.delete(conn); };
  }

  private listen(host: string, port: number, directTls: boolean): Promise<number> {
    const onSocket = (socket: net.Socket) => {
      if (this.stopping || this.nodeState === 'draining') { socket.destroy(); return; }
      const conn = new TcpTransport(socket, {
        limits: { maxStanzaSize: this.config.limits.maxStanzaSize, maxDepth: this.config.limits.maxDepth },
        bytesPerSecond: this.config.limits.bytesPerSecond, log: this.log, metrics: this.metrics, kind: 'c2s',
      });
      this.connections.add(conn);
      socket.once('close', () => this.connections.delete(conn));
      new C2SStream(this, conn);
    };
    // tls.createServer ignores a ready-made secureContext (it builds its own from cert/key options),
    // so direct TLS wraps each accepted socket the way STARTTLS does.
    const srv = directTls
      ? net.createServer((socket) => {
        const secure = new tls.TLSSocket(socket, { isServer: true, secureContext: this.tlsContext!, ALPNProtocols: ['xmpp-client'] });
        onSocket(secure);
      })
      : net.createServer(onSocket);
    this.listeners.push(srv);
    return new Promise((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(port, host, () => {
        const a = srv.address();
        resolve(typeof a === 'object' && a ? a.port : port);
      });
    });
  }

  // --- drain (src/cluster-nodes.ts) ---------------------------------------------------------------

  private publicAddress(): string | null {
    const configured = this.config.cluster.publicAddress;
    if (!configured) return null;
    if (/:\d+$/.test(configured)) return configured;
    return this.ports.c2s !== undefined ? `${configured}:${this.ports.c2s}` : null;
  }

  private stopAccepting(): void {
    if (this.nodeState === 'draining') return;
    this.nodeState = 'draining';
    for (const l of this.listeners) l.close();
    this.web?.stopAccepting();
    this.log.info('node draining: new connections refused');
  }

  private async moveClients(otherHost: string | null): Promise<void> {
    await Promise.all(([...this.local.values()] as ClientSession[]).map((s) => s.moveAway(otherHost)));
    // Streams not bound yet (or waiting for resumption on a closed socket) go the same way.
    for (const conn of this.connections) {
      if (conn.isClosing) continue;
      if (otherHost) conn.streamError('see-other-host', 'this node is draining; connect to the other host', otherHost);
      else conn.streamError('system-shutdown', 'this node is draining; reconnect');
    }
    for (const s of [...this.resumable.values()]) if (!s.closed) s.end('node drained');
  }

  /** Graceful stop: system-shutdown to every stream, modules stopped, storage closed. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    for (const l of this.listeners) l.close();
    this.web?.stopAccepting();
    await this.components?.close();
    // Clients first get an <a/> for everything handled (what was still being handled gets a moment), so
    // after reconnecting they do not send again what is already delivered or stored.
    await Promise.all(([...this.local.values()] as ClientSession[]).map((s) => s.moveAway(null, 'the server is shutting down')));
    for (const conn of this.connections) if (!conn.isClosing) conn.streamError('system-shutdown', 'the server is shutting down');
    const sessions = [...this.local.values()] as ClientSession[];
    for (const s of sessions) s.end('shutdown');
    await new Promise((r) => setTimeout(r, 50));
    this.web?.close();
    for (const m of [...this.modules].reverse()) await m.stop?.(this);
    for (const p of this.pendingIq.values()) clearTimeout(p.timer);
    await this.metrics.close();
    this.held?.stop();
    await this.sessions.close();
    await this.stores.db.close();
    this.log.info('perch stopped');
  }

  // --- accounts ----------------------------------------------------------------------------------

  isAdmin(jid: Jid | string): boolean {
    const bare = typeof jid === 'string' ? tryParseJid(jid)?.bareString() : jid.bareString();
    return bare !== undefined && this.config.admins.includes(bare);
  }

  endedSessionsSettled(bare: string): Promise<void> {
    return this.endedHandling.get(bare) ?? Promise.resolve();
  }

  async userExists(username: string): Promise<boolean> {
    if (this.sessions.resources(`${username}@${this.domain}`).length) return true;
    return (await this.stores.users.get(username)) !== null;
  }

  // --- sessions ----------------------------------------------------------------------------------

  localOf(bare: string): LocalSession[] {
    const set = this.byAccount.get(bare);
    return set ? [...set] : [];
  }

  async bindSession(session: ClientSession): Promise<void> {
    const existing = this.local.get(session.full) as ClientSession | undefined;
    existing?.replaced();
    // Its departures go before this session's first stanza, as another node's do (replaceOnNode).
    const replacedHere = existing ? this.ending.get(session.full) : undefined;
    this.local.set(session.full, session);
    let set = this.byAccount.get(session.bare);
    if (!set) this.byAccount.set(session.bare, (set = new Set()));
    set.add(session);
    this.metrics.sessions.set(this.local.size);
    const previous = await this.sessions.put(session.record);
    if (previous && previous.node !== this.sessions.nodeId) await this.replaceOnNode(previous.node, session.full);
    if (replacedHere) await atMost(replacedHere, REPLACE_WAIT_MS);
    await this.hooks.fire('session/bound', session);
  }

  /** Asks node to end its session on full and waits (at most REPLACE_WAIT_MS) until it has. */
  private async replaceOnNode(node: string, full: string): Promise<void> {
    const id = randomBytes(8).toString('hex');
    const ended = new Promise<void>((resolve) => {
      this.replacing.set(id, resolve);
      // Straight to the store, one try: a node that is gone (killed, its record not yet swept) ends
      // the wait at once. A node from before this answer ends the session but never answers: the wait
      // times out.
      this.sessions.send(node, JSON.stringify({ t: 'k', to: full, id, from: this.sessions.nodeId } satisfies ClusterEnvelope), { retry: false })
        .catch(() => resolve());
    });
    try {
      await atMost(ended, REPLACE_WAIT_MS);
    } finally {
      this.replacing.delete(id);
    }
  }

  unbindSession(session: ClientSession, reason: string, unacked: { xml: string; name: string }[], handling: Promise<void> | null = null): Promise<void> {
    if (handling) {
      const before = this.endedHandling.get(session.bare);
      const all = before ? Promise.all([before, handling]).then(() => {}) : handling;
      this.endedHandling.set(session.bare, all);
      void all.then(() => { if (this.endedHandling.get(session.bare) === all) this.endedHandling.delete(session.bare); });
    }
    const done = this.unbind(session, reason, unacked);
    this.ending.set(session.full, done);
    void done.finally(() => { if (this.ending.get(session.full) === done) this.ending.delete(session.full); });
    return done;
  }

  private async unbind(session: ClientSession, reason: string, unacked: { xml: string; name: string }[]): Promise<void> {
    if (this.local.get(session.full) === session) {
      this.local.delete(session.full);
      // Unreachable Redis must not keep the session's end from the modules (presence, rooms): the
      // store forgets it here at once and removes the stale record once Redis answers again.
      await this.sessions.remove(session.full, this.sessions.nodeId)
        .catch((e) => this.log.warn('session store: removing an ended session failed; removed on reconnect', { err: e, jid: session.full }));
    }
    const set = this.byAccount.get(session.bare);
    set?.delete(session);
    if (set && set.size === 0) this.byAccount.delete(session.bare);
    this.metrics.sessions.set(this.local.size);
    try {
      await this.testDepartureDelay();
      await this.hooks.fire('session/closed', { session, reason });
    } catch (e) {
      this.log.error('session close hook failed', { err: e });
    }
    if (unacked.length) this.handleUnacked(session, unacked);
  }

  /**
   * A test hook, and nothing else: PERCH_TEST_DEPARTURE_DELAY_MS holds an ended session's departures
   * back that long, as a slow node would, so a test can make a replacing bind race them.
   */
  private async testDepartureDelay(): Promise<void> {
    if (TEST_DEPARTURE_DELAY_MS > 0) await new Promise((r) => setTimeout(r, TEST_DEPARTURE_DELAY_MS));
  }

  /** XEP-0198 §4: stanzas the client never acknowledged are not lost: messages go to offline storage, IQs bounce. */
  private handleUnacked(session: ClientSession, unacked: { xml: string; name: string }[]): void {
    for (const u of unacked) {
      if (u.name !== 'message' && u.name !== 'iq') continue;
      const el = parseStanzaString(u.xml);
      if (!el) continue;
      if (el.name === 'iq') {
        if (el.attrs.type === 'get' || el.attrs.type === 'set') this.router.bounce(el, new StanzaError('recipient-unavailable'));
        continue;
      }
      const type = el.attrs.type ?? 'normal';
      if (type === 'groupchat' || type === 'headline' || type === 'error') continue;
      const from = tryParseJid(el.attrs.from ?? '');
      if (!from) continue;
      // Another resource may still be online; offline storage keeps it for the next login regardless.
      void this.hooks.fire('message/offline', { stanza: el, from, to: session.jid.bare() });
    }
  }

  resumeSession(previd: string, username: string, conn: Transport, h: number): ClientSession | null {
    const s = this.resumable.get(previd);
    if (!s || s.closed || s.username !== username) return null;
    return s.resumeOn(conn, h) ? s : null;
  }

  private deliverLocal(full: string, stanza: Element | string, name: string): boolean {
    const s = this.local.get(full);
    if (!s || s.closed) return false;
    if (this.hooks.has('deliver/filter')) {
      // Filters decide from the head and parse only when they must; the session gets the stanza as it came.
      if (this.hooks.fire('deliver/filter', deliveryOf(s, stanza, name)) === true) return true;
    }
    if (typeof stanza === 'string') s.sendRaw(stanza, name);
    else s.send(stanza);
    return true;
  }

  // --- client stanzas ----------------------------------------------------------------------------

  handleClientStanza(session: ClientSession, el: Element): void {
    const started = performance.now();
    const ev = { stanza: el, session };
    const next = () => {
      try {
        this.routeFromClient(session, el);
      } catch (e) {
        this.clientStanzaFailed(session, el, e);
      }
      this.metrics.routingSeconds.observe((performance.now() - started) / 1000);
    };
    // A handler that throws (or rejects) refuses this stanza only: the session and the node go on.
    let r: boolean | Promise<boolean>;
    try {
      r = this.hooks.fire('client/stanza', ev);
    } catch (e) {
      this.clientStanzaFailed(session, el, e);
      return;
    }
    if (r === false) next();
    else if (r !== true) {
      // The stanza is handled once what follows the hooks is (XEP-0198 counts it then).
      const release = hold(el);
      void r.then((done) => { if (!done) continueWith(el, release, next); else release?.(); }, (e) => {
        this.clientStanzaFailed(session, el, e);
        release?.();
      });
    }
  }

  /** A handler with no stanza left to answer failed: logged and counted. */
  handlerFailed(where: string, e: unknown): void {
    this.log.error('handler failed', { err: e, where });
    this.metrics.handlerErrors.inc({ where });
  }

  private clientStanzaFailed(session: LocalSession, el: Element, e: unknown): void {
    const err = e instanceof StanzaError ? e : new StanzaError('internal-server-error');
    if (!(e instanceof StanzaError)) {
      this.log.error('stanza handler failed', { err: e, stanza: el.name });
      this.metrics.handlerErrors.inc({ where: 'client' });
    }
    const reply = errorReply(el, err);
    if (reply) session.send(reply);
  }

  private routeFromClient(session: ClientSession, el: Element): void {
    if (el.attrs.to === undefined) {
      if (el.name === 'presence') {
        // Synchronous when the handlers are (presence order matters); a throw is caught by next().
        const r = this.hooks.fire('client/presence', { stanza: el, session });
        if (r instanceof Promise) {
          const release = hold(el);
          void r.catch((e: unknown) => this.clientStanzaFailed(session, el, e)).finally(() => release?.());
        }
        return;
      }
      if (el.name === 'iq') return this.handleIq(el, session.jid, session.jid.bare());
      el.attrs.to = session.bare;
    }
    this.router.route(el);
  }

  // --- IQ ----------------------------------------------------------------------------------------

  iq(scope: IqScope, ns: string, types: 'get' | 'set' | 'both', handler: IqHandler): void {
    for (const t of types === 'both' ? ['get', 'set'] : [types]) this.iqHandlers.set(`${scope} ${t} ${ns}`, handler);
  }

  handleIq(stanza: Element, from: Jid, to: Jid): void {
    const type = stanza.attrs.type;
    if (type === 'result' || type === 'error') {
      if (to.local) {
        // A reply has no answer of its own: a failing handler is logged and counted, nothing more.
        try {
          const r = this.hooks.fire('iq/account-reply', { stanza, from, to });
          if (r instanceof Promise) r.catch((e: unknown) => this.handlerFailed('iq', e));
        } catch (e) {
          this.handlerFailed('iq', e);
        }
      } else if (!this.settleRequest(stanza)) {
        // A reply to another node's request (a room held here answers the server's JID): back to that node.
        const node = requestNode(stanza.attrs.id ?? '');
        if (node && node !== this.sessions.nodeId) this.sendCluster(node, { t: 'r', x: stanza.toString() });
      }
      return; // results to an account or to nowhere are dropped (RFC 6121 §8.5.1)
    }
    const payload = stanza.elements()[0];
    const reply = (el: Element) => {
      const local = from.domain === this.domain && from.local ? this.local.get(from.toString()) : undefined;
      if (local && stanza.attrs.to === undefined) { delete el.attrs.from; local.send(el); } else this.router.route(el);
    };
    if (!payload || (type !== 'get' && type !== 'set')) {
      const r = errorReply(stanza, new StanzaError('bad-request'));
      if (r) reply(r);
      return;
    }
    const scope: IqScope = to.local ? 'account' : 'host';
    const handler = this.iqHandlers.get(`${scope} ${type} ${payload.ns}`);
    const fail = (e: unknown) => {
      if (!(e instanceof StanzaError)) {
        this.log.error('iq handler failed', { err: e, ns: payload.ns });
        this.metrics.handlerErrors.inc({ where: 'iq' });
      }
      const r = errorReply(stanza, e instanceof StanzaError ? e : new StanzaError('internal-server-error'));
      if (r) reply(r);
    };
    const run = async () => {
      if (!handler) throw new StanzaError('service-unavailable');
      if (scope === 'account' && to.bareString() !== from.bareString() && !(await this.userExists(to.local))) {
        throw new StanzaError('service-unavailable');
      }
      const session = from.domain === this.domain ? this.local.get(from.toString()) ?? null : null;
      const result = await handler({ stanza, payload, from, to, session });
      const attrs: Record<string, string> = { type: 'result', id: stanza.attrs.id ?? '' };
      attrs.to = from.toString();
      attrs.from = stanza.attrs.to ?? to.toString();
      const res = new Element('iq', attrs);
      if (result) res.append(result);
      reply(res);
    };
    // Handled once answered (XEP-0198 counts it then).
    const release = hold(stanza);
    const done = run().catch(fail);
    if (release) void done.finally(release);
  }

  /** Resolves the pending request this result or error answers; false when none waits here. */
  private settleRequest(reply: Element): boolean {
    const id = reply.attrs.id ?? '';
    const p = this.pendingIq.get(id);
    if (!p) return false;
    this.pendingIq.delete(id);
    clearTimeout(p.timer);
    p.resolve(reply);
    return true;
  }

  request(iq: Element, timeoutMs = 30000): Promise<Element | null> {
    // The id names this node: the reply may reach another one (a room answers the server's JID on the
    // node that holds the room), which sends it back here.
    const id = iq.attrs.id ?? `${randomBytes(8).toString('hex')}.${this.sessions.nodeId}`;
    iq.attrs.id = id;
    iq.attrs.from ??= this.domain;
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.pendingIq.delete(id); resolve(null); }, timeoutMs);
      timer.unref();
      this.pendingIq.set(id, { resolve, timer });
      this.router.route(iq);
    });
  }

  /** Pre-authentication IQs (in-band registration). True when handled. */
  async preAuthIq(stream: PreAuthStream, el: Element): Promise<boolean> {
    return (await this.hooks.fire('preauth/iq', { stanza: el, stream })) === true;
  }

  // --- cluster -----------------------------------------------------------------------------------

  /** onFail: the payload did not reach the node (down, cut off, or this node cut off from Redis). */
  private sendCluster(node: string, env: ClusterEnvelope, onFail?: () => void): void {
    this.outbox!.push(node, env, (e) => {
      // While the store is down every send fails: the outage was logged once already.
      if (this.storeWatch?.isUp() !== false) this.log.warn('cluster send failed', { err: e, node });
      else this.log.debug('cluster send failed', { err: e, node });
      onFail?.();
    });
  }

  /**
   * A stanza for a session on another node. One that cannot get there is bounced to its sender (never
   * silence), except a message that is kept already (a room's, or one in the recipient's archive): it
   * is held for that node and sent again, in order, once the node can be reached (cluster-held.ts).
   */
  private forwardStanza(node: string, full: string, xml: string): void {
    const env: ClusterEnvelope = { t: 'd', to: full, x: xml };
    const held = this.held;
    const since = this.sessions.get(full)?.since;
    // The start tag is read only when something is held or a send failed (not on the hot path).
    if (held?.has(node) && keptForRecipient(xml, full)) return held.hold(node, JSON.stringify(env), full, since);
    this.outbox!.push(node, env, (e) => {
      if (this.storeWatch?.isUp() !== false) this.log.warn('cluster send failed', { err: e, node });
      else this.log.debug('cluster send failed', { err: e, node });
      if (held && keptForRecipient(xml, full)) held.hold(node, JSON.stringify(env), full, since);
      else this.unroutable(xml);
    });
  }

  /** A stanza for a session on a node that cannot be reached: its sender learns it (never silence). */
  private unroutable(xml: string): void {
    const el = parseStanzaString(xml);
    if (!el) return;
    this.router.bounce(el, new StanzaError('recipient-unavailable', 'the recipient\'s server node cannot be reached; try again'));
  }

  private onClusterMessage(payload: string): void {
    let env: ClusterEnvelope;
    try {
      env = JSON.parse(payload) as ClusterEnvelope;
    } catch {
      return;
    }
    if (env.t === 'b') {
      for (const one of decodeBatch(env)) this.onClusterEnvelope(one);
    } else this.onClusterEnvelope(env);
  }

  private onClusterEnvelope(env: ClusterEnvelope): void {
    if (env.t === 'd' && env.to && env.x) {
      if (this.deliverLocal(env.to, env.x, nameOf(env.x))) return;
      const el = parseStanzaString(env.x);
      const from = el && tryParseJid(el.attrs.from ?? '');
      const to = tryParseJid(env.to);
      if (el && from && to) this.router.noSuchResource(el, from, to);
    } else if (env.t === 'k' && env.to) {
      (this.local.get(env.to) as ClientSession | undefined)?.replaced();
      // Answered once the session's departures are routed (they go before this answer, in order).
      const { id, from } = env;
      if (id && from) void (this.ending.get(env.to) ?? Promise.resolve()).then(() => this.sendCluster(from, { t: 'e', id }));
    } else if (env.t === 'e' && env.id) {
      this.replacing.get(env.id)?.();
    } else if (env.t === 'r' && env.x) {
      const reply = parseStanzaString(env.x);
      if (reply) this.settleRequest(reply);
    } else if (env.t === 'm' && env.topic) {
      this.clusterTopics.get(env.topic)?.(env.data);
    }
  }
}

/**
 * Is this message kept where its recipient finds it (so it must not be bounced as not kept)? A
 * groupchat message (its room committed it before fanning it out), or one the recipient's archive
 * holds already (it carries the stanza id that archive gave it, XEP-0359).
 */
function keptForRecipient(xml: string, full: string): boolean {
  const head = readStanzaHead(xml);
  if (head?.name !== 'message') return false;
  if (head.attrs.type === 'groupchat') return true;
  if (!xml.includes(NS.sid)) return false;
  const bare = tryParseJid(full)?.bareString();
  return parseStanzaString(xml)?.getChildren('stanza-id', NS.sid).some((c) => c.attrs.by === bare) === true;
}

function nameOf(xml: string): string {
  const m = /^<([a-z]+)/.exec(xml);
  return m ? m[1]! : '';
}


export type { SessionRecord };
export { parseJid };
