// Client-to-server streams (RFC 6120): negotiation (STARTTLS, SASL, bind), then the bound session
// that validates and stamps what the client sends and hands it to the router. A session with stream
// management (XEP-0198, src/streams/stream-management.ts) can outlive its connection.
import { randomBytes } from 'node:crypto';
import type { SecureContext } from 'node:tls';
import { Element, type Attrs } from '../protocol/xml.js';
import { NS } from '../protocol/namespaces.js';
import { tryParseJid, type Jid } from '../protocol/jid.js';
import { StanzaError, errorReply, type StreamErrorCondition } from '../protocol/errors.js';
import { isStreamRoot } from '../protocol/xml-stream.js';
import {
  ScramServer, PlainServer, decodeBase64Strict, scramMechanismName, verifyPasswordAgainstScram,
  type SaslStep, type ScramHash,
} from '../protocol/sasl.js';
import type { SessionRecord, UserRecord } from '../storage/types.js';
import type { LocalSession, PreAuthStream, Server } from './context.js';
import type { StreamHeader, Transport, TransportHandler } from './transport/transport.js';
import { StreamManagement, smFailed, type Unacked } from './streams/stream-management.js';
import { credentialsFor } from './accounts.js';
import { handleCounted } from './streams/completion.js';

type Mechanism = { start(r: Buffer): Promise<SaslStep>; next(r: Buffer): Promise<SaslStep> };

const STANZAS = new Set(['message', 'presence', 'iq']);
const PRESENCE_TYPES = new Set(['unavailable', 'subscribe', 'subscribed', 'unsubscribe', 'unsubscribed', 'probe', 'error']);
const IQ_TYPES = new Set(['get', 'set', 'result', 'error']);
/**
 * How long a session sent to another node waits for its pending stanzas before the last <a/>. Longer
 * than a room forward takes when the room's owner stops at the same time (first lookup at 750 ms,
 * the same owner asked again 3 s later, then the next one's commit): a rolling restart stops the
 * room's node and the sender's one after the other, and a stanza not covered comes back as a resend.
 */
const MOVE_SETTLE_MS = 5000;
/** How long an ended session's stanzas still being handled are waited for, at most, by a new session's resend. */
const ENDED_SETTLE_MS = 5000;
/** How long it waits for the client to say what it received (its <a/> to our <r/>). */
const CONFIRM_RECEIVED_MS = 1000;

/** Failed-authentication counters (cluster-wide): by address and by account. */
export interface AuthThrottle {
  peekIp(ip: string): Promise<number>;
  peekAccount(user: string): Promise<number>;
  failed(ip: string, user: string | null): Promise<void>;
}

/** What client streams need of the server (ServerCore implements it), so this file does not import it. */
export interface StreamHost extends Pick<Server, 'config' | 'log' | 'metrics' | 'stores' | 'sessions' | 'hooks' | 'domain'> {
  readonly tlsContext: SecureContext | null;
  readonly authThrottle: AuthThrottle;
  /** Sessions that may be resumed (XEP-0198), by resumption id. */
  readonly resumable: Map<string, ClientSession>;
  /** Pre-authentication IQs (in-band registration). True when handled. */
  preAuthIq(stream: PreAuthStream, el: Element): Promise<boolean>;
  bindSession(session: ClientSession): Promise<void>;
  unbindSession(session: ClientSession, reason: string, unacked: Unacked[], handling?: Promise<void> | null): Promise<void>;
  resumeSession(previd: string, username: string, transport: Transport, h: number): ClientSession | null;
  handleClientStanza(session: ClientSession, el: Element): void;
}

/** Negotiates one client stream until a resource is bound, then hands over to a ClientSession. */
export class C2SStream implements TransportHandler, PreAuthStream {
  private username: string | null = null;
  /** The exchange in progress; started once the mechanism has seen the client's first message. */
  private sasl: { mech: Mechanism; name: string; started: boolean } | null = null;
  private session: ClientSession | null = null;
  /** The client asked to resume a session on this stream and could not. */
  private resumeFailed = false;
  private authTimer: NodeJS.Timeout;
  private busy: Promise<void> = Promise.resolve();

  constructor(private readonly core: StreamHost, readonly conn: Transport) {
    conn.setHandler(this);
    this.authTimer = setTimeout(() => {
      if (!this.session) conn.streamError('connection-timeout', 'authentication took too long');
    }, core.config.limits.authTimeout * 1000);
    this.authTimer.unref();
  }

  /** A new stream id for each stream this side opens. */
  header(): StreamHeader {
    return { xmlns: NS.client, id: randomBytes(12).toString('base64url'), from: this.core.domain, version: '1.0', lang: 'en' };
  }

  streamStart(name: string, attrs: Attrs): void {
    this.conn.openStream(this.header());
    if (!isStreamRoot(name, attrs)) return this.conn.streamError('invalid-namespace', 'expected <stream:stream>');
    if (attrs.xmlns !== NS.client) return this.conn.streamError('invalid-namespace', `content namespace must be ${NS.client}`);
    const version = attrs.version ?? '0.9';
    if (!/^1\.\d+$/.test(version)) return this.conn.streamError('unsupported-version', 'XMPP 1.0 streams only');
    const to = attrs.to;
    if (to !== undefined && tryParseJid(to)?.domain !== this.core.domain) {
      return this.conn.streamError('host-unknown', `this server does not serve ${to}`);
    }
    this.conn.sendFeatures(this.features());
  }

  private features(): Element {
    const f = new Element('features', {}, [], NS.streams);
    const secure = this.conn.secure;
    if (!this.username) {
      if (!secure && this.core.tlsContext) {
        const st = f.c('starttls', { xmlns: NS.tls });
        if (this.core.config.tls.requireStartTls) {
          st.c('required');
          return f;
        }
      }
      const mechs = f.c('mechanisms', { xmlns: NS.sasl });
      for (const m of this.mechanismNames()) mechs.c('mechanism').t(m);
      if (secure && this.channelBinding()) {
        f.c('sasl-channel-binding', { xmlns: NS.saslChannelBinding }).c('channel-binding', { type: this.channelBinding()!.type });
      }
      if (this.core.config.registration.enabled) f.c('register', { xmlns: NS.registerFeature });
      return f;
    }
    f.c('bind', { xmlns: NS.bind });
    f.c('session', { xmlns: NS.session }).c('optional');
    f.c('sm', { xmlns: NS.sm });
    void this.core.hooks.fire('stream/features', { session: { features: f, authenticated: true, secure } });
    return f;
  }

  private mechanismNames(): string[] {
    const out: string[] = [];
    const plus = this.conn.secure && this.channelBinding() !== null;
    for (const hash of ['SHA-256', 'SHA-1'] as ScramHash[]) {
      if (plus) out.push(scramMechanismName(hash, true));
      out.push(scramMechanismName(hash, false));
    }
    if (this.conn.secure) out.push('PLAIN');
    return out;
  }

  private channelBinding(): { type: string; data: Buffer } | null {
    return this.conn.channelBinding?.() ?? null;
  }

  element(el: Element): void {
    if (this.session) {
      this.session.fromClient(el);
      return;
    }
    // Negotiation steps are async (storage, PBKDF2): run them in order.
    this.busy = this.busy.then(() => this.negotiate(el)).catch((e: unknown) => {
      this.core.log.error('negotiation failed', { err: e });
      this.conn.streamError('internal-server-error');
    });
  }

  private async negotiate(el: Element): Promise<void> {
    if (this.conn.isClosing) return;
    if (this.session) return this.session.fromClient(el);
    if (el.ns === NS.tls && el.name === 'starttls') return this.startTls();
    if (el.ns === NS.sasl) return this.saslElement(el);
    if (el.ns === NS.sm) {
      if (el.name === 'resume' && this.username) return this.resume(el);
      return this.conn.send(smFailed('unexpected-request'));
    }
    if (STANZAS.has(el.name) && el.ns === NS.client) {
      if (!this.username) {
        if (el.name === 'iq' && await this.core.preAuthIq(this, el)) return;
        return this.conn.streamError('not-authorized', 'authenticate first');
      }
      if (el.name === 'iq' && el.attrs.type === 'set' && el.getChild('bind', NS.bind)) return this.bind(el);
      return this.conn.streamError('not-authorized', 'bind a resource first');
    }
    this.conn.streamError('unsupported-stanza-type', `<${el.name} xmlns='${el.ns}'> is not expected here`);
  }

  /** Sends a stanza on the not-yet-bound stream (pre-auth IQ replies such as registration). */
  reply(el: Element): void {
    this.conn.send(el);
  }

  get remoteAddress(): string {
    return this.conn.remoteAddress;
  }
  get secure(): boolean {
    return this.conn.secure;
  }

  private startTls(): void {
    if (this.conn.secure || !this.core.tlsContext || !this.conn.startTls || this.username) {
      this.conn.write(`<failure xmlns='${NS.tls}'/>`);
      this.conn.closeStream();
      return;
    }
    this.conn.write(`<proceed xmlns='${NS.tls}'/>`);
    this.conn.startTls(this.core.tlsContext);
  }

  private saslFailure(condition: string, text?: string): void {
    const f = new Element('failure', { xmlns: NS.sasl });
    f.c(condition);
    if (text) f.c('text', { 'xml:lang': 'en' }).t(text);
    this.conn.send(f);
    this.core.metrics.authFailures.labels(this.sasl?.name ?? 'none', condition).inc();
    this.sasl = null;
  }

  private async saslElement(el: Element): Promise<void> {
    if (this.username) return this.saslFailure('aborted', 'already authenticated');
    if (el.name === 'abort') return this.saslFailure('aborted');
    if (el.name === 'auth') {
      if (!this.conn.secure && this.core.config.tls.requireStartTls && this.core.tlsContext) {
        return this.saslFailure('encryption-required', 'use STARTTLS first');
      }
      const name = el.attrs.mechanism ?? '';
      if (!this.mechanismNames().includes(name)) {
        this.sasl = null;
        return this.saslFailure('invalid-mechanism', `${name} is not offered`);
      }
      const ipHits = await this.core.authThrottle.peekIp(this.conn.remoteAddress);
      if (ipHits >= this.core.config.limits.authFailuresPerIp) {
        return this.saslFailure('temporary-auth-failure', 'too many failed attempts from this address');
      }
      this.sasl = { mech: this.createMechanism(name), name, started: false };
      const text = el.text();
      // No initial response: an empty challenge asks for one (RFC 6120 §6.4.2).
      if (text === '') return this.conn.send(new Element('challenge', { xmlns: NS.sasl }));
      const data = decodeBase64Strict(text);
      if (!data) return this.saslFailure('incorrect-encoding');
      return this.saslStep(await this.sasl.mech.start(data));
    }
    if (el.name === 'response') {
      if (!this.sasl) return this.saslFailure('malformed-request', 'no authentication in progress');
      const data = decodeBase64Strict(el.text());
      if (!data) return this.saslFailure('incorrect-encoding');
      const sasl = this.sasl;
      const step = sasl.started ? await sasl.mech.next(data) : await sasl.mech.start(data);
      sasl.started = true;
      return this.saslStep(step);
    }
    this.conn.streamError('unsupported-stanza-type', `unexpected SASL element <${el.name}>`);
  }

  /** The account read during SASL, kept so success does not read it again. */
  private account: UserRecord | null = null;

  private async loadAccount(username: string): Promise<UserRecord | null> {
    if (this.account?.username === username) return this.account;
    this.account = await this.core.stores.users.get(username);
    return this.account;
  }

  private createMechanism(name: string): Mechanism {
    if (name === 'PLAIN') {
      return new PlainServer({
        verify: async (user, password) => {
          const rec = await this.loadAccount(user);
          if (rec === null) return false;
          const checked = { username: user, password, verified: false };
          if (await this.core.hooks.fire('auth/password', checked)) return checked.verified;
          const { sha1, sha256 } = rec.credentials;
          if (sha256) return verifyPasswordAgainstScram(password, { hash: 'SHA-256', ...sha256 });
          // An account imported with SCRAM-SHA-1 keys only: the password, now known, derives both.
          if (!(await verifyPasswordAgainstScram(password, { hash: 'SHA-1', ...sha1 }))) return false;
          await this.core.stores.users.setCredentials(user, await credentialsFor(password, this.core.config.scramIterations));
          return true;
        },
      });
    }
    const plus = name.endsWith('-PLUS');
    const hash: ScramHash = name.startsWith('SCRAM-SHA-256') ? 'SHA-256' : 'SHA-1';
    return new ScramServer({
      hash, plus, channelBinding: plus ? this.channelBinding() : null,
      offeredPlus: this.conn.secure && this.channelBinding() !== null,
      lookup: async (user) => {
        const rec = await this.loadAccount(user);
        const keys = rec ? (hash === 'SHA-1' ? rec.credentials.sha1 : rec.credentials.sha256) : null;
        return keys ? { hash, ...keys } : null;
      },
    });
  }

  private async saslStep(step: SaslStep): Promise<void> {
    const mech = this.sasl;
    if (step.kind === 'challenge') {
      const c = new Element('challenge', { xmlns: NS.sasl });
      if (step.data.length) c.t(step.data.toString('base64'));
      if (mech) mech.started = true;
      return this.conn.send(c);
    }
    if (step.kind === 'failure') {
      // Only a checked password counts towards throttling: a client probing mechanisms (slixmpp tries
      // tls-unique -PLUS first, then falls back) is not guessing anything.
      if (step.username !== undefined) await this.core.authThrottle.failed(this.conn.remoteAddress, step.username);
      return this.saslFailure(step.condition, step.text);
    }
    const username = step.username;
    if (step.authzid && tryParseJid(step.authzid)?.bareString() !== `${username}@${this.core.domain}`) {
      return this.saslFailure('invalid-authzid');
    }
    if ((await this.core.authThrottle.peekAccount(username)) >= this.core.config.limits.authFailuresPerAccount) {
      return this.saslFailure('temporary-auth-failure', 'too many failed attempts for this account');
    }
    const user = await this.loadAccount(username);
    this.account = null;
    if (!user) return this.saslFailure('not-authorized');
    if (user.disabled) return this.saslFailure('account-disabled');
    this.core.metrics.authSuccesses.labels(mech?.name ?? 'none').inc();
    this.username = username;
    this.sasl = null;
    const s = new Element('success', { xmlns: NS.sasl });
    if (step.data) s.t(step.data.toString('base64'));
    this.conn.send(s);
    this.conn.restartStream();
  }

  private async bind(iq: Element): Promise<void> {
    const id = iq.attrs.id;
    const requested = iq.getChild('bind', NS.bind)!.getChildText('resource')?.trim() ?? '';
    let resource = requested || randomBytes(6).toString('hex');
    let jid: Jid | null = tryParseJid(`${this.username}@${this.core.domain}/${resource}`);
    if (!jid) {
      const err = errorReply(iq, new StanzaError('bad-request', 'invalid resource'));
      if (err) this.conn.send(err);
      return;
    }
    resource = jid.resource;
    const session = new ClientSession(this.core, this.conn, jid, this.username!, this.resumeFailed);
    this.session = session;
    clearTimeout(this.authTimer);
    await this.core.bindSession(session);
    const res = new Element('iq', id !== undefined ? { type: 'result', id } : { type: 'result' });
    res.c('bind', { xmlns: NS.bind }).c('jid').t(jid.toString());
    session.send(res);
  }

  private async resume(el: Element): Promise<void> {
    const ok = this.core.resumeSession(el.attrs.previd ?? '', this.username!, this.conn, Number(el.attrs.h));
    if (!ok) {
      this.resumeFailed = true;
      this.conn.send(smFailed('item-not-found'));
      return;
    }
    clearTimeout(this.authTimer);
    this.session = ok;
  }

  streamEnd(): void {
    // A cleanly closed stream ends the session: no resumption (XEP-0198 "Stream Closure").
    this.session?.clientClosedStream();
  }

  closed(): void {
    clearTimeout(this.authTimer);
    this.session?.connectionLost(this.conn);
  }
}

/** A bound client session: what the client sends is checked and routed; what it receives is counted. */
export class ClientSession implements LocalSession {
  readonly full: string;
  readonly bare: string;
  readonly data = new Map<string, unknown>();
  record: SessionRecord;
  closed = false;
  private conn: Transport | null;
  private readonly sm: StreamManagement;
  private resumeTimer: NodeJS.Timeout | null = null;
  /** Being sent to another node (a drain, a stop): stanzas from the client are no longer handled, nor written to it. */
  private leaving = false;

  constructor(private readonly core: StreamHost, conn: Transport, readonly jid: Jid, readonly username: string,
    readonly afterFailedResume = false) {
    this.conn = conn;
    this.sm = new StreamManagement({
      resumeSeconds: core.config.streamManagement.resumeSeconds,
      resumable: (id) => core.resumable.set(id, this),
      write: (xml) => this.conn?.write(xml),
    });
    this.full = jid.toString();
    this.bare = jid.bareString();
    this.record = {
      jid: this.full, node: core.sessions.nodeId, priority: 0, available: false, presence: null,
      interested: false, carbons: false, since: Date.now(),
    };
  }

  get ip(): string {
    return this.conn?.remoteAddress ?? '';
  }
  get secure(): boolean {
    return this.conn?.secure ?? false;
  }
  /** When the client last sent anything; null while the session waits for resumption. */
  get lastActivity(): number | null {
    return this.conn?.lastActivity ?? null;
  }

  /** The session-table write that takes this turn's changes, until it starts. */
  private recordWrite: Promise<void> | null = null;
  /** The client closed its stream: the session ends when the connection closes, and its record goes. */
  private streamClosed = false;

  /**
   * Changes made in one turn go to the session table as one write, made after the turn; none once the
   * client has closed its stream (its last unavailable presence arrives with the closing tag, and the
   * record is removed a moment later: writing it first would be one more session-table write per login).
   */
  updateRecord(change: Partial<SessionRecord>): Promise<void> {
    this.record = { ...this.record, ...change };
    this.recordWrite ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
      this.recordWrite = null;
      if (this.closed || this.streamClosed) return;
      return this.core.sessions.put(this.record).then(() => {});
    });
    return this.recordWrite;
  }

  /** The client sent its closing tag. */
  clientClosedStream(): void {
    this.streamClosed = true;
    this.forgetResumption();
  }

  send(stanza: Element): void {
    this.sendRaw(stanza.toString(), stanza.name);
  }

  sendRaw(xml: string, name: string): void {
    if (this.closed) return;
    this.sm.sent(xml, name);
    this.core.metrics.countOut(name);
    // Leaving (a drain, a stop): the client's last <a/> must cover everything it got, so nothing more
    // is written after the <r/> that asks for it; the rest stays unacknowledged and is stored offline
    // when the session ends (a message written now would reach the client and come again from there).
    if (this.conn && !this.leaving) {
      this.conn.write(xml);
      const request = this.sm.ackRequestDue();
      if (request) this.conn.write(request);
    }
  }

  close(condition?: string, text?: string, opts?: { ack?: boolean }): void {
    if (!this.conn) return void this.end('closed');
    if (opts?.ack && !this.conn.isClosing && !this.leaving) {
      // As in moveAway: nothing new is handled; what was taken gets a moment to complete, so the <a/>
      // counts it, and the client says what it received.
      this.leaving = true;
      this.forgetResumption();
      void Promise.all([this.sm.settled(MOVE_SETTLE_MS), this.sm.confirmReceived(this.conn, CONFIRM_RECEIVED_MS)]).then(() => {
        const conn = this.conn;
        if (!conn || conn.isClosing) return;
        const ack = this.sm.ack();
        if (ack) conn.write(ack);
        this.close(condition, text);
      });
      return;
    }
    if (condition) this.conn.streamError(condition as StreamErrorCondition, text);
    else this.conn.closeStream();
    // Closing on purpose: no resumption.
    this.forgetResumption();
  }

  /**
   * The node is draining: the client learns what was handled (so it resends nothing that is safe),
   * then is told to go elsewhere: see-other-host with otherHost, else system-shutdown. No resumption
   * here (the node goes away); the session ends when the connection closes.
   */
  async moveAway(otherHost: string | null, text = 'this node is draining; reconnect'): Promise<void> {
    this.forgetResumption();
    if (!this.conn) return void this.end('node drained');
    // From here on the client's stanzas are not handled (it sends them again elsewhere); those already
    // taken get a little time to complete (a room commit on another node), so the last <a/> counts them
    // and the client does not send them twice.
    this.leaving = true;
    await Promise.all([this.sm.settled(MOVE_SETTLE_MS), this.sm.confirmReceived(this.conn, CONFIRM_RECEIVED_MS)]);
    const conn = this.conn;
    if (!conn) return;
    const ack = this.sm.ack();
    if (ack) conn.write(ack);
    if (otherHost) conn.streamError('see-other-host', 'this node is draining; connect to the other host', otherHost);
    else conn.streamError('system-shutdown', text);
  }

  forgetResumption(): void {
    if (this.sm.id) this.core.resumable.delete(this.sm.id);
    this.sm.id = null;
  }

  /** A stanza from the client, on a bound stream. */
  fromClient(el: Element): void {
    const conn = this.conn;
    if (!conn) return;
    if (el.ns === NS.sm) return this.sm.element(el, conn);
    // Our side closed the stream (a drain, a stream error): what the client sent meanwhile is not
    // handled, so no <a/> counts it and the client sends it again wherever it reconnects.
    if (conn.isClosing || this.leaving) return;
    if (!STANZAS.has(el.name) || el.ns !== NS.client) {
      if (el.ns === NS.sasl || el.ns === NS.tls) {
        if (el.name === 'auth') {
          conn.send(new Element('failure', { xmlns: NS.sasl }).append(new Element('aborted')));
          return;
        }
      }
      if (el.ns === NS.csi || el.ns === NS.sm) {
        void this.core.hooks.fire('client/stanza', { stanza: el, session: this });
        return;
      }
      return conn.streamError('unsupported-stanza-type', `<${el.name} xmlns='${el.ns}'> is not a stanza`);
    }
    // Counted for XEP-0198 once its handling is complete (completion.ts), not now.
    const seq = this.sm.receive();
    if (seq === 0) return this.checked(el, conn);
    handleCounted(el, this.sm, seq, () => this.checked(el, conn));
  }

  /** A stanza from the client, checked and handed to the router. */
  private checked(el: Element, conn: Transport): void {
    this.core.metrics.countIn(el.name);
    const from = el.attrs.from;
    if (from !== undefined && from !== this.full && from !== this.bare) {
      const j = tryParseJid(from);
      if (!j || (j.toString() !== this.full && j.toString() !== this.bare)) {
        return conn.streamError('invalid-from', 'from does not match the bound JID');
      }
    }
    el.attrs.from = this.full;
    const to = el.attrs.to;
    if (to !== undefined && !tryParseJid(to)) {
      const reply = errorReply(el, new StanzaError('jid-malformed', 'invalid recipient address'));
      if (reply) { reply.attrs.from = to; this.send(reply); }
      return;
    }
    if (el.name === 'iq') {
      const type = el.attrs.type;
      if (type === undefined || !IQ_TYPES.has(type) || el.attrs.id === undefined) {
        return this.replyError(el, 'bad-request', 'an IQ needs an id and a type of get, set, result or error');
      }
      if (type === 'result' || type === 'error') this.sm.answeredIq(to === undefined ? '' : tryParseJid(to)!.toString(), el.attrs.id);
      if ((type === 'get' || type === 'set') && el.elements().length !== 1) {
        return this.replyError(el, 'bad-request', 'an IQ get or set carries exactly one child element');
      }
      if (el.getChild('bind', NS.bind) && type === 'set') {
        return this.replyError(el, 'not-allowed', 'a resource is already bound');
      }
    } else if (el.name === 'presence') {
      const type = el.attrs.type;
      if (type !== undefined && !PRESENCE_TYPES.has(type)) return this.replyError(el, 'bad-request', 'unknown presence type');
    }
    this.core.handleClientStanza(this, el);
  }

  private replyError(el: Element, condition: ConstructorParameters<typeof StanzaError>[0], text: string): void {
    const reply = errorReply(el, new StanzaError(condition, text));
    if (reply) {
      delete reply.attrs.to;
      if (el.attrs.to === undefined) delete reply.attrs.from;
      this.send(reply);
    }
  }

  /** Takes over a new connection for a resumed stream. */
  resumeOn(conn: Transport, h: number): boolean {
    if (this.resumeTimer) clearTimeout(this.resumeTimer);
    this.resumeTimer = null;
    const old = this.conn;
    this.conn = conn;
    if (old && old !== conn) old.destroy();
    return this.sm.resume(conn, h);
  }

  /** The socket closed. Resumable sessions wait; the rest end now. */
  connectionLost(conn: Transport): void {
    if (this.closed || conn !== this.conn) return;
    this.conn = null;
    if (this.sm.resumeWanted) {
      this.resumeTimer = setTimeout(() => this.end('resumption timed out'), this.core.config.streamManagement.resumeSeconds * 1000);
      this.resumeTimer.unref();
      return;
    }
    this.end('disconnected');
  }

  /** Ends the session for good: unavailable presence, unacked stanzas handled, record removed. */
  end(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    if (this.resumeTimer) clearTimeout(this.resumeTimer);
    if (this.sm.id) this.core.resumable.delete(this.sm.id);
    this.sm.stop();
    // What it took and is still handling completes after it ended: a client sending it again from a
    // new session waits for that before the server looks for it (src/modules/mam.ts).
    const handling = this.sm.pendingCount > 0 ? this.sm.settled(ENDED_SETTLE_MS) : null;
    void this.core.unbindSession(this, reason, this.sm.takeUnacked(), handling);
  }

  /** Replaced by a newer session on the same full JID. */
  replaced(): void {
    this.forgetResumption();
    if (this.conn) this.conn.streamError('conflict', 'replaced by a new session');
    this.end('replaced');
  }
}
