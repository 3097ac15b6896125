// The opening tag of a serialised stanza, read without parsing the rest. Delivery decides on a stanza's
// name and addressing; reading them from the start tag costs one scan of a few dozen characters where a
// parse builds the whole tree.
import type { Attrs } from './xml.js';
import { readStartTag } from './xml-stream.js';

export interface StanzaHead {
  /** Local name of the top-level element. */
  name: string;
  /** Attributes of the start tag, entities decoded. */
  attrs: Attrs;
}

/**
 * The start tag of xml, read as the stream parser reads it; null when it is not a whole, well-formed start
 * tag of an unprefixed element (a prefixed one needs namespace resolution: the caller then parses the
 * whole stanza). Nothing after the tag is read.
 */
export function readStanzaHead(xml: string): StanzaHead | null {
  if (xml.charCodeAt(0) !== 60 /* < */) return null;
  const tag = readStartTag(xml, 0);
  if (tag === 'more' || 'error' in tag || tag.name.includes(':')) return null;
  return { name: tag.name, attrs: tag.attrs };
}
