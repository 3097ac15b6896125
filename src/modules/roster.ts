// Roster management (RFC 6121 §2): get with versioning (§2.6), add/update and remove, roster pushes
// to interested resources, and the stream features for versioning and pre-approval.
import { Element } from '../../protocol/xml.js';
import { NS } from '../../protocol/namespaces.js';
import { StanzaError } from '../../protocol/errors.js';
import { tryParseJid } from '../../protocol/jid.js';
import type { RosterItem } from '../../storage/types.js';
import type { IqRequest, Module, Server } from '../context.js';
import { cancelBothWays, pushRosterItem, rosterItemElement, withRosterLock } from './subscriptions.js';

/** Longest item name or group name accepted (RFC 6121 §2.3.3 leaves the limit to the server). */
const MAX_TEXT = 1023;

function rosterGet(server: Server, req: IqRequest): Promise<Element | null> {
  return (async () => {
    const session = req.session;
    // §2.2: a resource that asked for the roster is interested and gets pushes from now on.
    if (session && !session.record.interested) await session.updateRecord({ interested: true });
    const roster = await server.stores.roster.get(req.from.local);
    const ver = String(roster.version);
    // §2.6.3: the client's copy is current: empty result; later changes come as pushes.
    if (req.payload.attrs.ver === ver) return null;
    const query = new Element('query', { xmlns: NS.roster, ver });
    for (const item of roster.items) query.append(rosterItemElement(item));
    return query;
  })();
}

interface ParsedSet {
  jid: string;
  remove: boolean;
  name: string | null;
  groups: string[];
}

/** Checks a roster set against RFC 6121 §2.3.3 (and §2.1.2 for what the client may not set). */
function parseSet(req: IqRequest): ParsedSet {
  const children = req.payload.elements();
  if (children.length !== 1) throw new StanzaError('bad-request', 'a roster set carries exactly one item');
  const item = children[0]!;
  if (!item.is('item', NS.roster)) throw new StanzaError('bad-request', 'a roster set carries an <item/>');
  const jidAttr = item.attrs.jid;
  if (jidAttr === undefined) throw new StanzaError('bad-request', 'the item has no jid');
  const jid = tryParseJid(jidAttr);
  if (!jid) throw new StanzaError('jid-malformed', 'the item jid is not a valid JID');
  if (jid.resource) throw new StanzaError('bad-request', 'roster items are bare JIDs');
  if (jid.bareString() === req.from.bareString()) throw new StanzaError('not-allowed', 'an account cannot be in its own roster');
  // §2.1.2.5: subscription other than 'remove' is ignored, as are 'ask' and 'approved'.
  const remove = item.attrs.subscription === 'remove';
  const name = item.attrs.name ?? null;
  if (name !== null && name.length > MAX_TEXT) throw new StanzaError('not-acceptable', 'the item name is too long');
  const groups: string[] = [];
  for (const g of item.getChildren('group', NS.roster)) {
    const text = g.text();
    if (text === '') throw new StanzaError('not-acceptable', 'a group needs a name');
    if (text.length > MAX_TEXT) throw new StanzaError('not-acceptable', 'a group name is too long');
    if (groups.includes(text)) throw new StanzaError('bad-request', `group '${text}' is listed twice`);
    groups.push(text);
  }
  return { jid: jid.bareString(), remove, name: name === '' ? null : name, groups };
}

async function rosterSet(server: Server, req: IqRequest): Promise<null> {
  const set = parseSet(req);
  const user = req.from;
  const bare = user.bareString();
  return withRosterLock(user.local, async () => {
    const existing = await server.stores.roster.getItem(user.local, set.jid);
    if (set.remove) {
      // §2.5.3: nothing to remove.
      if (!existing) throw new StanzaError('item-not-found');
      const version = await server.stores.roster.remove(user.local, set.jid);
      if (version === null) throw new StanzaError('item-not-found');
      // The result goes first (§2.5.2), then the push and the cancellations.
      setImmediate(() => {
        pushRosterItem(server, bare, version, { jid: set.jid, subscription: 'remove' });
        cancelBothWays(server, user, existing).catch((e) => server.log.error('roster removal follow-up failed', { err: e }));
      });
      return null;
    }
    const item: RosterItem = {
      jid: set.jid, name: set.name, groups: set.groups,
      subscription: existing?.subscription ?? 'none', askOut: existing?.askOut ?? false, approved: existing?.approved ?? false,
    };
    const version = await server.stores.roster.put(user.local, item);
    // §2.3.2: the result, then the push to every interested resource including the sender.
    setImmediate(() => pushRosterItem(server, bare, version, item));
    return null;
  });
}

export const rosterModule: Module = {
  name: 'roster',
  init(server) {
    server.iq('account', NS.roster, 'both', async (req) => {
      // §2.1.5: only the account itself reads or changes its roster.
      if (req.to.bareString() !== req.from.bareString() || req.from.domain !== server.domain) throw new StanzaError('forbidden');
      if (req.stanza.attrs.type === 'get') return rosterGet(server, req);
      return rosterSet(server, req);
    });
    server.hooks.on('stream/features', ({ session }) => {
      if (!session.authenticated) return;
      session.features.c('ver', { xmlns: NS.rosterVer });
      session.features.c('sub', { xmlns: NS.preApproval });
    });
  },
};
