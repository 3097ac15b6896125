// What a stream session (client or component) sees of the wire under it. The transport owns the
// framing: how a stream is opened and closed, how features and stream errors are wrapped, batching
// and flow control. TCP (RFC 6120 <stream:stream>) is tcp.ts; a WebSocket transport (RFC 7395,
// <open/> and <close/>) is one more file implementing the same interface.
import { createHash } from 'node:crypto';
import type { SecureContext, TLSSocket } from 'node:tls';
import type { Element, Attrs } from '../../protocol/xml.js';
import type { StreamErrorCondition } from '../../protocol/errors.js';

/** The attributes of the stream this side opens (the transport adds the framing around them). */
export interface StreamHeader {
  /** Content namespace: jabber:client or jabber:component:accept. */
  xmlns: string;
  id: string;
  from: string;
  version?: string;
  lang?: string;
}

/** What a transport reports to the session that owns it. */
export interface TransportHandler {
  /** The peer opened (or, after a restart, reopened) its stream. */
  streamStart(name: string, attrs: Attrs): void;
  element(el: Element): void;
  /** The peer closed its stream cleanly; the transport closes next. */
  streamEnd?(): void;
  /** The connection is gone (either side). Called exactly once. */
  closed(hadError: boolean): void;
  /**
   * Our header, for a stream error raised before this side opened its stream (RFC 6120 §4.9.1.1:
   * the header still comes first). Without it the error is sent bare.
   */
  header?(): StreamHeader;
}

export interface ChannelBinding {
  readonly type: string;
  readonly data: Buffer;
}

/**
 * A TLS connection's channel binding: tls-exporter on TLS 1.3, tls-server-end-point otherwise (RFC 9266,
 * RFC 5929). The data is made when first read: stream features and the mechanism list ask only whether
 * there is one and of which type, three or four times per login, and most logins bind none (the
 * exporter's key derivation was 2 % of a STARTTLS login's CPU).
 */
export function tlsChannelBinding(s: TLSSocket): ChannelBinding | null {
  if (s.getProtocol() === 'TLSv1.3') {
    return lazyBinding('tls-exporter', () => s.exportKeyingMaterial(32, 'EXPORTER-Channel-Binding', Buffer.alloc(0)));
  }
  const cert = s.getCertificate();
  if (cert && 'raw' in cert && cert.raw) {
    const raw = cert.raw;
    return lazyBinding('tls-server-end-point', () => createHash('sha256').update(raw).digest());
  }
  return null;
}

function lazyBinding(type: string, make: () => Buffer): ChannelBinding {
  let data: Buffer | undefined;
  return { type, get data() { return (data ??= make()); } };
}

export interface Transport {
  readonly remoteAddress: string;
  /** Encrypted (TLS), so that PLAIN and channel binding may be offered. */
  readonly secure: boolean;
  /** When the peer last sent anything (ms since the epoch). */
  readonly lastActivity: number;
  /** Closing or closed: nothing more is written. */
  readonly isClosing: boolean;
  setHandler(handler: TransportHandler): void;
  /** Opens this side's stream. */
  openStream(header: StreamHeader): void;
  /** Sends the stream features; `features` is a container whose children are the features. */
  sendFeatures(features: Element): void;
  /**
   * Sends one serialised top-level element (WebSocket sends each call as one message); on TCP everything
   * written in one event-loop turn leaves together.
   */
  write(xml: string): void;
  send(el: Element): void;
  /** The peer will open a new stream on the same connection (after SASL success, RFC 6120 §6.4.6). */
  restartStream(): void;
  /** Closes this side's stream, then the connection once written. */
  closeStream(): void;
  /**
   * Sends a stream error and closes. detail: see-other-host's address (host:port), or an
   * application-specific condition element (RFC 6120 §4.9.4).
   */
  streamError(condition: StreamErrorCondition, text?: string, detail?: string | Element): void;
  /** Drops the connection without closing the stream (a resumed session took over). */
  destroy(): void;
  /** Channel-binding data for SCRAM -PLUS, when the transport is secure and can provide it. */
  channelBinding?(): ChannelBinding | null;
  /** Upgrades to TLS in place (STARTTLS), after what was written so far; the peer restarts its stream. */
  startTls?(context: SecureContext): void;
}
