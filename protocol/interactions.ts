// Messages that point at another message in a room: reactions (XEP-0444), replies (XEP-0461),
// corrections (XEP-0308) and retractions by their author (XEP-0424). Pure codec: which message a
// stanza points at, found by one pass over its children (no parse), and the tombstone that replaces
// an interaction whose message was retracted.
import { Element } from './xml.js';
import { NS } from './namespaces.js';
import { MUC_NS } from './muc.js';
import { formatDateTime } from './datetime.js';

export const NS_REACTIONS = 'urn:xmpp:reactions:0';
export const NS_REPLY = 'urn:xmpp:reply:0';
export const NS_CORRECT = 'urn:xmpp:message-correct:0';

export type InteractionKind = 'reaction' | 'reply' | 'correction' | 'retraction';

/** What a message points at: the kind, the referenced id, and the element that says so. */
export interface Interaction {
  kind: InteractionKind;
  /** A room's stanza id (reactions, replies, retractions in groupchat), or the original's id (corrections). */
  id: string;
  el: Element;
}

/**
 * The message's pointer at another message, if any. A retraction or correction wins over a reaction
 * or reply (it changes the message it names); an element without an id points at nothing.
 */
export function interactionOf(stanza: Element): Interaction | null {
  let found: Interaction | null = null;
  for (const c of stanza.children) {
    if (typeof c === 'string') continue;
    const id = c.attrs.id;
    if (id === undefined || id === '') continue;
    if (c.name === 'retract' && c.ns === NS.retract) return { kind: 'retraction', id, el: c };
    // Version 0 (before 2023), still sent by older clients: the retraction fastened to the message.
    if (c.name === 'apply-to' && c.ns === NS.fasten && c.getChild('retract', NS.retract0)) return { kind: 'retraction', id, el: c };
    if (c.name === 'replace' && c.ns === NS_CORRECT) return { kind: 'correction', id, el: c };
    if (found) continue;
    if (c.name === 'reactions' && c.ns === NS_REACTIONS) found = { kind: 'reaction', id, el: c };
    else if (c.name === 'reply' && c.ns === NS_REPLY) found = { kind: 'reply', id, el: c };
  }
  return found;
}

/**
 * What the archive keeps in place of a reaction or correction of a retracted message: the message
 * from its author (from, id, occupant-id), its content gone, marked retracted as XEP-0424 tombstones are.
 */
export function buildDependentTombstone(original: Element | null, stamp: Date): Element {
  const t = new Element('message', { type: 'groupchat' });
  if (original?.attrs.from !== undefined) t.attrs.from = original.attrs.from;
  if (original?.attrs.id !== undefined) t.attrs.id = original.attrs.id;
  const author = original?.getChild('occupant-id', MUC_NS.occupantId)?.attrs.id;
  if (author !== undefined) t.c('occupant-id', { xmlns: MUC_NS.occupantId, id: author });
  t.c('retracted', { xmlns: NS.retract, stamp: formatDateTime(stamp) });
  return t;
}

/** What the archive keeps in place of a message its author retracted (XEP-0424 tombstone). */
export const buildAuthorTombstone = buildDependentTombstone;
