// XEP-0114 external components: a bridge connects with a domain and a shared secret, then sends and
// receives stanzas for that domain and its subdomains. Routed like any other destination; a component
// on another node is reached through the cluster bus.
import net from 'node:net';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { Element, type Attrs } from '../protocol/xml.js';
import { NS } from '../protocol/namespaces.js';
import { tryParseJid } from '../protocol/jid.js';
import { StanzaError, errorReply } from '../protocol/errors.js';
import { isStreamRoot } from '../protocol/xml-stream.js';
import type { Server } from './context.js';
import { TcpTransport } from './transport/tcp.js';
import type { Transport, TransportHandler } from './transport/transport.js';

const TOPIC = 'component';

export class ComponentListener {
  private server: net.Server | null = null;
  /** Components connected to this node, by domain. */
  readonly connected = new Map<string, ComponentStream>();

  constructor(private readonly core: Server) {
    core.cluster.on(TOPIC, (data) => {
      const { domain, xml } = data as { domain: string; xml: string };
      this.connected.get(domain)?.conn.write(xml);
    });
  }

  listen(host: string, port: number): Promise<number> {
    this.server = net.createServer((socket) => {
      const conn = new TcpTransport(socket, {
        limits: { maxStanzaSize: this.core.config.limits.maxStanzaSize, maxDepth: this.core.config.limits.maxDepth },
        // Bridges carry many users' traffic: no per-connection byte limit beyond the stanza size.
        bytesPerSecond: 1024 * 1024 * 1024, log: this.core.log, metrics: this.core.metrics, kind: 'component',
      });
      new ComponentStream(this.core, this, conn);
    });
    return new Promise((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, host, () => {
        const a = this.server!.address();
        resolve(typeof a === 'object' && a ? a.port : port);
      });
    });
  }

  async close(): Promise<void> {
    for (const c of this.connected.values()) c.conn.streamError('system-shutdown');
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }

  /** Makes the domain routable cluster-wide: a session record with a domain JID names its node. */
  async register(stream: ComponentStream): Promise<boolean> {
    const domain = stream.domain!;
    const existing = this.core.sessions.get(domain);
    if (existing || this.connected.has(domain)) return false;
    this.connected.set(domain, stream);
    await this.core.sessions.put({
      jid: domain, node: this.core.sessions.nodeId, priority: 0, available: true, presence: null,
      interested: false, carbons: false, since: Date.now(),
    });
    return true;
  }

  async unregister(stream: ComponentStream): Promise<void> {
    const domain = stream.domain!;
    if (this.connected.get(domain) !== stream) return;
    this.connected.delete(domain);
    await this.core.sessions.remove(domain, this.core.sessions.nodeId);
  }

  /** Route handler for a component domain configured on this server. */
  routeTo(domain: string, stanza: Element): void {
    // Gateways compare addresses as strings and leave preparation (nodeprep) to the server: the
    // addresses they get are prepared. The router keeps the client's spelling (MUC's 210 needs it).
    const to = tryParseJid(stanza.attrs.to ?? '');
    if (to && to.toString() !== stanza.attrs.to) stanza.attrs.to = to.toString();
    const local = this.connected.get(domain);
    if (local) {
      local.conn.write(stanza.toString());
      return;
    }
    const rec = this.core.sessions.get(domain);
    if (rec) {
      this.core.cluster.send(rec.node, TOPIC, { domain, xml: stanza.toString() });
      return;
    }
    this.core.router.bounce(stanza, new StanzaError('service-unavailable', `${domain} is not connected`));
  }
}

class ComponentStream implements TransportHandler {
  domain: string | null = null;
  private streamId = randomBytes(12).toString('hex');
  private authenticated = false;

  constructor(private readonly core: Server, private readonly listener: ComponentListener, readonly conn: Transport) {
    conn.setHandler(this);
    setTimeout(() => {
      if (!this.authenticated) conn.streamError('connection-timeout');
    }, core.config.limits.authTimeout * 1000).unref();
  }

  streamStart(name: string, attrs: Attrs): void {
    const to = attrs.to ?? '';
    this.conn.openStream({ xmlns: NS.component, id: this.streamId, from: to });
    if (!isStreamRoot(name, attrs) || attrs.xmlns !== NS.component) return this.conn.streamError('invalid-namespace');
    if (!(to in this.core.config.components)) return this.conn.streamError('host-unknown', `${to} is not a configured component`);
    this.domain = to;
  }

  element(el: Element): void {
    if (!this.authenticated) {
      if (el.name !== 'handshake' || !this.domain) return this.conn.streamError('not-authorized');
      void this.handshake(el.text());
      return;
    }
    if (el.name !== 'message' && el.name !== 'presence' && el.name !== 'iq') {
      return this.conn.streamError('unsupported-stanza-type');
    }
    this.core.metrics.countIn(el.name);
    const from = tryParseJid(el.attrs.from ?? '');
    // A component speaks for its own domain and subdomains, nothing else.
    if (!from || (from.domain !== this.domain && !from.domain.endsWith('.' + this.domain))) {
      return this.conn.streamError('invalid-from', 'from must be an address of the component');
    }
    // Recipients see the component's addresses prepared, as they see everyone else's.
    if (from.toString() !== el.attrs.from) el.attrs.from = from.toString();
    if (el.attrs.to === undefined || !tryParseJid(el.attrs.to)) {
      const r = errorReply(el, new StanzaError('jid-malformed'));
      if (r) this.conn.write(r.toString());
      return;
    }
    this.core.router.route(el);
  }

  private async handshake(digest: string): Promise<void> {
    const secret = this.core.config.components[this.domain!]!;
    const expected = createHash('sha1').update(this.streamId + secret).digest('hex');
    const got = Buffer.from(digest.trim().toLowerCase());
    if (got.length !== expected.length || !timingSafeEqual(got, Buffer.from(expected))) {
      return this.conn.streamError('not-authorized', 'wrong secret');
    }
    if (!(await this.listener.register(this))) return this.conn.streamError('conflict', 'component already connected');
    this.authenticated = true;
    this.conn.write('<handshake/>');
    this.core.log.info('component connected', { domain: this.domain });
  }

  closed(): void {
    if (this.authenticated) {
      void this.listener.unregister(this);
      this.core.log.info('component disconnected', { domain: this.domain });
    }
  }
}
