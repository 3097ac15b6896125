// A room's occupants: one per nick, each with the sessions (full real JIDs) that joined under it, and
// the snapshot another node restores them from when it takes the room over.
import { Element } from '../../protocol/xml.js';
import { parseStanzaString } from '../../protocol/xml-stream.js';
import { NS } from '../../protocol/namespaces.js';
import { MUC_NS, type Role } from '../../protocol/muc.js';

export class Occupant {
  /** Sessions (full real JIDs) under this nick, newest last, with each one's presence (cleaned). */
  readonly sessions = new Map<string, Element>();
  constructor(
    public nick: string,
    readonly bare: string,
    public role: Role,
    readonly occupantId: string,
  ) {}

  /** The session whose presence stands for the occupant: the one that joined or spoke last. */
  get primary(): string {
    let last = '';
    for (const k of this.sessions.keys()) last = k;
    return last;
  }

  get presence(): Element {
    return this.sessions.get(this.primary)!;
  }

  /** Makes full the primary session (the occupant's presence follows the session that spoke). */
  promote(full: string): void {
    const p = this.sessions.get(full);
    if (p) { this.sessions.delete(full); this.sessions.set(full, p); }
  }
}

/** Elements a client's presence carries that the room must not copy into an occupant's presence. */
export function cleanPresence(p: Element): Element {
  const out = new Element('presence', {});
  for (const c of p.children) {
    if (typeof c === 'string') continue;
    if (c.ns === MUC_NS.muc || c.ns === MUC_NS.user || c.ns === MUC_NS.occupantId || c.ns === NS.hats) continue;
    if (c.name === 'error') continue;
    out.children.push(c);
  }
  return out;
}

/** The unavailable presence of an occupant removed because its client answered with an error. */
export function kickedByError(stanza: Element): Element {
  const error = stanza.getChild('error');
  const condition = error?.elements().find((e) => e.ns === NS.stanzaErrors && e.name !== 'text')?.name ?? 'undefined-condition';
  const text = error?.getChildText('text', NS.stanzaErrors);
  const p = new Element('presence', {});
  p.c('status').t(`Kicked: ${condition.replace(/-/g, ' ')}${text ? `: ${text}` : ''}`);
  return p;
}

/** An occupant as shared state (for the node that takes the room over). */
export function snapshotOccupant(occ: Occupant): string {
  return JSON.stringify({ bare: occ.bare, role: occ.role, sessions: [...occ.sessions].map(([full, p]) => [full, p.toString()]) });
}

export function restoreOccupant(nick: string, json: string, idFor: (bare: string) => string): Occupant | null {
  let saved: { bare: string; role: Role; sessions: [string, string][] };
  try { saved = JSON.parse(json) as typeof saved; } catch { return null; }
  const occ = new Occupant(nick, saved.bare, saved.role, idFor(saved.bare));
  for (const [full, xml] of saved.sessions) occ.sessions.set(full, parseStanzaString(xml) ?? new Element('presence'));
  return occ;
}
