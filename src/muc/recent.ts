// The room's memory of messages it accepted lately, so that one sent again is recognised: by the
// sender's origin-id (XEP-0359; a client resending after a lost connection) or by the stanza id the
// room assigned (a node resending a stanza it forwarded, whose id it proposed). Bounded: the oldest
// are forgotten. Filled from the archive when the room is loaded, so the node that takes a room over
// after a crash knows what the one before it committed.
import type { ArchivedMessage } from '../../storage/types.js';
import { NS } from '../../protocol/namespaces.js';

/** A message the room accepted: its reflection once committed; those that came again meanwhile wait. */
export interface Accepted {
  /** The stanza as the room sent it (with its stanza-id); null until its commit. */
  xml: string | null;
  /** Called once the commit succeeded (true) or failed (false). */
  waiters: ((committed: boolean) => void)[];
}

/** How many keys a room remembers (two per message at most). */
const MAX_KEYS = 2000;
/** Archived messages read when a room is loaded. */
export const RECENT_ON_LOAD = 500;

export function originKey(bare: string, originId: string): string {
  return `o\n${bare}\n${originId}`;
}
export function idKey(stanzaId: string): string {
  return `i\n${stanzaId}`;
}

const ORIGIN_ID = /<origin-id\b[^>]*>/;
const ID_ATTR = /\sid=(?:'([^']*)'|"([^"]*)")/;

/** The origin-id a stored stanza carries (cheap: no parse), if any. */
export function storedOriginId(xml: string): string | null {
  const m = ORIGIN_ID.exec(xml);
  if (!m || !m[0].includes(NS.sid)) return null;
  const id = ID_ATTR.exec(m[0]);
  return id ? (id[1] ?? id[2] ?? null) : null;
}

/**
 * The archive refused a room's entry because it holds one with that stanza id already (a unique
 * violation, SQLSTATE 23505). For a stanza id a forwarding node proposed, that is the same message
 * committed by the room's other holder: the room moved while it was in flight (the old holder's
 * commit landed after the new one loaded the room's recent messages, or both took it at once). It is
 * kept; the holder whose commit succeeded fans it out.
 */
export function committedByOtherHolder(err: unknown, proposedId: string | undefined): boolean {
  return proposedId !== undefined && (err as { code?: unknown } | null)?.code === '23505';
}

/** A proposed time further than this from the owner's clock is not taken (a node's clock gone wrong). */
const PROPOSED_STAMP_SKEW_MS = 60_000;

/**
 * The stamp of a message a node forwarded: the time it first forwarded it, which it sends again with
 * every resend, so two holders that both commit it write the same (archive, stanza id, stamp) and the
 * archive's unique index (partitioned by stamp) refuses the second. Else now.
 */
export function stampFor(proposedAt: number | undefined): Date {
  const now = Date.now();
  return proposedAt !== undefined && Math.abs(now - proposedAt) < PROPOSED_STAMP_SKEW_MS ? new Date(proposedAt) : new Date(now);
}

export class RecentMessages {
  private readonly byKey = new Map<string, Accepted>();

  constructor(private readonly maxKeys = MAX_KEYS) {}

  get size(): number {
    return this.byKey.size;
  }

  find(key: string | null): Accepted | undefined {
    return key === null ? undefined : this.byKey.get(key);
  }

  /** Remembers a message under its keys (nulls skipped). */
  add(keys: (string | null)[], accepted: Accepted): void {
    for (const k of keys) {
      if (k === null) continue;
      this.byKey.delete(k);
      this.byKey.set(k, accepted);
    }
    while (this.byKey.size > this.maxKeys) this.byKey.delete(this.byKey.keys().next().value!);
  }

  /** Forgets a message whose commit failed: sent again, it is a new message. */
  forget(keys: (string | null)[]): void {
    for (const k of keys) if (k !== null) this.byKey.delete(k);
  }

  /** What the archive holds, oldest first: each message under its stanza id and its sender's origin-id (not for retracted ones). */
  load(messages: ArchivedMessage[]): void {
    for (const m of messages) {
      // A retracted one is known by its id only (a node resending it must not archive it again).
      if (m.retracted) {
        this.add([idKey(m.stanzaId)], { xml: m.stanza, waiters: [] });
        continue;
      }
      const origin = storedOriginId(m.stanza);
      this.add([idKey(m.stanzaId), origin !== null && m.realJid ? originKey(m.realJid, origin) : null], { xml: m.stanza, waiters: [] });
    }
  }
}
