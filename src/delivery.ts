// What 'deliver/filter' handlers see of a stanza for one local session: its name as routed, its attributes
// at the cost of reading the start tag when a handler asks, the parsed tree only when a handler needs the
// children (a carbon's inner sender, a bounce).
// A room message is serialised once and written to each local recipient as that same string.
import { readStanzaHead } from '../protocol/stanza-head.js';
import { parseStanzaString } from '../protocol/xml-stream.js';
import type { Attrs, Element } from '../protocol/xml.js';
import type { Delivery, LocalSession } from './context.js';

class LazyDelivery implements Delivery {
  /** The start tag's attributes, read on first use: most filters decide on the name alone. */
  private head: Readonly<Attrs> | undefined;

  /** At least one of the two forms is given; the other is made on first use. */
  constructor(readonly session: LocalSession, readonly name: string, attrs: Readonly<Attrs> | undefined,
    private serialised: string | undefined, private parsed: Element | null | undefined) {
    this.head = attrs;
  }

  get type(): string | undefined { return this.attrs().type; }
  get from(): string | undefined { return this.attrs().from; }
  get to(): string | undefined { return this.attrs().to; }

  get xml(): string {
    return (this.serialised ??= this.parsed!.toString());
  }

  element(): Element | null {
    if (this.parsed === undefined) this.parsed = parseStanzaString(this.serialised!);
    return this.parsed;
  }

  private attrs(): Readonly<Attrs> {
    // A start tag the head reader leaves to the parser (a prefixed name) is parsed whole.
    return (this.head ??= readStanzaHead(this.serialised!)?.attrs ?? this.element()?.attrs ?? {});
  }
}

/**
 * The delivery of stanza to session as filters see it. A string's name is the router's; its start tag is
 * read only when a filter asks for an attribute (a room writes each message to every occupant as a string
 * of its own: reading every one's start tag was a fifth of a room join's CPU). A string that is no stanza
 * at all gives a delivery without attributes.
 */
export function deliveryOf(session: LocalSession, stanza: Element | string, name: string): Delivery {
  return typeof stanza === 'string'
    ? new LazyDelivery(session, name, undefined, stanza, undefined)
    : new LazyDelivery(session, stanza.name, stanza.attrs, undefined, stanza);
}
