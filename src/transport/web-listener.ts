// The HTTP face of client streams: WebSocket upgrades on /xmpp-websocket (RFC 7395) and XEP-0156
// discovery on /.well-known/host-meta(.json). HTTPS with the server's certificate; optionally plain
// HTTP on loopback, for a TLS-terminating proxy in front (which is why that face counts as secure).
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { SUBPROTOCOL, hostMetaJson, hostMetaXrd } from '../../protocol/framing.js';
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { WebSocketTransport } from './websocket.js';

export const WEBSOCKET_PATH = '/xmpp-websocket';

const CORS: Record<string, string> = {
  'access-control-allow-origin': '*',
  'access-control-allow-methods': 'GET, OPTIONS',
  'access-control-max-age': '86400',
};

export interface WebListenerHost {
  readonly config: Config;
  readonly log: Logger;
  readonly metrics: Metrics;
  /** Hands a new transport to a client stream; returns what to call when it is gone. */
  acceptClient(conn: WebSocketTransport): () => void;
}

/** An origin as browsers send it: scheme://host[:port], lower-case, no trailing slash. */
const normalizeOrigin = (o: string): string => o.trim().toLowerCase().replace(/\/+$/, '');

export class WebListener {
  private readonly servers: { srv: http.Server; plain: boolean }[] = [];
  private readonly wss: WebSocketServer;
  private readonly origins: Set<string>;
  /** The wss: URL host-meta names, known once the HTTPS port is. */
  publicUrl = '';

  constructor(private readonly host: WebListenerHost, private readonly tlsMaterial: { cert: Buffer; key: Buffer } | null) {
    const limits = host.config.limits;
    this.origins = new Set(host.config.websocket.allowedOrigins.map(normalizeOrigin));
    this.wss = new WebSocketServer({
      noServer: true,
      // A message over the stanza limit still arrives, so that it gets policy-violation as on TCP;
      // far over it, the WebSocket layer drops the connection (1009) before buffering it.
      maxPayload: limits.maxStanzaSize * 2 + 4096,
      perMessageDeflate: false,
      handleProtocols: (protocols) => (protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
    });
  }

  /** Starts one face; returns the port bound. */
  listen(host: string, port: number, plain: boolean): Promise<number> {
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => this.request(req, res);
    const srv = plain
      ? http.createServer(handler)
      : https.createServer({ cert: this.tlsMaterial!.cert, key: this.tlsMaterial!.key, minVersion: 'TLSv1.2' }, handler);
    srv.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => this.upgrade(req, socket, head, plain));
    this.servers.push({ srv, plain });
    return new Promise((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(port, host, () => {
        const a = srv.address();
        resolve(typeof a === 'object' && a ? a.port : port);
      });
    });
  }

  /** Stops accepting; open WebSockets are the streams' to close. */
  stopAccepting(): void {
    for (const { srv } of this.servers) srv.close();
  }

  close(): void {
    for (const { srv } of this.servers) srv.closeAllConnections();
    for (const c of this.wss.clients) c.terminate();
  }

  private request(req: http.IncomingMessage, res: http.ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/.well-known/host-meta' || path === '/.well-known/host-meta.json') {
      if (req.method === 'OPTIONS') { res.writeHead(204, CORS).end(); return; }
      if (req.method !== 'GET' && req.method !== 'HEAD') { res.writeHead(405, { ...CORS, allow: 'GET, HEAD, OPTIONS' }).end(); return; }
      const json = path.endsWith('.json');
      const body = json ? hostMetaJson(this.publicUrl) : hostMetaXrd(this.publicUrl);
      res.writeHead(200, {
        ...CORS,
        'content-type': json ? 'application/json' : 'application/xrd+xml; charset=utf-8',
        'content-length': Buffer.byteLength(body),
        'cache-control': 'max-age=3600',
      });
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    if (path === WEBSOCKET_PATH) {
      res.writeHead(426, { upgrade: 'websocket', 'content-type': 'text/plain; charset=utf-8' }).end('a WebSocket upgrade with the xmpp subprotocol is required\n');
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found\n');
  }

  private refuse(socket: net.Socket, status: number, reason: string, text: string): void {
    this.host.log.debug('websocket: upgrade refused', { status, text, remote: socket.remoteAddress });
    socket.end(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: ${Buffer.byteLength(text) + 1}\r\n\r\n${text}\n`);
  }

  private upgrade(req: http.IncomingMessage, socket: net.Socket, head: Buffer, plain: boolean): void {
    socket.on('error', () => {});
    if ((req.url ?? '').split('?')[0] !== WEBSOCKET_PATH) return this.refuse(socket, 404, 'Not Found', 'not found');
    const origin = req.headers.origin;
    // Browsers always send Origin; other clients need none (the check protects users' browsers).
    if (origin !== undefined && this.origins.size > 0 && !this.origins.has(normalizeOrigin(origin))) {
      return this.refuse(socket, 403, 'Forbidden', 'this origin may not connect');
    }
    const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
    if (!offered.includes(SUBPROTOCOL)) return this.refuse(socket, 400, 'Bad Request', `the ${SUBPROTOCOL} subprotocol is required (RFC 7395)`);
    this.wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      const c = this.host.config;
      let remote = req.socket.remoteAddress ?? '';
      if (plain) {
        // Behind a proxy on loopback: the client is the last address it appended.
        const fwd = req.headers['x-forwarded-for'];
        const last = (Array.isArray(fwd) ? fwd.join(',') : fwd ?? '').split(',').map((s) => s.trim()).filter(Boolean).pop();
        if (last) remote = last;
      }
      const conn = new WebSocketTransport(ws, {
        limits: { maxStanzaSize: c.limits.maxStanzaSize, maxDepth: c.limits.maxDepth },
        bytesPerSecond: c.limits.bytesPerSecond,
        idleSeconds: c.ping.idleSeconds,
        timeoutSeconds: c.ping.timeoutSeconds,
        secure: true,
        remoteAddress: remote,
        log: this.host.log,
        metrics: this.host.metrics,
      });
      const release = this.host.acceptClient(conn);
      ws.once('close', release);
    });
  }
}

/** The wss: URL clients are told about: websocket.publicUrl, else the HTTPS face on the server's domain. */
export function defaultPublicUrl(config: Config, httpsPort: number | null): string {
  if (config.websocket.publicUrl) return config.websocket.publicUrl;
  return httpsPort === null ? `wss://${config.domain}${WEBSOCKET_PATH}` : `wss://${config.domain}:${httpsPort}${WEBSOCKET_PATH}`;
}
