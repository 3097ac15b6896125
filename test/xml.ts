// Test fixtures are written as XML text; this turns one into an element, or fails the test.
import { parseStanzaString } from '../protocol/xml-stream.js';
import type { Element } from '../protocol/xml.js';

export function xml(text: string): Element {
  const e = parseStanzaString(text);
  if (!e) throw new Error('no element parsed');
  return e;
}
