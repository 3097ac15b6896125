// Error conditions of RFC 6120 §4.9.3 (stream) and §8.3.3 (stanza), and the elements that carry them.
import { Element } from './xml.js';
import { NS } from './namespaces.js';

export type StreamErrorCondition =
  | 'bad-format' | 'bad-namespace-prefix' | 'conflict' | 'connection-timeout' | 'host-gone'
  | 'host-unknown' | 'improper-addressing' | 'internal-server-error' | 'invalid-from'
  | 'invalid-namespace' | 'invalid-xml' | 'not-authorized' | 'not-well-formed' | 'policy-violation'
  | 'remote-connection-failed' | 'reset' | 'resource-constraint' | 'restricted-xml' | 'see-other-host'
  | 'system-shutdown' | 'undefined-condition' | 'unsupported-encoding' | 'unsupported-feature'
  | 'unsupported-stanza-type' | 'unsupported-version';

export type StanzaErrorType = 'auth' | 'cancel' | 'continue' | 'modify' | 'wait';
export type StanzaErrorCondition =
  | 'bad-request' | 'conflict' | 'feature-not-implemented' | 'forbidden' | 'gone'
  | 'internal-server-error' | 'item-not-found' | 'jid-malformed' | 'not-acceptable' | 'not-allowed'
  | 'not-authorized' | 'policy-violation' | 'recipient-unavailable' | 'redirect'
  | 'registration-required' | 'remote-server-not-found' | 'remote-server-timeout'
  | 'resource-constraint' | 'service-unavailable' | 'subscription-required'
  | 'undefined-condition' | 'unexpected-request';

/** The type RFC 6120 §8.3.3 recommends for each condition. */
const DEFAULT_TYPE: Record<StanzaErrorCondition, StanzaErrorType> = {
  'bad-request': 'modify', conflict: 'cancel', 'feature-not-implemented': 'cancel', forbidden: 'auth',
  gone: 'cancel', 'internal-server-error': 'cancel', 'item-not-found': 'cancel',
  'jid-malformed': 'modify', 'not-acceptable': 'modify', 'not-allowed': 'cancel',
  'not-authorized': 'auth', 'policy-violation': 'modify', 'recipient-unavailable': 'wait',
  redirect: 'modify', 'registration-required': 'auth', 'remote-server-not-found': 'cancel',
  'remote-server-timeout': 'wait', 'resource-constraint': 'wait', 'service-unavailable': 'cancel',
  'subscription-required': 'auth', 'undefined-condition': 'cancel', 'unexpected-request': 'wait',
};

export class StanzaError extends Error {
  readonly type: StanzaErrorType;
  constructor(
    readonly condition: StanzaErrorCondition,
    readonly text?: string,
    type?: StanzaErrorType,
    /** Application-specific condition element, e.g. <blocked xmlns='urn:xmpp:blocking:errors'/>. */
    readonly appCondition?: Element,
  ) {
    super(text ?? condition);
    this.type = type ?? DEFAULT_TYPE[condition];
  }

  toElement(by?: string): Element {
    const e = new Element('error', by ? { type: this.type, by } : { type: this.type });
    e.c(this.condition, { xmlns: NS.stanzaErrors });
    // No xml:lang of its own: it inherits the stream's (Perch's streams say 'en'), as Prosody's does.
    if (this.text) e.c('text', { xmlns: NS.stanzaErrors }).t(this.text);
    if (this.appCondition) e.append(this.appCondition);
    return e;
  }
}

/**
 * detail: a string is the condition element's own text (see-other-host carries the address to use,
 * RFC 6120 §4.9.3.19); an element is an application-specific condition (RFC 6120 §4.9.4).
 */
export function streamErrorElement(condition: StreamErrorCondition, text?: string, detail?: string | Element): Element {
  const e = new Element('stream:error');
  const c = e.c(condition, { xmlns: NS.streamErrors });
  if (typeof detail === 'string' && detail) c.t(detail);
  if (text) e.c('text', { xmlns: NS.streamErrors, 'xml:lang': 'en' }).t(text);
  if (detail instanceof Element) e.append(detail);
  return e;
}

/**
 * The error reply to a stanza (RFC 6120 §8.3.1): same name and id, addresses swapped, original
 * content kept for context. Returns null for stanzas that must never be answered with an error.
 */
export function errorReply(stanza: Element, err: StanzaError, by?: string): Element | null {
  if (stanza.attrs.type === 'error') return null;
  if (stanza.name === 'iq' && stanza.attrs.type === 'result') return null;
  const attrs: Record<string, string> = { type: 'error' };
  if (stanza.attrs.id !== undefined) attrs.id = stanza.attrs.id;
  if (stanza.attrs.from !== undefined) attrs.to = stanza.attrs.from;
  if (stanza.attrs.to !== undefined) attrs.from = stanza.attrs.to;
  const reply = new Element(stanza.name, attrs, [], stanza.ns);
  // An IQ error carries the request payload; messages and presences carry theirs too (RFC 6120 §8.3.1).
  // An <error/> of its own is left out: an error stanza carries exactly one (§8.3.2), the one added here.
  for (const c of stanza.children) if (typeof c !== 'string' && c.name !== 'error') reply.children.push(c);
  reply.children.push(err.toElement(by));
  return reply;
}

/** The condition and text of an error stanza's <error/> (RFC 6120 §8.3.2); null when it has none. */
export function parseStanzaError(stanza: Element): { condition: string; text?: string } | null {
  const error = stanza.getChild('error');
  if (!error) return null;
  const condition = error.elements().find((e) => e.ns === NS.stanzaErrors && e.name !== 'text')?.name ?? 'undefined-condition';
  const text = error.getChildText('text', NS.stanzaErrors);
  return text === undefined ? { condition } : { condition, text };
}
