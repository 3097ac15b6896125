// XMPP over WebSocket (RFC 7395) and XEP-0156 discovery, over real sockets: a WebSocket client
// (the ws package) opens, authenticates with SCRAM, binds, exchanges messages with a TCP client and
// closes; the refusals (subprotocol, origin, oversize stanza); host-meta in XML and JSON.
import { expect } from 'chai';
import https from 'node:https';
import WebSocket from 'ws';
import { ScramClient } from '../protocol/sasl.js';
import { parseStanzaString } from '../protocol/xml-stream.js';
import type { Element } from '../protocol/xml.js';
import { NS_FRAMING } from '../protocol/framing.js';
import { startServer, login, xml, type RunningServer } from './harness.js';

const SASL = 'urn:ietf:params:xml:ns:xmpp-sasl';
const BIND = 'urn:ietf:params:xml:ns:xmpp-bind';
const STREAMS = 'http://etherx.jabber.org/streams';

/** A WebSocket XMPP client at the wire level: every message is kept, raw and parsed. */
class WsClient {
  readonly raw: string[] = [];
  private readonly waiters = new Set<() => void>();
  private taken = 0;
  readonly closed: Promise<number>;

  constructor(readonly ws: WebSocket) {
    ws.on('message', (d) => {
      this.raw.push(d.toString());
      for (const w of [...this.waiters]) w();
    });
    this.closed = new Promise((r) => ws.on('close', (code) => { r(code); for (const w of [...this.waiters]) w(); }));
  }

  static connect(port: number, opts: { protocol?: string; origin?: string; plain?: boolean; headers?: Record<string, string> } = {}): Promise<WsClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`${opts.plain ? 'ws' : 'wss'}://127.0.0.1:${port}/xmpp-websocket`, opts.protocol ?? 'xmpp', {
        rejectUnauthorized: false, ...(opts.origin ? { origin: opts.origin } : {}), ...(opts.headers ? { headers: opts.headers } : {}),
      });
      ws.once('open', () => resolve(new WsClient(ws)));
      ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })));
      ws.once('error', reject);
    });
  }

  send(s: string): void {
    this.ws.send(s);
  }

  /** The next message not yet taken, parsed. */
  next(timeoutMs = 5000): Promise<{ raw: string; el: Element }> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.taken < this.raw.length) {
          const raw = this.raw[this.taken++]!;
          clearTimeout(timer);
          this.waiters.delete(check);
          const el = parseStanzaString(raw, 'jabber:client');
          if (!el) return reject(new Error(`not one element: ${raw}`));
          resolve({ raw, el });
        }
      };
      const timer = setTimeout(() => { this.waiters.delete(check); reject(new Error(`timed out; got ${this.raw.join('\n')}`)); }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  async open(): Promise<Element> {
    this.send(`<open xmlns='${NS_FRAMING}' to='localhost' version='1.0'/>`);
    const open = await this.next();
    expect(open.el.name).to.equal('open');
    expect(open.el.ns).to.equal(NS_FRAMING);
    expect(open.el.attrs.from).to.equal('localhost');
    expect(open.el.attrs.version).to.equal('1.0');
    const features = await this.next();
    expect(features.el.name).to.equal('features');
    expect(features.el.ns).to.equal(STREAMS);
    expect(features.raw).to.contain(`xmlns:stream='${STREAMS}'`);
    return features.el;
  }

  async login(user: string, password: string, opts: { bind?: boolean } = {}): Promise<string> {
    const features = await this.open();
    const mechs = features.getChild('mechanisms', SASL)!.getChildren('mechanism').map((m) => m.children.join(''));
    expect(mechs).to.include('SCRAM-SHA-256');
    expect(features.getChild('starttls')).to.equal(undefined);
    const scram = new ScramClient('SHA-256', user, password);
    this.send(`<auth xmlns='${SASL}' mechanism='SCRAM-SHA-256'>${scram.first().toString('base64')}</auth>`);
    const challenge = await this.next();
    expect(challenge.el.name).to.equal('challenge');
    const final = await scram.final(Buffer.from(challenge.el.children.join(''), 'base64'));
    this.send(`<response xmlns='${SASL}'>${final.toString('base64')}</response>`);
    const success = await this.next();
    expect(success.el.name).to.equal('success');
    expect(scram.verifyServer(Buffer.from(success.el.children.join(''), 'base64'))).to.equal(true);
    // RFC 7395 §3.5: the stream restarts with a new <open/> on the same WebSocket.
    const again = await this.open();
    expect(again.getChild('bind', BIND)).to.not.equal(undefined);
    expect(again.getChild('sm', 'urn:xmpp:sm:3')).to.not.equal(undefined);
    if (opts.bind === false) return '';
    this.send(`<iq xmlns='jabber:client' type='set' id='b1'><bind xmlns='${BIND}'><resource>web</resource></bind></iq>`);
    const bound = await this.next();
    expect(bound.el.attrs.type).to.equal('result');
    return bound.el.getChild('bind', BIND)!.getChild('jid')!.children.join('');
  }
}

function get(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    https.get({ host: '127.0.0.1', port, path, rejectUnauthorized: false, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    }).on('error', reject);
  });
}

describe('WebSocket (RFC 7395) and host-meta (XEP-0156)', function () {
  this.timeout(30000);
  let server: RunningServer;
  let port: number;

  before(async function () {
    this.timeout(90000);
    server = await startServer({
      users: { alice: 'pw', bob: 'pw' },
      // WebSocket pings after 5 s of silence (the least ping.idleSeconds allows).
      configYaml: 'websocket:\n  allowedOrigins: ["https://chat.example.org"]\nlisten:\n  websocketPlain: { host: 127.0.0.1, port: 0 }\nping:\n  idleSeconds: 5\n',
    });
    port = server.ports.websocket!;
    expect(port).to.be.a('number').above(0);
  });
  after(async () => {
    await server?.stop();
  });

  it('opens, authenticates with SCRAM, binds, exchanges messages with a TCP client and closes', async () => {
    const ws = await WsClient.connect(port);
    expect(ws.ws.protocol).to.equal('xmpp');
    const jid = await ws.login('alice', 'pw');
    expect(jid).to.match(/^alice@localhost\/web/);
    const bob = await login(server.ports.c2s, 'bob', 'pw');
    try {
      await bob.xmpp.send(xml('message', { to: jid, type: 'chat', id: 'm1' }, xml('body', {}, 'to the browser')));
      const got = await ws.next();
      expect(got.el.name).to.equal('message');
      // Each top-level stanza names its namespace: there is no stream root to inherit it from.
      expect(got.raw).to.match(/^<message [^>]*xmlns='jabber:client'/);
      expect(got.el.getChild('body')!.children.join('')).to.equal('to the browser');
      ws.send(`<message xmlns='jabber:client' to='${bob.jid}' type='chat' id='m2'><body>from the browser</body></message>`);
      const back = await bob.waitFor((el) => el.is('message') && el.getChildText('body') === 'from the browser');
      expect(back.attrs.from).to.equal(jid);
      ws.send(`<close xmlns='${NS_FRAMING}'/>`);
      const close = await ws.next();
      expect(close.el.name).to.equal('close');
      expect(close.el.ns).to.equal(NS_FRAMING);
      expect(await ws.closed).to.equal(1000);
    } finally {
      await bob.stop();
    }
  });

  it('refuses a client that does not ask for the xmpp subprotocol', async () => {
    const err = await WsClient.connect(port, { protocol: 'chat' }).then(() => null, (e: { status?: number }) => e);
    expect(err?.status).to.equal(400);
  });

  it('refuses an origin that is not allowed, and accepts an allowed one', async () => {
    const err = await WsClient.connect(port, { origin: 'https://evil.example.com' }).then(() => null, (e: { status?: number }) => e);
    expect(err?.status).to.equal(403);
    const ok = await WsClient.connect(port, { origin: 'https://chat.example.org' });
    await ok.open();
    ok.ws.close();
  });

  it('answers an oversize stanza with policy-violation, then closes', async () => {
    const ws = await WsClient.connect(port);
    await ws.login('alice', 'pw');
    ws.send(`<message xmlns='jabber:client' to='bob@localhost'><body>${'x'.repeat(300 * 1024)}</body></message>`);
    const err = await ws.next();
    expect(err.el.name).to.equal('error');
    expect(err.el.ns).to.equal(STREAMS);
    expect(err.el.getChild('policy-violation', 'urn:ietf:params:xml:ns:xmpp-streams')).to.not.equal(undefined);
    const close = await ws.next();
    expect(close.el.name).to.equal('close');
    await ws.closed;
  });

  it('answers a message that is not one complete element with not-well-formed', async () => {
    const ws = await WsClient.connect(port);
    await ws.open();
    ws.send(`<iq xmlns='jabber:client' type='get' id='1'/><iq xmlns='jabber:client' type='get' id='2'/>`);
    const err = await ws.next();
    expect(err.el.getChild('not-well-formed')).to.not.equal(undefined);
    await ws.closed;
  });

  it('resumes a stream-management session on a new WebSocket', async () => {
    const SM = 'urn:xmpp:sm:3';
    const first = await WsClient.connect(port);
    const jid = await first.login('alice', 'pw');
    first.send(`<enable xmlns='${SM}' resume='true'/>`);
    const enabled = await first.next();
    expect(enabled.el.name).to.equal('enabled');
    const id = enabled.el.attrs.id!;
    first.ws.terminate();
    await first.closed;
    const bob = await login(server.ports.c2s, 'bob', 'pw');
    try {
      await bob.xmpp.send(xml('message', { to: jid, type: 'chat', id: 'while-away' }, xml('body', {}, 'while you were away')));
      await new Promise((r) => setTimeout(r, 300));
      const second = await WsClient.connect(port);
      await second.login('alice', 'pw', { bind: false });
      second.send(`<resume xmlns='${SM}' previd='${id}' h='0'/>`);
      const resumed = await second.next();
      expect(resumed.el.name, resumed.raw).to.equal('resumed');
      let got = await second.next();
      while (got.el.name !== 'message') got = await second.next();
      expect(got.el.getChild('body')!.children.join('')).to.equal('while you were away');
      second.send(`<close xmlns='${NS_FRAMING}'/>`);
      await second.closed;
    } finally {
      await bob.stop();
    }
  });

  it('serves the same on the plain loopback face (for a TLS proxy in front), where PLAIN is offered', async () => {
    const plainPort = server.ports.websocketPlain!;
    expect(plainPort).to.be.a('number').above(0);
    const ws = await WsClient.connect(plainPort, { plain: true, headers: { 'x-forwarded-for': '203.0.113.9' } });
    const features = await ws.open();
    const mechs = features.getChild('mechanisms', SASL)!.getChildren('mechanism').map((m) => m.children.join(''));
    expect(mechs).to.include('PLAIN');
    expect(features.getChild('starttls')).to.equal(undefined);
    ws.send(`<auth xmlns='${SASL}' mechanism='PLAIN'>${Buffer.from('\0alice\0pw').toString('base64')}</auth>`);
    expect((await ws.next()).el.name).to.equal('success');
    ws.ws.close();
  });

  it('pings a silent WebSocket', async function () {
    this.timeout(20000);
    const ws = await WsClient.connect(port);
    await ws.open();
    const t0 = Date.now();
    await new Promise<void>((resolve) => ws.ws.once('ping', () => resolve()));
    expect(Date.now() - t0).to.be.below(12000);
    ws.ws.close();
  });

  it('serves host-meta as XRD and JSON, naming the wss: URL, with CORS', async () => {
    const url = `wss://localhost:${port}/xmpp-websocket`;
    const x = await get(port, '/.well-known/host-meta', { origin: 'https://anywhere.example' });
    expect(x.status).to.equal(200);
    expect(x.headers['content-type']).to.match(/^application\/xrd\+xml/);
    expect(x.headers['access-control-allow-origin']).to.equal('*');
    const link = parseStanzaString(x.body.replace(/^<\?xml[^>]*\?>\s*/, ''), 'jabber:client')!.getChild('Link')!;
    expect(link.attrs.rel).to.equal('urn:xmpp:alt-connections:websocket');
    expect(link.attrs.href).to.equal(url);
    const j = await get(port, '/.well-known/host-meta.json');
    expect(j.status).to.equal(200);
    expect(j.headers['content-type']).to.equal('application/json');
    expect(j.headers['access-control-allow-origin']).to.equal('*');
    expect(JSON.parse(j.body)).to.deep.equal({ links: [{ rel: 'urn:xmpp:alt-connections:websocket', href: url }] });
    const plainGet = await get(port, '/xmpp-websocket');
    expect(plainGet.status).to.equal(426);
  });
});
