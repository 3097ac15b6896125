// One XML stream over one socket: parsing, batched writes, byte-rate limit, stream errors and close.
// Protocol logic (negotiation, routing) lives in the session objects that own a Connection.
import type net from 'node:net';
import tls from 'node:tls';
import { XmlStreamParser, type XmlStreamEvents, type XmlStreamLimits } from '../protocol/xml-stream.js';
import type { Element, Attrs } from '../protocol/xml.js';
import { streamErrorElement, type StreamErrorCondition } from '../protocol/errors.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';

export interface ConnectionHandler {
  streamStart(name: string, attrs: Attrs): void;
  element(el: Element): void;
  /** The peer closed its stream cleanly (</stream:stream>); the connection closes next. */
  streamEnd?(): void;
  /** The socket is gone (either side). Called exactly once. */
  closed(hadError: boolean): void;
}

export interface ConnectionOptions {
  limits: XmlStreamLimits;
  bytesPerSecond: number;
  log: Logger;
  metrics: Metrics;
  kind: 'c2s' | 'component';
}

export class Connection {
  socket: net.Socket;
  private parser!: XmlStreamParser;
  private handler: ConnectionHandler | null = null;
  private pending: string[] = [];
  private flushScheduled = false;
  private closing = false;
  private closedNotified = false;
  /** Token bucket for the incoming byte rate. */
  private allowance: number;
  private lastRefill = Date.now();
  private paused = false;
  lastActivity = Date.now();
  /** Called before a stream error is written (the stream header must precede it). */
  beforeStreamError: (() => void) | null = null;
  readonly remoteAddress: string;

  constructor(socket: net.Socket, private readonly opts: ConnectionOptions) {
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

  setHandler(h: ConnectionHandler): void {
    this.handler = h;
  }

  private attach(socket: net.Socket): void {
    socket.on('data', this.onData);
    socket.on('error', (err) => {
      this.opts.log.debug('socket error', { err: err.message });
    });
    socket.on('close', (hadError) => this.notifyClosed(hadError));
  }

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

  /** A fresh parser, for stream restarts after STARTTLS and SASL. */
  resetParser(): void {
    const events: XmlStreamEvents = {
      streamStart: (name, attrs) => this.handler?.streamStart(name, attrs),
      stanza: (el) => this.handler?.element(el),
      streamEnd: () => {
        this.handler?.streamEnd?.();
        this.close();
      },
      error: (condition, text) => this.streamError(condition as StreamErrorCondition, text),
    };
    this.parser = new XmlStreamParser(events, this.opts.limits);
  }

  /** Upgrades the socket to TLS in place (STARTTLS). The caller sends <proceed/> first. */
  startTls(context: tls.SecureContext, onSecure: () => void): void {
    const plain = this.socket;
    plain.removeListener('data', this.onData);
    plain.removeAllListeners('close');
    const secure = new tls.TLSSocket(plain, { isServer: true, secureContext: context });
    this.socket = secure;
    this.resetParser();
    this.attach(secure);
    secure.once('secure', onSecure);
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

  private readonly flush = (): void => {
    this.flushScheduled = false;
    if (this.pending.length === 0 || this.socket.destroyed) return;
    const data = this.pending.length === 1 ? this.pending[0]! : this.pending.join('');
    this.pending = [];
    this.socket.write(data);
  };

  /** Writes now, bypassing the batch (used before a TLS upgrade or close). */
  writeNow(xml: string): void {
    this.flush();
    if (!this.socket.destroyed) this.socket.write(xml);
  }

  sendElement(el: Element): void {
    this.write(el.toString());
  }

  streamError(condition: StreamErrorCondition, text?: string): void {
    if (this.closing) return;
    this.beforeStreamError?.();
    this.opts.metrics.streamErrors.labels(condition).inc();
    this.opts.log.debug('stream error', { condition, text, remote: this.remoteAddress });
    this.writeNow(streamErrorElement(condition, text).toString());
    this.close();
  }

  /** Closes the stream: </stream:stream>, then the socket once written (or after a grace period). */
  close(): void {
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

  get isClosing(): boolean {
    return this.closing;
  }

  private notifyClosed(hadError: boolean): void {
    if (this.closedNotified) return;
    this.closedNotified = true;
    this.closing = true;
    this.opts.metrics.connections.labels(this.opts.kind).dec();
    this.handler?.closed(hadError);
  }
}
