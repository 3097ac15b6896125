// Delayed delivery (XEP-0203): the <delay/> stamp on a stanza sent later than it was made.
import { Element } from './xml.js';
import { NS } from './namespaces.js';
import { formatDateTime } from './datetime.js';

export function buildDelay(from: string, stamp: Date): Element {
  return new Element('delay', { xmlns: NS.delay, from, stamp: formatDateTime(stamp) });
}

/** Appends a delay to a serialised stanza (the last child), without parsing it. */
export function withDelay(xml: string, name: string, from: string, stamp: Date): string {
  const end = `</${name}>`;
  return xml.slice(0, xml.length - end.length) + buildDelay(from, stamp).toString() + end;
}
