// A minimal XMPP client for the self-test: TCP to the c2s listener, STARTTLS when offered, SASL
// SCRAM (no PLAIN: the test must not send passwords in the clear, whatever the TLS outcome), resource
// binding, then stanzas in and out. It speaks to the server as any client would, so a passing test
// says the listener, TLS, authentication and routing work.
import net from 'node:net';
import tls from 'node:tls';
import { randomBytes } from 'node:crypto';
import { XmlStreamParser } from '../../protocol/xml-stream.js';
import { Element, serialize } from '../../protocol/xml.js';
import { NS } from '../../protocol/namespaces.js';
import { parseStanzaError } from '../../protocol/errors.js';
import { ScramClient, type ScramHash } from '../../protocol/sasl.js';

export interface ClientOptions {
  host: string;
  port: number;
  /** The server's domain (the stream's to, the TLS server name). */
  domain: string;
  username: string;
  password: string;
  resource?: string;
  timeoutMs: number;
}

/** How the TLS of a connection went: none, or upgraded with the certificate verified or not (and why). */
export interface TlsOutcome { used: boolean; verified: boolean; reason?: string; protocol?: string }

export class ClientError extends Error {}

type Waiter = { match: (e: Element) => boolean; resolve: (e: Element) => void };

export class SelftestClient {
  jid = '';
  tls: TlsOutcome = { used: false, verified: false };
  mechanism = '';
  private socket!: net.Socket;
  private parser!: XmlStreamParser;
  private waiters: Waiter[] = [];
  /** Stanzas nobody waited for yet, so that a reply arriving before its waiter is not lost. */
  private unclaimed: Element[] = [];
  private closed = false;
  private closeReason = '';
  private closeListeners: (() => void)[] = [];
  private nextId = 0;

  private constructor(private readonly opts: ClientOptions) {}

  /** Connects, secures, authenticates and binds; throws ClientError saying which part failed. */
  static async login(opts: ClientOptions): Promise<SelftestClient> {
    const c = new SelftestClient(opts);
    try {
      await c.connect();
      let features = await c.openStream();
      if (features.getChild('starttls', NS.tls)) {
        await c.startTls();
        features = await c.openStream();
      }
      await c.authenticate(features);
      features = await c.openStream();
      if (!features.getChild('bind', NS.bind)) throw new ClientError('the server offers no resource binding');
      await c.bind();
      return c;
    } catch (e) {
      c.close();
      throw e;
    }
  }

  private connect(): Promise<void> {
    const { host, port, timeoutMs } = this.opts;
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port });
      const timer = setTimeout(() => { socket.destroy(); reject(new ClientError(`no connection to ${host}:${port} in ${timeoutMs} ms`)); }, timeoutMs);
      socket.once('connect', () => { clearTimeout(timer); socket.off('error', onError); this.attach(socket); resolve(); });
      const onError = (e: Error) => { clearTimeout(timer); reject(new ClientError(`cannot connect to ${host}:${port}: ${(e as NodeJS.ErrnoException).code ?? e.message}`)); };
      socket.once('error', onError);
    });
  }

  private attach(socket: net.Socket): void {
    this.socket = socket;
    socket.on('data', (d: Buffer) => this.parser?.write(d));
    socket.on('error', (e) => this.onClose(`connection error: ${e.message}`));
    socket.on('close', () => this.onClose('the server closed the connection'));
  }

  private onClose(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.closeReason ||= reason;
    for (const l of this.closeListeners.splice(0)) l();
  }

  /** Sends a new stream header and resolves with the stream features. */
  private openStream(): Promise<Element> {
    this.parser = new XmlStreamParser({
      streamStart: () => {},
      stanza: (e) => this.deliver(e),
      streamEnd: () => { this.closeReason ||= 'the server closed the stream'; this.socket.end(); },
      error: (condition, text) => { this.closeReason ||= `unreadable stream from the server: ${condition} ${text}`; this.socket.destroy(); },
    });
    const features = this.waitFor((e) => e.is('features', NS.streams), 'stream features');
    this.write(`<?xml version='1.0'?><stream:stream xmlns='${NS.client}' xmlns:stream='${NS.streams}' to='${this.opts.domain}' version='1.0' xml:lang='en'>`);
    return features;
  }

  private deliver(e: Element): void {
    if (e.is('error', NS.streams)) {
      const condition = e.elements().find((c) => c.ns === NS.streamErrors && c.name !== 'text')?.name ?? 'undefined-condition';
      this.closeReason = `stream error from the server: ${condition}`;
    }
    const i = this.waiters.findIndex((w) => w.match(e));
    if (i === -1) {
      this.unclaimed.push(e);
      if (this.unclaimed.length > 200) this.unclaimed.shift();
      return;
    }
    const [w] = this.waiters.splice(i, 1);
    w!.resolve(e);
  }

  write(data: string | Element): void {
    if (this.closed) return;
    this.socket.write(typeof data === 'string' ? data : serialize(data));
  }

  /** Resolves with the first stanza (already received or coming) that matches; rejects on timeout or close. */
  waitFor(match: (e: Element) => boolean, what: string, timeoutMs = this.opts.timeoutMs): Promise<Element> {
    const i = this.unclaimed.findIndex(match);
    if (i !== -1) return Promise.resolve(this.unclaimed.splice(i, 1)[0]!);
    if (this.closed) return Promise.reject(new ClientError(`${this.closeReason} while waiting for ${what}`));
    const waiting = new Promise<Element>((resolve, reject) => {
      const waiter: Waiter = {
        match,
        resolve: (e) => { clearTimeout(timer); this.closeListeners = this.closeListeners.filter((l) => l !== onClose); resolve(e); },
      };
      const drop = () => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        this.closeListeners = this.closeListeners.filter((l) => l !== onClose);
      };
      const timer = setTimeout(() => { drop(); reject(new ClientError(`no ${what} in ${timeoutMs} ms`)); }, timeoutMs);
      const onClose = () => { clearTimeout(timer); drop(); reject(new ClientError(`${this.closeReason} while waiting for ${what}`)); };
      this.waiters.push(waiter);
      this.closeListeners.push(onClose);
    });
    // A wait given up on (another failed first) must not become an unhandled rejection in the server.
    waiting.catch(() => {});
    return waiting;
  }

  /** Removes and returns the stanzas received and not waited for that match. */
  takeAll(match: (e: Element) => boolean): Element[] {
    const taken = this.unclaimed.filter(match);
    this.unclaimed = this.unclaimed.filter((e) => !match(e));
    return taken;
  }

  private async startTls(): Promise<void> {
    const proceed = this.waitFor((e) => e.ns === NS.tls, 'STARTTLS answer');
    this.write(`<starttls xmlns='${NS.tls}'/>`);
    const answer = await proceed;
    if (!answer.is('proceed')) throw new ClientError('the server refused STARTTLS');
    const plain = this.socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    plain.removeAllListeners('error');
    await new Promise<void>((resolve, reject) => {
      // The server's certificate is self-signed unless the operator installed one: accept it, and say whether it verified.
      const secure = tls.connect({ socket: plain, servername: this.opts.domain, rejectUnauthorized: false });
      const timer = setTimeout(() => { secure.destroy(); reject(new ClientError(`no TLS handshake in ${this.opts.timeoutMs} ms`)); }, this.opts.timeoutMs);
      secure.once('secureConnect', () => {
        clearTimeout(timer);
        secure.off('error', onError);
        const reason = secure.authorizationError ? String(secure.authorizationError) : undefined;
        this.tls = { used: true, verified: secure.authorized, ...(reason ? { reason } : {}), protocol: secure.getProtocol() ?? undefined };
        this.attach(secure);
        resolve();
      });
      const onError = (e: Error) => { clearTimeout(timer); reject(new ClientError(`TLS handshake failed: ${e.message}`)); };
      secure.once('error', onError);
    });
  }

  private async authenticate(features: Element): Promise<void> {
    const offered = (features.getChild('mechanisms', NS.sasl)?.getChildren('mechanism') ?? []).map((m) => m.text().trim());
    const hash: ScramHash | null = offered.includes('SCRAM-SHA-256') ? 'SHA-256' : offered.includes('SCRAM-SHA-1') ? 'SHA-1' : null;
    if (!hash) throw new ClientError(`the server offers no SCRAM mechanism without channel binding (offered: ${offered.join(', ') || 'none'})`);
    this.mechanism = `SCRAM-${hash}`;
    const scram = new ScramClient(hash, this.opts.username, this.opts.password);
    const sasl = (e: Element) => e.ns === NS.sasl;
    let reply = this.waitFor(sasl, 'SASL challenge');
    this.write(new Element('auth', { xmlns: NS.sasl, mechanism: this.mechanism }).t(scram.first().toString('base64')));
    let step = await reply;
    if (step.is('failure')) throw saslFailure(step);
    if (!step.is('challenge')) throw new ClientError(`unexpected SASL answer <${step.name}/>`);
    let response: Buffer;
    try {
      response = await scram.final(Buffer.from(step.text(), 'base64'));
    } catch (e) {
      throw new ClientError(`bad SCRAM challenge: ${(e as Error).message}`);
    }
    reply = this.waitFor(sasl, 'SASL outcome');
    this.write(new Element('response', { xmlns: NS.sasl }).t(response.toString('base64')));
    step = await reply;
    if (step.is('failure')) throw saslFailure(step);
    if (!step.is('success')) throw new ClientError(`unexpected SASL answer <${step.name}/>`);
    if (!scram.verifyServer(Buffer.from(step.text(), 'base64'))) throw new ClientError('the server\'s SCRAM signature is wrong (it does not hold this account\'s keys)');
  }

  private async bind(): Promise<void> {
    const iq = new Element('iq', { type: 'set', id: this.id('bind') });
    iq.c('bind', { xmlns: NS.bind }).c('resource').t(this.opts.resource ?? `selftest-${randomBytes(3).toString('hex')}`);
    const reply = await this.request(iq, 'bind result');
    const jid = reply.getChild('bind', NS.bind)?.getChildText('jid');
    if (!jid) throw new ClientError('bind answered without a JID');
    this.jid = jid;
  }

  id(prefix = 'st'): string {
    return `${prefix}-${++this.nextId}-${randomBytes(3).toString('hex')}`;
  }

  /** Sends an IQ and resolves with its result; an error reply throws ClientError with the condition and text. */
  async request(iq: Element, what: string, timeoutMs?: number): Promise<Element> {
    iq.attrs.id ??= this.id();
    const id = iq.attrs.id;
    const reply = this.waitFor((e) => e.name === 'iq' && e.attrs.id === id && (e.attrs.type === 'result' || e.attrs.type === 'error'), what, timeoutMs);
    this.write(iq);
    const r = await reply;
    if (r.attrs.type === 'error') throw new ClientError(`${what}: ${errorText(r)}`);
    return r;
  }

  /** Ends the stream politely and waits (briefly) for the server to close its side. */
  async logout(): Promise<void> {
    if (this.closed) throw new ClientError(`${this.closeReason} before logging off`);
    let timer: NodeJS.Timeout | undefined;
    const done = new Promise<void>((resolve) => {
      this.closeListeners.push(resolve);
      timer = setTimeout(resolve, this.opts.timeoutMs);
    });
    this.write('</stream:stream>');
    await done;
    clearTimeout(timer);
    this.socket.destroy();
  }

  close(): void {
    this.socket?.destroy();
  }
}

function saslFailure(e: Element): ClientError {
  const condition = e.elements().find((c) => c.name !== 'text')?.name ?? 'failure';
  const text = e.getChildText('text');
  return new ClientError(`authentication failed: ${condition}${text ? ` (${text})` : ''}`);
}

/** An error stanza's condition and text, as one line. */
export function errorText(stanza: Element): string {
  const err = parseStanzaError(stanza);
  if (!err) return 'error';
  return err.text ? `${err.condition} (${err.text})` : err.condition;
}
