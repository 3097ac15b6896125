// One XML stream over one WebSocket (RFC 7395 framing): <open/> and <close/>, one element per
// message, features and stream errors as messages of their own, WebSocket pings to keep the
// connection alive and find dead peers. TLS is the HTTPS listener's; there is no STARTTLS here.
import type { WebSocket } from 'ws';
import tls from 'node:tls';
import type { Element } from '../../protocol/xml.js';
import { streamErrorElement, type StreamErrorCondition } from '../../protocol/errors.js';
import type { XmlStreamLimits } from '../../protocol/xml-stream.js';
import {
  FrameReader, NS_FRAMING, closeMessage, featuresMessage, openMessage, openToStreamAttrs, qualify, streamErrorMessage,
} from '../../protocol/framing.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { tlsChannelBinding, type ChannelBinding, type StreamHeader, type Transport, type TransportHandler } from './transport.js';

export interface WebSocketTransportOptions {
  limits: XmlStreamLimits;
  bytesPerSecond: number;
  /** Seconds of silence before a WebSocket ping, and seconds to wait for its pong. */
  idleSeconds: number;
  timeoutSeconds: number;
  /** TLS under the connection, or a trusted TLS-terminating proxy on loopback in front of it. */
  secure: boolean;
  remoteAddress: string;
  log: Logger;
  metrics: Metrics;
}

export class WebSocketTransport implements Transport {
  private readonly reader: FrameReader;
  private handler: TransportHandler | null = null;
  private closing = false;
  private closedNotified = false;
  /** This side's <open/> has been sent for the current stream (reset by each restart). */
  private opened = false;
  /** The peer's <open/> has been read for the current stream. */
  private peerOpened = false;
  private allowance: number;
  private lastRefill = Date.now();
  private pingSentAt: number | null = null;
  private readonly timer: NodeJS.Timeout;
  lastActivity = Date.now();
  readonly remoteAddress: string;
  readonly secure: boolean;

  constructor(private readonly ws: WebSocket, private readonly opts: WebSocketTransportOptions) {
    this.remoteAddress = opts.remoteAddress.replace(/^::ffff:/, '');
    this.secure = opts.secure;
    this.allowance = opts.bytesPerSecond * 2;
    this.reader = new FrameReader(opts.limits);
    ws.on('message', (data, isBinary) => this.onMessage(data as Buffer, isBinary));
    ws.on('pong', () => { this.lastActivity = Date.now(); this.pingSentAt = null; });
    ws.on('ping', () => { this.lastActivity = Date.now(); });
    ws.on('error', (err) => opts.log.debug('websocket error', { err: err.message }));
    ws.on('close', (code) => this.notifyClosed(code !== 1000 && code !== 1001 && code !== 1005));
    const tick = Math.max(1000, Math.min(opts.idleSeconds, opts.timeoutSeconds) * 500);
    this.timer = setInterval(() => this.keepAlive(), tick);
    this.timer.unref();
    opts.metrics.connections.labels('websocket').inc();
  }

  get isClosing(): boolean {
    return this.closing;
  }

  setHandler(h: TransportHandler): void {
    this.handler = h;
  }

  private keepAlive(): void {
    if (this.closing) return;
    const now = Date.now();
    if (this.pingSentAt !== null) {
      if (now - this.pingSentAt >= this.opts.timeoutSeconds * 1000) {
        this.opts.log.debug('websocket: no pong, dropping', { remote: this.remoteAddress });
        this.destroy();
      }
      return;
    }
    if (now - this.lastActivity >= this.opts.idleSeconds * 1000) {
      this.pingSentAt = now;
      this.ws.ping();
    }
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    if (this.closing) return;
    this.lastActivity = Date.now();
    if (isBinary) return this.streamError('unsupported-encoding', 'XMPP messages are text frames');
    this.throttle(data.length);
    const frame = this.reader.read(data);
    switch (frame.kind) {
      case 'error':
        return this.streamError(frame.condition as StreamErrorCondition, frame.text);
      case 'open':
        this.peerOpened = true;
        return this.handler?.streamStart('stream:stream', openToStreamAttrs(frame.el));
      case 'close':
        this.handler?.streamEnd?.();
        return this.closeStream();
      case 'element':
        if (!this.peerOpened) return this.streamError('invalid-namespace', `expected <open/> in ${NS_FRAMING}`);
        return this.handler?.element(frame.el);
    }
  }

  private throttle(bytes: number): void {
    const now = Date.now();
    const rate = this.opts.bytesPerSecond;
    this.allowance = Math.min(rate * 2, this.allowance + ((now - this.lastRefill) / 1000) * rate) - bytes;
    this.lastRefill = now;
    if (this.allowance < 0 && !this.closing) {
      // Over the rate: stop reading until the bucket refills, so a flooder slows only itself.
      this.ws.pause();
      setTimeout(() => { if (!this.closing) this.ws.resume(); }, Math.ceil((-this.allowance / rate) * 1000)).unref();
    }
  }

  openStream(h: StreamHeader): void {
    this.opened = true;
    this.write(openMessage(h));
  }

  sendFeatures(features: Element): void {
    this.write(featuresMessage(features));
  }

  restartStream(): void {
    this.opened = false;
    this.peerOpened = false;
  }

  /** The TLS connection under the WebSocket binds as on TCP. */
  channelBinding(): ChannelBinding | null {
    const s = (this.ws as unknown as { _socket?: unknown })._socket;
    return s instanceof tls.TLSSocket ? tlsChannelBinding(s) : null;
  }

  /** Each call is one message: callers write one top-level element per call. */
  write(xml: string): void {
    if (this.closing || this.ws.readyState !== this.ws.OPEN) return;
    this.ws.send(qualify(xml));
  }

  send(el: Element): void {
    this.write(el.toString());
  }

  streamError(condition: StreamErrorCondition, text?: string, detail?: string | Element): void {
    if (this.closing) return;
    // A TCP address means nothing to a WebSocket client (RFC 7395 §3.6.1 moves it with a URI instead):
    // it reconnects through the usual address.
    if (condition === 'see-other-host' || typeof detail === 'string') condition = 'system-shutdown';
    if (!this.opened) {
      const header = this.handler?.header?.();
      if (header) this.openStream(header);
    }
    this.opts.metrics.streamErrors.labels(condition).inc();
    this.opts.log.debug('stream error', { condition, text, remote: this.remoteAddress, transport: 'websocket' });
    this.write(streamErrorMessage(streamErrorElement(condition, text, typeof detail === 'string' ? undefined : detail)));
    this.closeStream();
  }

  /** <close/>, then the WebSocket closing handshake (or a drop after a grace period). */
  closeStream(): void {
    if (this.closing) return;
    this.write(closeMessage());
    this.closing = true;
    if (this.ws.readyState === this.ws.OPEN) this.ws.close(1000);
    setTimeout(() => this.ws.terminate(), 2000).unref();
  }

  destroy(): void {
    this.closing = true;
    this.ws.terminate();
  }

  private notifyClosed(hadError: boolean): void {
    if (this.closedNotified) return;
    this.closedNotified = true;
    this.closing = true;
    clearInterval(this.timer);
    this.opts.metrics.connections.labels('websocket').dec();
    this.handler?.closed(hadError);
  }
}
