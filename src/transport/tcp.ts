// One XML stream over one TCP socket, plain or TLS (RFC 6120 framing): parsing, the <stream:stream>
// header and close, batched writes, the byte-rate limit, STARTTLS and channel binding.
// Protocol logic (negotiation, routing) lives in the session that owns the transport.
import type net from 'node:net';
import tls from 'node:tls';
import { XmlStreamParser, type XmlStreamEvents, type XmlStreamLimits } from '../../protocol/xml-stream.js';
import { Element, escapeAttr } from '../../protocol/xml.js';
import { NS } from '../../protocol/namespaces.js';
import { streamErrorElement, type StreamErrorCondition } from '../../protocol/errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { tlsChannelBinding, type ChannelBinding, type StreamHeader, type Transport, type TransportHandler } from './transport.js';

export interface TcpTransportOptions {
  limits: XmlStreamLimits;
  bytesPerSecond: number;
  log: Logger;
  metrics: Metrics;
  kind: 'c2s' | 'component';
}

export class TcpTransport implements Transport {
  socket: net.Socket;
  private parser!: XmlStreamParser;
  private handler: TransportHandler | null = null;
  private pending: string[] = [];
  private flushScheduled = false;
  private closing = false;
  private closedNotified = false;
  /** This side's header has been written for the current stream (reset by each restart). */
  private opened = false;
  /** Token bucket for the incoming byte rate. */
  private allowance: number;
  private lastRefill = Date.now();
  private paused = false;
  lastActivity = Date.now();
  readonly remoteAddress: string;

  constructor(socket: net.Socket, private readonly opts: TcpTransportOptions) {
    this.socket = socket;
    this.remoteAddress = (socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    this.allowance = opts.bytesPerSecond * 2;
    socket.setNoDelay(true);
    this.resetParser();
    this.attach(socket);
    opts.metrics.connections.labels(opts.kind).inc();
  }

  get secure(): boolean {
    return this.socket instanceof tls.TLSSocket && this.socket.encrypted === true;
  }

  get isClosing(): boolean {
    return this.closing;
  }

  setHandler(h: TransportHandler): void {
    this.handler = h;
  }

  private attach(socket: net.Socket): void {
    socket.on('data', this.onData);
    socket.on('error', (err) => {
      this.opts.log.debug('socket error', { err: err.message });
    });
    socket.on('close', this.onClose);
  }

  private readonly onClose = (hadError: boolean): void => this.notifyClosed(hadError);

  private readonly onData = (chunk: Buffer): void => {
    this.lastActivity = Date.now();
    this.parser.write(chunk);
    this.throttle(chunk.length);
  };

  private throttle(bytes: number): void {
    const now = Date.now();
    const rate = this.opts.bytesPerSecond;
    this.allowance = Math.min(rate * 2, this.allowance + ((now - this.lastRefill) / 1000) * rate) - bytes;
    this.lastRefill = now;
    if (this.allowance < 0 && !this.paused && !this.closing) {
      // Over the rate: stop reading until the bucket refills, so a flooder slows only itself.
      this.paused = true;
      this.socket.pause();
      setTimeout(() => {
        this.paused = false;
        if (!this.closing) this.socket.resume();
      }, Math.ceil((-this.allowance / rate) * 1000)).unref();
    }
  }

  /** A fresh parser: the peer's next bytes start a new stream. */
  private resetParser(): void {
    const events: XmlStreamEvents = {
      streamStart: (name, attrs) => this.handler?.streamStart(name, attrs),
      stanza: (el) => this.handler?.element(el),
      streamEnd: () => {
        this.handler?.streamEnd?.();
        this.closeStream();
      },
      error: (condition, text) => this.streamError(condition as StreamErrorCondition, text),
    };
    this.parser = new XmlStreamParser(events, this.opts.limits);
  }

  openStream(h: StreamHeader): void {
    this.opened = true;
    let s = `<?xml version='1.0'?><stream:stream xmlns='${escapeAttr(h.xmlns)}' xmlns:stream='${NS.streams}' ` +
      `id='${escapeAttr(h.id)}' from='${escapeAttr(h.from)}'`;
    if (h.version !== undefined) s += ` version='${escapeAttr(h.version)}'`;
    if (h.lang !== undefined) s += ` xml:lang='${escapeAttr(h.lang)}'`;
    this.write(s + '>');
  }

  sendFeatures(features: Element): void {
    this.write(new Element('stream:features', {}, features.children).toString());
  }

  restartStream(): void {
    this.opened = false;
    this.resetParser();
  }

  startTls(context: tls.SecureContext): void {
    // What was written so far (the <proceed/>) leaves in plain text, before the handshake.
    this.flush();
    const plain = this.socket;
    // Only our own listeners: the listener that accepted the socket keeps its own (its table of
    // connections is cleaned up on this socket's close).
    plain.removeListener('data', this.onData);
    plain.removeListener('close', this.onClose);
    const secure = new tls.TLSSocket(plain, { isServer: true, secureContext: context });
    this.socket = secure;
    this.restartStream();
    this.attach(secure);
  }

  channelBinding(): ChannelBinding | null {
    return this.secure ? tlsChannelBinding(this.socket as tls.TLSSocket) : null;
  }

  write(xml: string): void {
    if (this.closing) return;
    this.pending.push(xml);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      // Everything written in one turn of the event loop leaves in one socket write.
      setImmediate(this.flush);
    }
  }

  send(el: Element): void {
    this.write(el.toString());
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    if (this.pending.length === 0 || this.socket.destroyed) return;
    const data = this.pending.length === 1 ? this.pending[0]! : this.pending.join('');
    this.pending = [];
    this.socket.write(data);
  };

  streamError(condition: StreamErrorCondition, text?: string, detail?: string | Element): void {
    if (this.closing) return;
    if (!this.opened) {
      const header = this.handler?.header?.();
      if (header) this.openStream(header);
    }
    this.opts.metrics.streamErrors.labels(condition).inc();
    this.opts.log.debug('stream error', { condition, text, remote: this.remoteAddress });
    this.flush();
    if (!this.socket.destroyed) this.socket.write(streamErrorElement(condition, text, detail).toString());
    this.closeStream();
  }

  /** Closes the stream: </stream:stream>, then the socket once written (or after a grace period). */
  closeStream(): void {
    if (this.closing) return;
    this.flush();
    this.closing = true;
    if (!this.socket.destroyed) {
      this.socket.end('</stream:stream>');
      setTimeout(() => this.socket.destroy(), 2000).unref();
    }
  }

  destroy(): void {
    this.closing = true;
    this.socket.destroy();
  }

  private notifyClosed(hadError: boolean): void {
    if (this.closedNotified) return;
    this.closedNotified = true;
    this.closing = true;
    this.opts.metrics.connections.labels(this.opts.kind).dec();
    this.handler?.closed(hadError);
  }
}
