// What 'deliver/filter' handlers see of a stanza for one local session: its head at the cost of reading the
// start tag, the parsed tree only when a handler needs the children (a carbon's inner sender, a bounce).
// A room message is serialised once and written to each local recipient as that same string.
import { readStanzaHead } from '../protocol/stanza-head.js';
import { parseStanzaString } from '../protocol/xml-stream.js';
import type { Attrs, Element } from '../protocol/xml.js';
import type { Delivery, LocalSession } from './context.js';

class LazyDelivery implements Delivery {
  /** At least one of the two forms is given; the other is made on first use. */
  constructor(readonly session: LocalSession, readonly name: string, private readonly attrs: Attrs,
    private serialised: string | undefined, private parsed: Element | null | undefined) {}

  get type(): string | undefined { return this.attrs.type; }
  get from(): string | undefined { return this.attrs.from; }
  get to(): string | undefined { return this.attrs.to; }

  get xml(): string {
    return (this.serialised ??= this.parsed!.toString());
  }

  element(): Element | null {
    if (this.parsed === undefined) this.parsed = parseStanzaString(this.serialised!);
    return this.parsed;
  }
}

/**
 * The delivery of stanza to session as filters see it; null for a string that is not a stanza at all
 * (neither its start tag nor the whole parses), which is then written unfiltered as before.
 */
export function deliveryOf(session: LocalSession, stanza: Element | string): Delivery | null {
  if (typeof stanza !== 'string') return new LazyDelivery(session, stanza.name, stanza.attrs, undefined, stanza);
  const head = readStanzaHead(stanza);
  if (head) return new LazyDelivery(session, head.name, head.attrs, stanza, undefined);
  // A start tag this reader leaves to the parser (a prefixed name): parse now, so filters still apply.
  const el = parseStanzaString(stanza);
  return el ? new LazyDelivery(session, el.name, el.attrs, stanza, el) : null;
}
