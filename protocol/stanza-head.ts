// The opening tag of a serialised stanza, read without parsing the rest. Delivery decides on a stanza's
// name and addressing; reading them from the start tag costs one scan of a few dozen characters where a
// parse builds the whole tree.
import type { Attrs } from './xml.js';
import { decodeEntities } from './xml-stream.js';

export interface StanzaHead {
  /** Local name of the top-level element. */
  name: string;
  /** Attributes of the start tag, entities decoded. */
  attrs: Attrs;
}

// Unprefixed names only: a prefixed top-level element needs namespace resolution, which is the parser's job.
const NAME = /^[A-Za-z_\u00C0-\uFFFD][-A-Za-z0-9_.\u00B7\u00C0-\uFFFD]*$/;
const ATTR_NAME = /^[A-Za-z_:\u00C0-\uFFFD][-A-Za-z0-9_:.\u00B7\u00C0-\uFFFD]*$/;
const INVALID_CHARS = /[\x00-\x08\x0B\x0C\x0E-\x1F\uFFFE\uFFFF]/;

const isSpace = (c: number) => c === 32 || c === 9 || c === 10 || c === 13;

/**
 * The start tag of xml, by the same rules as the stream parser; null when it is not a well-formed start
 * tag of an unprefixed element (the caller then parses the whole stanza). Nothing after the tag is read.
 */
export function readStanzaHead(xml: string): StanzaHead | null {
  if (xml.charCodeAt(0) !== 60 /* < */) return null;
  const len = xml.length;
  let i = 1;
  while (i < len) {
    const c = xml.charCodeAt(i);
    if (isSpace(c) || c === 47 /* / */ || c === 62 /* > */) break;
    i++;
  }
  const name = xml.slice(1, i);
  if (!NAME.test(name)) return null;
  const attrs: Attrs = {};
  for (;;) {
    let sawSpace = false;
    while (i < len && isSpace(xml.charCodeAt(i))) { sawSpace = true; i++; }
    if (i >= len) return null;
    const c = xml.charCodeAt(i);
    if (c === 62 /* > */) return { name, attrs };
    if (c === 47 /* / */) return xml.charCodeAt(i + 1) === 62 ? { name, attrs } : null;
    if (!sawSpace) return null;
    const eq = xml.indexOf('=', i);
    if (eq === -1) return null;
    const attrName = xml.slice(i, eq).trimEnd();
    if (!ATTR_NAME.test(attrName) || Object.hasOwn(attrs, attrName)) return null;
    let q = eq + 1;
    while (q < len && isSpace(xml.charCodeAt(q))) q++;
    const quote = xml[q];
    if (quote !== '"' && quote !== "'") return null;
    const close = xml.indexOf(quote, q + 1);
    if (close === -1) return null;
    const raw = xml.slice(q + 1, close);
    if (raw.indexOf('<') !== -1 || INVALID_CHARS.test(raw)) return null;
    const value = decodeEntities(raw);
    if (value === null) return null;
    attrs[attrName] = value;
    i = close + 1;
  }
}
