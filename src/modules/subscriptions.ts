// Presence subscriptions (RFC 6121 §3) on both sides: what the user's server does with a subscription
// stanza its user sends (outbound) and with one that arrives for its user (inbound). The state
// tables are in subscription-states.ts; this file loads and stores the state, pushes roster changes
// and sends the presence the RFC attaches to each change. Shared with the roster and presence modules.
import { randomBytes } from 'node:crypto';
import { Element } from '../../protocol/xml.js';
import { NS } from '../../protocol/namespaces.js';
import { parseStanzaString } from '../../protocol/xml-stream.js';
import type { Jid } from '../../protocol/jid.js';
import type { RosterItem } from '../../storage/types.js';
import type { Server, StanzaEvent } from '../context.js';
import {
  hasFrom, hasTo, inbound, outbound, type SubState, type SubscriptionStanza, type Transition,
} from './subscription-states.js';

// --- roster items and pushes ---------------------------------------------------------------------

/** <item/> as RFC 6121 §2.1.2 defines it; 'remove' for pushes of deleted items. */
export function rosterItemElement(item: RosterItem | { jid: string; subscription: 'remove' }): Element {
  if (item.subscription === 'remove') return new Element('item', { jid: item.jid, subscription: 'remove' });
  const attrs: Record<string, string> = { jid: item.jid };
  if (item.name !== null && item.name !== '') attrs.name = item.name;
  attrs.subscription = item.subscription;
  if (item.askOut) attrs.ask = 'subscribe';
  if (item.approved) attrs.approved = 'true';
  const el = new Element('item', attrs);
  for (const g of item.groups) el.c('group').t(g);
  return el;
}

/** RFC 6121 §2.1.6: a roster push to every interested resource of the account, on any node. */
export function pushRosterItem(server: Server, bare: string, version: number, item: RosterItem | { jid: string; subscription: 'remove' }): void {
  const targets = server.sessions.resources(bare).filter((r) => r.interested);
  for (const rec of targets) {
    const iq = new Element('iq', { type: 'set', id: 'push-' + randomBytes(6).toString('hex'), to: rec.jid, from: bare }, [], NS.client);
    iq.c('query', { xmlns: NS.roster, ver: String(version) }).append(rosterItemElement(item));
    server.router.deliverTo(rec, iq, 'iq');
  }
}

// --- per-account serialisation -------------------------------------------------------------------

const queues = new Map<string, Promise<unknown>>();

/** Runs roster read-modify-write steps of one account one after another (on this node). */
export function withRosterLock<T>(username: string, fn: () => Promise<T>): Promise<T> {
  const prev = queues.get(username) ?? Promise.resolve();
  const run = prev.then(fn, fn);
  const tail = run.catch(() => undefined);
  queues.set(username, tail);
  void tail.then(() => { if (queues.get(username) === tail) queues.delete(username); });
  return run;
}

/** The account's pending roster work, if any: presence for it waits so it cannot overtake a subscription change. */
export function rosterWork(username: string): Promise<unknown> | undefined {
  return queues.get(username);
}

// --- presence helpers ------------------------------------------------------------------------------

/** Parses a presence the server serialised itself (a session record's last presence). */
export const parsePresence = (xml: string): Element | null => parseStanzaString(xml);

function presence(attrs: Record<string, string>): Element {
  return new Element('presence', attrs, [], NS.client);
}

/**
 * Sends the current presence of each available resource of `bare` to `to`, with the <delay/> saying
 * when it was sent (kept with it by the presence module, as Prosody does); how many there were.
 */
export function sendCurrentPresence(server: Server, bare: string, to: string): number {
  let n = 0;
  for (const rec of server.sessions.resources(bare)) {
    if (!rec.available || !rec.presence) continue;
    const el = parsePresence(rec.presence);
    if (!el) continue;
    el.attrs.from = rec.jid;
    el.attrs.to = to;
    server.router.route(el);
    n++;
  }
  return n;
}

/** Sends unavailable presence from each available resource of `bare` to `to`. */
export function sendUnavailableFromAll(server: Server, bare: string, to: string): void {
  for (const rec of server.sessions.resources(bare)) {
    if (rec.available) server.router.route(presence({ type: 'unavailable', from: rec.jid, to }));
  }
}

/**
 * Delivers a subscription stanza to the account's resources: a request to the available ones
 * (§3.1.3), answers and cancellations to the interested ones, beside their roster push (§3.1.6, §3.2.3, §3.3.3).
 */
function deliverToUser(server: Server, bare: string, stanza: Element): void {
  const request = stanza.attrs.type === 'subscribe';
  const targets = server.sessions.resources(bare).filter((r) => (request ? r.available : r.interested));
  const xml = targets.length > 1 ? stanza.toString() : null;
  for (const rec of targets) server.router.deliverTo(rec, xml ?? stanza, 'presence');
}

// --- state ----------------------------------------------------------------------------------------

interface Loaded {
  item: RosterItem | null;
  state: SubState;
}

async function load(server: Server, username: string, contact: string): Promise<Loaded> {
  const [item, pending] = await Promise.all([
    server.stores.roster.getItem(username, contact),
    server.stores.roster.listPendingIn(username),
  ]);
  return {
    item,
    state: {
      subscription: item?.subscription ?? 'none',
      pendingOut: item?.askOut ?? false,
      pendingIn: pending.some((p) => p.jid === contact),
      approved: item?.approved ?? false,
    },
  };
}

/**
 * Stores the new state: the roster item (created only when it carries something) and the pending
 * request. Returns the roster push to send when the item changed. `request` is the inbound subscribe to keep.
 */
async function store(server: Server, username: string, contact: string, loaded: Loaded, t: Transition, request?: Element): Promise<() => void> {
  const { item, state } = loaded;
  const next = t.next;
  const roster = server.stores.roster;
  if (state.pendingIn && !next.pendingIn) await roster.removePendingIn(username, contact);
  if (!state.pendingIn && next.pendingIn && request) await roster.putPendingIn(username, contact, request.toString());
  const itemChanged = next.subscription !== state.subscription || next.pendingOut !== state.pendingOut || next.approved !== state.approved;
  const nothing = () => {};
  if (!itemChanged) return nothing;
  if (!item && next.subscription === 'none' && !next.pendingOut && !next.approved) return nothing;
  const updated: RosterItem = {
    jid: contact, name: item?.name ?? null, groups: item?.groups ?? [],
    subscription: next.subscription, askOut: next.pendingOut, approved: next.approved,
  };
  const version = await roster.put(username, updated);
  return () => pushRosterItem(server, `${username}@${server.domain}`, version, updated);
}

// --- outbound (the user sends) --------------------------------------------------------------------

/**
 * RFC 6121 §3.1.2, §3.1.5, §3.2.2, §3.3.2, §3.4: a subscription stanza from a local user. Routed
 * from the user's bare JID when the tables say so, after the user's roster is updated and pushed.
 */
export async function handleOutbound(server: Server, user: Jid, contactJid: Jid, stanza: Element): Promise<void> {
  const type = stanza.attrs.type as SubscriptionStanza;
  const bare = user.bareString();
  const contact = contactJid.bareString();
  if (contact === bare) return; // one's own presence needs no subscription
  await withRosterLock(user.local, async () => {
    const loaded = await load(server, user.local, contact);
    const t = outbound(type, loaded.state);
    (await store(server, user.local, contact, loaded, t))();
    if (!t.pass) return;
    stanza.attrs.from = bare;
    stanza.attrs.to = contact;
    server.router.route(stanza);
    if (type === 'subscribed') {
      // §3.1.5: the contact now sees the user's presence.
      sendCurrentPresence(server, bare, contact);
      // Already subscribed the other way too: ask for the contact's presence (as Prosody does).
      if (hasTo(t.next.subscription)) server.router.route(presence({ type: 'probe', from: bare, to: contact }));
    } else if (type === 'unsubscribed' && hasFrom(loaded.state.subscription)) {
      // §3.2.2: the contact no longer sees the user's presence.
      sendUnavailableFromAll(server, bare, contact);
    }
  });
}

/** RFC 6121 §2.5.2: the user removed the contact: cancel both directions, then forget the request. */
export async function cancelBothWays(server: Server, user: Jid, item: RosterItem): Promise<void> {
  const bare = user.bareString();
  const pending = (await server.stores.roster.listPendingIn(user.local)).some((p) => p.jid === item.jid);
  if (pending) await server.stores.roster.removePendingIn(user.local, item.jid);
  if (hasTo(item.subscription) || item.askOut) server.router.route(presence({ type: 'unsubscribe', from: bare, to: item.jid }));
  if (hasFrom(item.subscription) || pending) server.router.route(presence({ type: 'unsubscribed', from: bare, to: item.jid }));
  if (hasFrom(item.subscription)) sendUnavailableFromAll(server, bare, item.jid);
}

// --- inbound (a contact sends to the user) --------------------------------------------------------

/** RFC 6121 §3.1.3, §3.1.6, §3.2.3, §3.3.3: a subscription stanza for a local user's bare JID. */
export async function handleInbound(server: Server, ev: StanzaEvent): Promise<void> {
  const type = ev.stanza.attrs.type as SubscriptionStanza;
  const username = ev.to.local;
  const bare = ev.to.bareString();
  const contact = ev.from.bareString();
  if (contact === bare) return;
  // Taken at once (not after an await) so presence routed right after this stanza queues behind it.
  await withRosterLock(username, async () => {
    if (!(await server.userExists(username))) return; // no such user: dropped silently (§3.1.3)
    const loaded = await load(server, username, contact);
    const t = inbound(type, loaded.state);
    const request = ev.stanza;
    request.attrs.from = contact;
    request.attrs.to = bare;
    const push = await store(server, username, contact, loaded, t, request);
    // The stanza first, then the roster change it caused (as Prosody orders them).
    if (t.pass) deliverToUser(server, bare, request);
    push();
    if (t.autoReply) {
      server.router.route(presence({ type: 'subscribed', from: bare, to: contact }));
      // The contact sees the user's presence now (or again, if it had lost track).
      if (sendCurrentPresence(server, bare, contact) === 0) {
        server.router.route(presence({ type: 'unavailable', from: bare, to: contact }));
      }
      return;
    }
    if (type === 'subscribe') {
      // Acknowledges receipt without revealing anything (as Prosody does).
      server.router.route(presence({ type: 'unavailable', from: bare, to: contact }));
    }
    if (type === 'unsubscribe' && hasFrom(loaded.state.subscription)) {
      // §3.3.3: the contact no longer receives the user's presence.
      sendUnavailableFromAll(server, bare, contact);
    }
  });
}

/** Stored subscription requests of an account, to be shown again to a resource going online. */
/** The stored requests as stanzas (those that no longer parse are left out). */
export function pendingStanzas(stored: readonly { stanza: string }[]): Element[] {
  const out: Element[] = [];
  for (const p of stored) {
    const el = parsePresence(p.stanza);
    if (el) out.push(el);
  }
  return out;
}
