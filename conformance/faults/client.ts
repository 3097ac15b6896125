// The client of the fault-injection runs: a raw-socket XMPP client with stream management (XEP-0198,
// resumption on) that behaves as a careful real client does. It numbers every stanza it sends, learns
// from <a h/> which of its messages the server acknowledged, logs every message it receives, and when
// its connection drops it reconnects to another live node, tries to resume, else logs in afresh,
// rejoins its rooms and sends again (same origin-id, XEP-0359) every message not acknowledged.
import net from 'node:net';
import tls from 'node:tls';
import { XmlStreamParser } from '../../protocol/xml-stream.js';
import { Element, escapeAttr, escapeText } from '../../protocol/xml.js';

const NS_SM = 'urn:xmpp:sm:3';
const NS_MUC = 'http://jabber.org/protocol/muc';
const NS_MUC_USER = 'http://jabber.org/protocol/muc#user';
const NS_MAM = 'urn:xmpp:mam:2';
const NS_SID = 'urn:xmpp:sid:0';
const NS_STREAMS = 'http://etherx.jabber.org/streams';
const NS_STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';

/** One numbered message of the run: its token is the body, the message id and the origin-id. */
export interface Outgoing {
  token: string;
  kind: 'room' | 'chat';
  /** Room bare JID or recipient bare JID. */
  to: string;
  created: number;
  /** First written to a socket. */
  sentAt?: number;
  /** Covered by an <a h/> (or <resumed h/>) from the server. */
  ackedAt?: number;
  /** The room reflected it back to the sender. */
  reflectedAt?: number;
  writes: number;
  errors: string[];
}

export interface Received {
  token: string;
  at: number;
  /** The room's stanza-id (XEP-0359), when given. */
  stanzaId?: string;
}

export interface ClientEvent { at: number; what: string }

export interface ClientOptions {
  user: string;
  password: string;
  resource: string;
  nick: string;
  domain: string;
  mucDomain: string;
  /** The node this client starts on; reconnections try the others first. */
  home: number;
  /** The c2s ports of the nodes up now (null for a node that is down), asked at each reconnection. */
  livePorts(): (number | null)[];
}

interface StanzaSlot { n: number; msg: Outgoing | null; xml: string }

export class FaultClient {
  readonly outgoing = new Map<string, Outgoing>();
  /** Per room bare JID: tokens received live, in order. */
  readonly roomLog = new Map<string, Received[]>();
  readonly chatLog: Received[] = [];
  /** Per room (or '' for the own archive): tokens MAM returned, in archive order. */
  readonly mam = new Map<string, string[]>();
  readonly events: ClientEvent[] = [];
  /** Connections lost, resumptions done, fresh logins after a failed or impossible resumption. */
  drops = 0;
  resumes = 0;
  freshLogins = 0;
  node = -1;

  private socket: net.Socket | tls.TLSSocket | null = null;
  private parser: XmlStreamParser | null = null;
  private waiters: { pred: (el: Element) => boolean; resolve: (el: Element) => void }[] = [];
  private established = false;
  private stopping = false;
  private smId: string | null = null;
  private handledIn = 0;
  private outCount = 0;
  private unackedSlots: StanzaSlot[] = [];
  /** Created but never written (not connected, or the room not joined). */
  private pendingWrite: Outgoing[] = [];
  private readonly rooms = new Set<string>();
  private readonly joined = new Set<string>();
  private readonly iqs = new Map<string, (el: Element) => void>();
  private seq = 0;
  private reconnecting: Promise<void> | null = null;
  /** Joins again, now and then, the rooms a fresh session is not in yet (a room between nodes may not answer). */
  private readonly rejoinTimer = setInterval(() => {
    if (!this.established) return;
    for (const room of this.rooms) if (!this.joined.has(room)) this.sendJoin(room);
  }, 3000);

  constructor(readonly opts: ClientOptions, private readonly tokenPrefix: string) {}

  get bare(): string { return `${this.opts.user}@${this.opts.domain}`; }
  get connected(): boolean { return this.established; }

  private log(what: string): void {
    this.events.push({ at: Date.now(), what });
  }

  // --- connection ------------------------------------------------------------------------------

  /** First connection, to the home node. */
  async start(): Promise<void> {
    const port = this.opts.livePorts()[this.opts.home];
    if (!port) throw new Error(`node ${this.opts.home} is down`);
    await this.connect(port, this.opts.home);
  }

  private async connect(port: number, node: number): Promise<void> {
    this.established = false;
    this.joined.clear();
    const sock = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.setTimeout(10_000, () => s.destroy(new Error('connect timed out')));
      s.once('connect', () => { s.setTimeout(0); s.off('error', reject); resolve(s); });
      s.once('error', reject);
    });
    this.attach(sock);
    try {
      await this.openStream();
      this.write(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`);
      await this.next((el) => el.name === 'proceed');
      const secure = await new Promise<tls.TLSSocket>((resolve, reject) => {
        sock.removeAllListeners('data');
        sock.removeAllListeners('close');
        const t = tls.connect({ socket: sock, rejectUnauthorized: false, servername: this.opts.domain });
        // A node dying mid-handshake may just close: never wait for it forever.
        const timer = setTimeout(() => { t.destroy(); reject(new Error('TLS handshake timed out')); }, 10_000);
        t.once('secureConnect', () => { clearTimeout(timer); resolve(t); });
        t.once('error', (e) => { clearTimeout(timer); reject(e); });
        t.once('close', () => { clearTimeout(timer); reject(new Error('connection closed during TLS')); });
      });
      this.attach(secure);
      await this.openStream();
      this.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${this.opts.user}\0${this.opts.password}`).toString('base64')}</auth>`);
      const outcome = await this.next((el) => el.name === 'success' || el.name === 'failure');
      if (outcome.name !== 'success') throw new Error(`authentication failed: ${outcome.toString()}`);
      await this.openStream();
      this.node = node;
      if (this.smId && (await this.tryResume())) return;
      await this.freshSession();
    } catch (e) {
      this.socket?.destroy();
      throw e;
    }
  }

  private attach(sock: net.Socket | tls.TLSSocket): void {
    this.socket = sock;
    sock.on('data', (d: Buffer) => { if (this.socket === sock) this.parser?.write(d); });
    sock.on('error', () => {});
    sock.on('close', () => { if (this.socket === sock) this.lost('connection closed'); });
  }

  private openStream(): Promise<Element> {
    this.parser = new XmlStreamParser({
      streamStart: () => {},
      stanza: (el) => this.incoming(el),
      streamEnd: () => this.socket?.destroy(),
      error: () => this.socket?.destroy(),
    }, { maxStanzaSize: 4 * 1024 * 1024, maxDepth: 64 });
    this.write(`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='${NS_STREAMS}' to='${this.opts.domain}' version='1.0'>`);
    return this.next((el) => el.name === 'features' && el.ns === NS_STREAMS);
  }

  private next(pred: (el: Element) => boolean, timeoutMs = 10_000): Promise<Element> {
    return new Promise((resolve, reject) => {
      const w = { pred, resolve: (el: Element) => { clearTimeout(timer); sock?.off('close', onClose); resolve(el); } };
      const sock = this.socket;
      const onClose = () => { this.waiters = this.waiters.filter((x) => x !== w); clearTimeout(timer); reject(new Error('connection closed')); };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        sock?.off('close', onClose);
        reject(new Error('timed out'));
      }, timeoutMs);
      sock?.once('close', onClose);
      this.waiters.push(w);
    });
  }

  private async tryResume(): Promise<boolean> {
    this.write(`<resume xmlns='${NS_SM}' previd='${escapeAttr(this.smId!)}' h='${this.handledIn >>> 0}'/>`);
    const r = await this.next((el) => el.ns === NS_SM && (el.name === 'resumed' || el.name === 'failed'));
    if (r.name === 'failed') {
      this.log(`resume failed: ${r.elements()[0]?.name ?? '?'}${r.attrs.h ? ` (h ${r.attrs.h})` : ''}`);
      // XEP-0198 §5: a server may still say what it handled; those are not sent again.
      if (r.attrs.h !== undefined && Number.isFinite(Number(r.attrs.h))) this.acknowledge(Number(r.attrs.h));
      this.smId = null;
      return false;
    }
    return true;
  }

  /**
   * <resumed/>, handled as it is parsed: the stanzas the server sends again follow it in the same
   * read, and must be counted and logged as the established stream's.
   */
  private onResumed(r: Element): void {
    this.resumes++;
    this.log(`resumed on node ${this.node}`);
    this.acknowledge(Number(r.attrs.h));
    // The rest of the old stream is sent again, numbered on from the server's h.
    const again = this.unackedSlots;
    this.unackedSlots = [];
    this.outCount = Number(r.attrs.h) >>> 0;
    this.established = true;
    for (const room of this.rooms) this.joined.add(room);
    for (const s of again) this.sendCounted(s.xml, s.msg);
    this.flushPending();
  }

  private async freshSession(): Promise<void> {
    if (this.smId !== null || this.unackedSlots.length || this.handledIn) this.freshLogins++;
    this.write(`<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>${escapeText(this.opts.resource)}</resource></bind></iq>`);
    const bound = await this.next((el) => el.name === 'iq' && el.attrs.id === 'bind');
    if (bound.attrs.type !== 'result') throw new Error(`bind failed: ${bound.toString()}`);
    this.write(`<enable xmlns='${NS_SM}' resume='true'/>`);
    const enabled = await this.next((el) => el.ns === NS_SM && (el.name === 'enabled' || el.name === 'failed'));
    if (enabled.name !== 'enabled') throw new Error('stream management refused');
    this.smId = enabled.attrs.id ?? null;
    this.handledIn = 0;
    this.outCount = 0;
    // Messages the old stream never got acknowledged go again, same origin-id; the rest of it is gone.
    const again = this.unackedSlots.filter((s) => s.msg && s.msg.ackedAt === undefined).map((s) => s.msg!);
    this.unackedSlots = [];
    this.pendingWrite = [...again.filter((m) => !this.pendingWrite.includes(m)), ...this.pendingWrite];
    this.established = true;
    this.log(`logged in on node ${this.node}`);
    this.sendCounted('<presence/>', null);
    for (const room of this.rooms) this.sendJoin(room);
    this.flushPending();
  }

  private lost(reason: string): void {
    const wasUp = this.established;
    this.established = false;
    this.joined.clear();
    if (this.stopping || !wasUp) return;
    this.drops++;
    this.log(`lost: ${reason}`);
    this.ensureReconnecting();
  }

  private ensureReconnecting(): void {
    if (this.reconnecting || this.stopping) return;
    this.reconnecting = this.reconnectLoop().finally(() => {
      this.reconnecting = null;
      // Lost again between connecting and here: that loss found the loop still running.
      if (!this.established) this.ensureReconnecting();
    });
  }

  private async reconnectLoop(): Promise<void> {
    for (let attempt = 0; !this.stopping; attempt++) {
      const ports = this.opts.livePorts();
      // The same node while it is up (a dropped connection), else the next live one.
      const order = [0, 1, 2].map((d) => (this.node + d) % ports.length).concat(ports.map((_, i) => i));
      for (const i of [...new Set(order)]) {
        const port = ports[i];
        if (!port || this.stopping) continue;
        try {
          await this.connect(port, i);
          // Stopped meanwhile: close what was just opened, so no session outlives the round.
          if (this.stopping) {
            this.write('</stream:stream>');
            this.socket?.end();
          }
          return;
        } catch (e) {
          this.log(`reconnect to node ${i} failed: ${(e as Error).message}`);
        }
      }
      await new Promise((r) => setTimeout(r, Math.min(1000, 100 * (attempt + 1))));
    }
  }

  /** Waits until connected again (or gives up at the deadline). */
  async waitConnected(deadline: number): Promise<boolean> {
    while (!this.established && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    return this.established;
  }

  // --- sending ---------------------------------------------------------------------------------

  private write(s: string): void {
    if (this.socket && !this.socket.destroyed) this.socket.write(s);
  }

  /** Writes a stanza counted by stream management, and asks for an ack right after it. */
  private sendCounted(xml: string, msg: Outgoing | null): void {
    this.outCount = (this.outCount + 1) >>> 0;
    this.unackedSlots.push({ n: this.outCount, msg, xml });
    if (msg) {
      msg.sentAt ??= Date.now();
      msg.writes++;
    }
    this.write(xml + `<r xmlns='${NS_SM}'/>`);
  }

  private acknowledge(h: number): void {
    const now = Date.now();
    // Slot numbers are increasing within a stream; h counts modulo 2^32 but runs stay far below.
    while (this.unackedSlots.length && this.unackedSlots[0]!.n <= h) {
      const s = this.unackedSlots.shift()!;
      if (s.msg && s.msg.ackedAt === undefined) s.msg.ackedAt = now;
    }
  }

  private messageXml(m: Outgoing): string {
    const type = m.kind === 'room' ? 'groupchat' : 'chat';
    return `<message to='${escapeAttr(m.to)}' type='${type}' id='${m.token}'><body>F ${m.token}</body>` +
      `<origin-id xmlns='${NS_SID}' id='${m.token}'/></message>`;
  }

  /** Creates the next numbered message and sends it when it can (connected, and the room joined). */
  post(kind: 'room' | 'chat', to: string): Outgoing {
    const token = `${this.tokenPrefix}.${++this.seq}`;
    const m: Outgoing = { token, kind, to, created: Date.now(), writes: 0, errors: [] };
    this.outgoing.set(token, m);
    this.pendingWrite.push(m);
    this.flushPending();
    return m;
  }

  private flushPending(): void {
    if (!this.established) return;
    const keep: Outgoing[] = [];
    for (const m of this.pendingWrite) {
      if (m.ackedAt !== undefined) continue;
      if (m.kind === 'room' && !this.joined.has(m.to)) keep.push(m);
      else this.sendCounted(this.messageXml(m), m);
    }
    this.pendingWrite = keep;
  }

  /** Messages never written to any socket (the client could not send them before the round ended). */
  unsent(): number {
    return [...this.outgoing.values()].filter((m) => m.writes === 0).length;
  }

  // --- rooms -----------------------------------------------------------------------------------

  private sendJoin(room: string): void {
    this.sendCounted(`<presence to='${escapeAttr(`${room}/${this.opts.nick}`)}'><x xmlns='${NS_MUC}'><history maxstanzas='0'/></x></presence>`, null);
  }

  /** Joins a room (and rejoins it after every fresh login); resolves once the self-presence came. */
  async join(room: string, timeoutMs = 10_000): Promise<void> {
    this.rooms.add(room);
    if (this.joined.has(room)) return;
    const until = Date.now() + timeoutMs;
    for (;;) {
      const got = this.next((el) => el.name === 'presence' && el.attrs.from === `${room}/${this.opts.nick}`, Math.max(1, until - Date.now()));
      this.sendJoin(room);
      const p = await got;
      if (p.attrs.type !== 'error') return;
      // A refusal of type wait (the node fenced off while its Redis renewals lag) says to try again
      // later, and a client does: only another refusal, or one that outlasts the timeout, fails the join.
      const wait = p.getChild('error')?.attrs.type === 'wait';
      if (!wait || Date.now() + 250 > until) throw new Error(`join ${room} refused: ${p.toString()}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  async iq(type: 'get' | 'set', to: string | undefined, payload: string, timeoutMs = 15_000): Promise<Element> {
    const id = `iq${++this.seq}`;
    const res = new Promise<Element>((resolve, reject) => {
      const timer = setTimeout(() => { this.iqs.delete(id); reject(new Error(`iq ${id} timed out`)); }, timeoutMs);
      this.iqs.set(id, (el) => { clearTimeout(timer); resolve(el); });
    });
    this.sendCounted(`<iq type='${type}' id='${id}'${to ? ` to='${escapeAttr(to)}'` : ''}>${payload}</iq>`, null);
    const el = await res;
    if (el.attrs.type === 'error') throw new Error(`iq error: ${el.toString()}`);
    return el;
  }

  /** Makes a new room persistent (the creator is its owner). */
  async configurePersistent(room: string): Promise<void> {
    await this.iq('set', room, `<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>` +
      `<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>` +
      `<field var='muc#roomconfig_persistentroom'><value>1</value></field></x></query>`);
  }

  /** Every message of an archive (a room's, or with `to` undefined the own one) through MAM, page by page. */
  async mamAll(to: string | undefined): Promise<string[]> {
    const key = to ?? '';
    const tokens: string[] = [];
    this.mam.set(key, tokens);
    let after: string | null = null;
    for (let page = 0; page < 200; page++) {
      const qid = `q${++this.seq}`;
      this.mamQuery = { qid, tokens };
      const rsm = `<set xmlns='http://jabber.org/protocol/rsm'><max>100</max>${after ? `<after>${escapeText(after)}</after>` : ''}</set>`;
      const res = await this.iq('set', to, `<query xmlns='${NS_MAM}' queryid='${qid}'>${rsm}</query>`, 30_000);
      const fin = res.getChild('fin', NS_MAM);
      const last = fin?.getChild('set', 'http://jabber.org/protocol/rsm')?.getChildText('last');
      if (fin?.attrs.complete === 'true' || !last) break;
      after = last;
    }
    this.mamQuery = null;
    return tokens;
  }
  private mamQuery: { qid: string; tokens: string[] } | null = null;

  // --- receiving -------------------------------------------------------------------------------

  private incoming(el: Element): void {
    if (el.ns === NS_SM && el.name === 'resumed' && !this.established) this.onResumed(el);
    for (const w of this.waiters) {
      if (w.pred(el)) {
        this.waiters = this.waiters.filter((x) => x !== w);
        w.resolve(el);
        break;
      }
    }
    if (el.ns === NS_SM) {
      if (el.name === 'r') this.write(`<a xmlns='${NS_SM}' h='${this.handledIn >>> 0}'/>`);
      else if (el.name === 'a') this.acknowledge(Number(el.attrs.h));
      return;
    }
    if (el.name === 'error' && el.ns === NS_STREAMS) {
      this.log(`stream error: ${el.elements()[0]?.name ?? '?'}`);
      return;
    }
    if (!this.established) return;
    if (el.name !== 'message' && el.name !== 'presence' && el.name !== 'iq') return;
    this.handledIn = (this.handledIn + 1) >>> 0;
    const now = Date.now();
    if (el.name === 'iq') {
      const id = el.attrs.id;
      if ((el.attrs.type === 'result' || el.attrs.type === 'error') && id && this.iqs.has(id)) {
        const f = this.iqs.get(id)!;
        this.iqs.delete(id);
        f(el);
      } else if (el.attrs.type === 'get' || el.attrs.type === 'set') {
        this.sendCounted(`<iq type='error' id='${escapeAttr(id ?? '')}' to='${escapeAttr(el.attrs.from ?? '')}'><error type='cancel'><service-unavailable xmlns='${NS_STANZAS}'/></error></iq>`, null);
      }
      return;
    }
    if (el.name === 'presence') {
      const from = el.attrs.from ?? '';
      const slash = from.indexOf('/');
      const room = slash === -1 ? from : from.slice(0, slash);
      const selfPresence = (el.getChild('x', NS_MUC_USER)?.getChildren('status') ?? []).some((s) => s.attrs.code === '110');
      // An unavailable for our nick without status 110 is another session of ours (the one replaced) leaving.
      if (this.rooms.has(room) && from.slice(slash + 1) === this.opts.nick && (selfPresence || el.attrs.type === 'error')) {
        if (el.attrs.type === 'error' || el.attrs.type === 'unavailable') {
          this.joined.delete(room);
          this.log(`room ${room}: ${el.attrs.type} ${el.getChild('error')?.elements()[0]?.name ?? ''}`);
          // A real client tries again; the room may be between nodes.
          if (el.attrs.type === 'error') setTimeout(() => { if (this.established && !this.joined.has(room)) this.sendJoin(room); }, 1000);
        } else {
          this.joined.add(room);
          this.flushPending();
        }
      }
      return;
    }
    // message
    const result = el.getChild('result', NS_MAM);
    if (result) {
      if (this.mamQuery && result.attrs.queryid === this.mamQuery.qid) {
        const body = result.getChild('forwarded', 'urn:xmpp:forward:0')?.getChild('message')?.getChildText('body');
        if (body?.startsWith('F ')) this.mamQuery.tokens.push(body.slice(2));
      }
      return;
    }
    if (el.attrs.type === 'error') {
      const token = el.attrs.id ?? '';
      const m = this.outgoing.get(token);
      const cond = el.getChild('error')?.elements().find((c) => c.ns === NS_STANZAS)?.name ?? 'error';
      if (m) m.errors.push(cond);
      else this.log(`message error ${cond} (id ${token})`);
      return;
    }
    const body = el.getChildText('body');
    if (!body?.startsWith('F ')) return;
    const token = body.slice(2);
    const from = el.attrs.from ?? '';
    if (el.attrs.type === 'groupchat') {
      const room = from.split('/')[0]!;
      if (el.getChild('delay', 'urn:xmpp:delay')) return; // history, not live
      const stanzaId = el.getChildren('stanza-id', NS_SID).find((s) => s.attrs.by === room)?.attrs.id;
      let list = this.roomLog.get(room);
      if (!list) this.roomLog.set(room, (list = []));
      list.push({ token, at: now, ...(stanzaId ? { stanzaId } : {}) });
      const mine = this.outgoing.get(token);
      if (mine && mine.reflectedAt === undefined) mine.reflectedAt = now;
    } else {
      this.chatLog.push({ token, at: now });
    }
  }

  /** Drops the TCP connection as a network failure would (no stream close): the client resumes. */
  dropConnection(): void {
    this.socket?.destroy();
  }

  // --- end -------------------------------------------------------------------------------------

  /** Closes the stream cleanly, so no resumable session is left behind on the server. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.rejoinTimer);
    const sock = this.socket;
    if (!sock || sock.destroyed) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => { sock.destroy(); resolve(); }, 2000);
      sock.once('close', () => { clearTimeout(t); resolve(); });
      if (this.established) this.write(`<a xmlns='${NS_SM}' h='${this.handledIn >>> 0}'/>`);
      this.write('</stream:stream>');
      sock.end();
    });
  }

  /** kill: drops the socket without closing anything (used for cleanup after failures). */
  destroy(): void {
    this.stopping = true;
    clearInterval(this.rejoinTimer);
    this.socket?.destroy();
  }
}
