// What the element-level targets share: turning an input into an element with the real parser, and the
// tokens XML inputs are made of.
import type { Protocol } from '../target.js';
import type { Element } from '../../protocol/xml.js';

/** The input as one stanza in jabber:client (null when it is not one well-formed element). */
export function elementOf(p: Protocol, data: Buffer): Element | null {
  return p.xmlStream.parseStanzaString(data.toString('utf8'));
}

/** A deep comparison of two parsed values (plain data, Dates, arrays): array order counts, key order does not. */
export function same(a: unknown, b: unknown): boolean {
  return canonical(a) === canonical(b);
}

function canonical(v: unknown): string {
  if (v instanceof Date) return `Date(${v.getTime()})`;
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).filter((k) => o[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'undefined';
}

export const XML_TOKENS = [
  '<', '>', '/>', '</', '=', "'", '"', ' ', '\n', 'xmlns=', 'xmlns:', "xmlns=''", 'xml:lang=', '&amp;', '&lt;', '&gt;',
  '&quot;', '&apos;', '&#60;', '&#x3C;', '&#0;', '&#x10FFFF;', '&unknown;', '<![CDATA[', ']]>', '<!--', '-->', '<?xml',
  '?>', '<!DOCTYPE', 'encoding=', 'version=', 'id=', 'to=', 'from=', 'type=', 'stream:', ':', '\u00e9', '\uFFFD',
  '\u{1F600}',
];

/** Namespaces the codecs look at, as xmlns attribute values. */
export function nsTokens(...namespaces: string[]): string[] {
  return namespaces.flatMap((ns) => [ns, `xmlns='${ns}'`]);
}
