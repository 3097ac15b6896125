// XMPP over WebSocket framing (RFC 7395): each WebSocket message carries exactly one complete
// element; the stream is opened with <open/> and closed with <close/> in the framing namespace, and
// every top-level element names its own namespace (there is no stream root to inherit it from).
// Also the XEP-0156 host-meta documents that point web clients at the WebSocket URL.
import { XmlStreamParser, readStartTag, type XmlStreamLimits } from './xml-stream.js';
import { Element, escapeAttr, type Attrs } from './xml.js';
import { NS } from './namespaces.js';

export const NS_FRAMING = 'urn:ietf:params:xml:ns:xmpp-framing';
/** XEP-0156 link relation for a WebSocket endpoint. */
export const REL_WEBSOCKET = 'urn:xmpp:alt-connections:websocket';
/** The subprotocol a client must ask for (RFC 7395 §3.1). */
export const SUBPROTOCOL = 'xmpp';

export interface OpenAttrs { id: string; from: string; version?: string; lang?: string }

/** This side's <open/>. */
export function openMessage(h: OpenAttrs): string {
  let s = `<open xmlns='${NS_FRAMING}' id='${escapeAttr(h.id)}' from='${escapeAttr(h.from)}'`;
  if (h.version !== undefined) s += ` version='${escapeAttr(h.version)}'`;
  if (h.lang !== undefined) s += ` xml:lang='${escapeAttr(h.lang)}'`;
  return s + '/>';
}

export function closeMessage(): string {
  return `<close xmlns='${NS_FRAMING}'/>`;
}

/** Stream features, with the stream prefix declared on the element itself (RFC 7395 §3.3.2). */
export function featuresMessage(features: Element): string {
  return new Element('stream:features', { 'xmlns:stream': NS.streams }, features.children).toString();
}

/** A <stream:error/> element as a message of its own. */
export function streamErrorMessage(error: Element): string {
  return new Element(error.name, { ...error.attrs, 'xmlns:stream': NS.streams }, error.children).toString();
}

/**
 * Gives a serialised top-level element the default namespace when its start tag names none: on TCP
 * a stanza inherits jabber:client from the stream root, here it must say so itself.
 */
export function qualify(xml: string, ns: string = NS.client): string {
  if (xml.charCodeAt(0) !== 60 /* < */) return xml;
  const tag = readStartTag(xml, 0);
  if (tag === 'more' || 'error' in tag) return xml;
  if (tag.name.includes(':') || Object.hasOwn(tag.attrs, 'xmlns')) return xml;
  const at = 1 + tag.name.length;
  return `${xml.slice(0, at)} xmlns='${ns}'${xml.slice(at)}`;
}

/** The attributes of a stream header equivalent to a client's <open/>, for code written for RFC 6120 streams. */
export function openToStreamAttrs(open: Element, contentNs: string = NS.client): Attrs {
  const a: Attrs = { xmlns: contentNs, 'xmlns:stream': NS.streams };
  for (const k of ['to', 'from', 'version', 'xml:lang', 'id'] as const) {
    if (open.attrs[k] !== undefined) a[k] = open.attrs[k];
  }
  return a;
}

export type Frame =
  | { kind: 'open'; el: Element }
  | { kind: 'close'; el: Element }
  | { kind: 'element'; el: Element }
  | { kind: 'error'; condition: string; text: string };

/**
 * Reads messages, each one complete element. One parser serves the whole connection, under an
 * implicit root in the content namespace, so the stanza size and depth limits are the stream parser's.
 */
export class FrameReader {
  private readonly parser: XmlStreamParser;
  private got: Element[] = [];
  private failure: { condition: string; text: string } | null = null;

  constructor(limits: XmlStreamLimits, contentNs: string = NS.client) {
    this.parser = new XmlStreamParser({
      streamStart: () => {},
      stanza: (el) => { this.got.push(el); },
      streamEnd: () => { this.failure ??= { condition: 'not-well-formed', text: 'unexpected end tag' }; },
      error: (condition, text) => { this.failure ??= { condition, text }; },
    }, limits);
    this.parser.write(`<stream:stream xmlns='${contentNs}' xmlns:stream='${NS.streams}'>`);
  }

  read(message: Buffer | string): Frame {
    if (this.failure) return { kind: 'error', ...this.failure };
    this.got = [];
    this.parser.write(message);
    // Set by the parser's callbacks during write().
    const failed = this.failure as { condition: string; text: string } | null;
    if (failed) return { kind: 'error', ...failed };
    if (this.got.length !== 1 || this.parser.depth !== 0) {
      this.failure = { condition: 'not-well-formed', text: 'a message must hold exactly one complete element' };
      return { kind: 'error', ...this.failure };
    }
    const el = this.got[0]!;
    if (el.ns === NS_FRAMING && el.name === 'open') return { kind: 'open', el };
    if (el.ns === NS_FRAMING && el.name === 'close') return { kind: 'close', el };
    return { kind: 'element', el };
  }
}

/** XEP-0156 host-meta (XRD). */
export function hostMetaXrd(websocketUrl: string): string {
  return `<?xml version='1.0' encoding='utf-8'?>\n<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n` +
    `  <Link rel='${REL_WEBSOCKET}' href='${escapeAttr(websocketUrl)}'/>\n</XRD>\n`;
}

/** XEP-0156 host-meta.json (JRD). */
export function hostMetaJson(websocketUrl: string): string {
  return JSON.stringify({ links: [{ rel: REL_WEBSOCKET, href: websocketUrl }] }, null, 2) + '\n';
}
