// Message Carbons (XEP-0280): copies of an account's chats to its other carbons-enabled resources,
// <received/> for what reached one of its resources and <sent/> for what one of them sent.
import { Element } from '../../protocol/xml.js';
import { NS } from '../../protocol/namespaces.js';
import { StanzaError } from '../../protocol/errors.js';
import { tryParseJid, type Jid } from '../../protocol/jid.js';
import type { SessionRecord } from '../../storage/types.js';
import type { Module, Server } from '../context.js';

/**
 * XEP-0280 §5 suggested rules: chat messages, and normal messages with a body, are copied; nothing
 * from a MUC, nothing marked <private/> (§7) or <no-copy/> (XEP-0334), nothing that is itself a carbon.
 */
export function carbonsEligible(stanza: Element): boolean {
  if (stanza.name !== 'message') return false;
  const type = stanza.attrs.type ?? 'normal';
  if (type !== 'chat' && type !== 'normal') return false;
  // Every rule in one pass over the children: this is asked two or three times per message.
  let body = false;
  for (const c of stanza.children) {
    if (typeof c === 'string') continue;
    if (c.ns === NS.client) {
      if (c.name === 'body') body = true;
    } else if (c.ns === NS.carbons) {
      if (c.name === 'private' || c.name === 'received' || c.name === 'sent') return false;
    } else if (c.ns === NS.mucUser) {
      if (c.name === 'x') return false;
    } else if (c.ns === NS.hints && c.name === 'no-copy') {
      return false;
    }
  }
  return type === 'chat' || body;
}

const NONE: readonly SessionRecord[] = Object.freeze([]);

/** The §6/§7 wrapper: from the bare JID, to the copy's resource, the original inside <forwarded/>. */
export function carbonCopy(kind: 'received' | 'sent', original: Element, bare: string, to: string): Element {
  const msg = new Element('message', { xmlns: NS.client, from: bare, to, type: original.attrs.type ?? 'normal' });
  const inner = original.clone();
  inner.attrs.xmlns = NS.client;
  msg.c(kind, { xmlns: NS.carbons }).c('forwarded', { xmlns: NS.forward }).append(inner);
  return msg;
}

export const carbonsModule: Module = {
  name: 'carbons',
  init(server: Server) {
    server.disco.hostFeatures.add(NS.carbons);
    server.disco.accountFeatures.add(NS.carbons);

    server.iq('account', NS.carbons, 'set', async ({ payload, from, to, session }) => {
      // §4/§5: only the account's own client on this server can switch its carbons.
      if (!session || from.bareString() !== to.bareString()) throw new StanzaError('not-allowed');
      if (payload.name === 'enable') await session.updateRecord({ carbons: true });
      else if (payload.name === 'disable') await session.updateRecord({ carbons: false });
      else throw new StanzaError('bad-request');
      return null;
    });

    const copyTo = (records: readonly SessionRecord[], kind: 'received' | 'sent', original: Element, bare: string) => {
      for (const rec of records) server.router.deliverTo(rec, carbonCopy(kind, original, bare, rec.jid), 'message');
    };

    /** Carbons-enabled resources of an account, except those in skip (no array made when there are none). */
    const enabled = (bare: string, skip: (rec: SessionRecord) => boolean): readonly SessionRecord[] => {
      let out: SessionRecord[] | null = null;
      for (const r of server.sessions.resources(bare)) if (r.carbons && !skip(r)) (out ??= []).push(r);
      return out ?? NONE;
    };

    // §6, message to the bare JID (or to a resource that is gone): the non-negative available resources
    // get the original, so only the other carbons-enabled ones get a copy.
    server.hooks.on('message/bare', ({ stanza, to }) => {
      if (to.domain !== server.domain || !to.local || !carbonsEligible(stanza)) {
        stripPrivate(stanza);
        return false;
      }
      const bare = to.bareString();
      const recipients = enabled(bare, (r) => r.available && r.priority >= 0);
      // With no resource to take the original it goes to offline storage; the copies still go out.
      copyTo(recipients, 'received', stanza, bare);
      return false;
    }, -50);

    // §6, message addressed to one full JID: every other carbons-enabled resource gets a copy.
    server.hooks.on('message/full', ({ stanza, to }) => {
      if (stanza.attrs.to !== to.toString()) return false; // routed to the bare JID: handled above
      const eligible = carbonsEligible(stanza);
      stripPrivate(stanza);
      if (!eligible || to.domain !== server.domain || !to.local) return false;
      const bare = to.bareString();
      copyTo(enabled(bare, (r) => r.jid === to.toString()), 'received', stanza, bare);
      return false;
    }, -50);

    // §7: what a client sends goes to its account's other carbons-enabled resources.
    server.hooks.on('client/stanza', ({ stanza, session }) => {
      if (stanza.name !== 'message' || stanza.ns !== NS.client || !carbonsEligible(stanza)) return false;
      const to: Jid | null = stanza.attrs.to === undefined ? null : tryParseJid(stanza.attrs.to);
      // Messages to the account itself reach its resources as received copies instead.
      if (!to || to.bareString() === session.bare) return false;
      copyTo(enabled(session.bare, (r) => r.jid === session.full), 'sent', stanza, session.bare);
      return false;
    }, -50);
  },
};

/** §7: the receiving server SHOULD remove <private/> before delivering to the recipient. */
function stripPrivate(stanza: Element): void {
  if (stanza.getChild('private', NS.carbons)) stanza.removeChildren((c) => c.name === 'private' && c.ns === NS.carbons);
}
