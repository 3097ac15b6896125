// Presence (RFC 6121 §4): initial presence with probes, broadcasts to contacts and the account's own
// resources, probes answered from the session table, directed presence remembered for the final
// unavailable, and the subscription stanzas (§3) handed to subscriptions.ts on both sides.
import { Element } from '../../protocol/xml.js';
import { formatDateTimeSeconds } from '../../protocol/datetime.js';
import { NS } from '../../protocol/namespaces.js';
import { tryParseJid, type Jid } from '../../protocol/jid.js';
import type { Roster, SessionRecord } from '../../storage/types.js';
import type { LocalSession, Module, Server, StanzaEvent } from '../context.js';
import { hasFrom, hasTo, isSubscriptionStanza } from './subscription-states.js';
import { handleInbound, handleOutbound, pendingStanzas, rosterWork, sendCurrentPresence } from './subscriptions.js';
import { keepSessionStart } from './session-start.js';

/** Per-session state: where directed presence went (RFC 6121 §4.6), to tell them when we leave. */
interface PresenceState {
  directed: Set<string>;
}

function stateOf(session: LocalSession): PresenceState {
  let s = session.data.get('presence') as PresenceState | undefined;
  if (!s) session.data.set('presence', (s = { directed: new Set() }));
  return s;
}

/** RFC 6121 §4.7.2.3: priority is an integer from -128 to 127; anything else counts as 0. */
function priorityOf(stanza: Element): number {
  const text = stanza.getChildText('priority')?.trim();
  if (!text || !/^[+-]?\d+$/.test(text)) return 0;
  return Math.max(-128, Math.min(127, Number(text)));
}

function copyTo(stanza: Element, to: string): Element {
  const el = stanza.clone();
  el.attrs.to = to;
  return el;
}

/** Contacts whose subscription lets them see the user's presence, and those the user sees. */
async function contacts(server: Server, username: string): Promise<{ from: string[]; to: string[] }> {
  return split(await server.stores.roster.get(username));
}

function split(roster: Roster): { from: string[]; to: string[] } {
  const from: string[] = [];
  const to: string[] = [];
  for (const item of roster.items) {
    if (hasFrom(item.subscription)) from.push(item.jid);
    if (hasTo(item.subscription)) to.push(item.jid);
  }
  return { from, to };
}

/** Sends one resource's presence to its subscribers and to the account's available resources. */
function broadcast(server: Server, stanza: Element, bare: string, subscribers: string[], except?: string): void {
  for (const jid of subscribers) server.router.route(copyTo(stanza, jid));
  for (const rec of server.sessions.resources(bare)) {
    if (rec.available && rec.jid !== except) server.router.deliverTo(rec, copyTo(stanza, rec.jid), 'presence');
  }
}

async function available(server: Server, session: LocalSession, stanza: Element): Promise<void> {
  const initial = !session.record.available;
  stanza.attrs.from = session.full;
  delete stanza.attrs.to;
  // Kept with a <delay/> saying when it was sent (as Prosody keeps it): the copy a contact gets later,
  // on approving a subscription or an unblock, carries it (RFC 6121 §3.1.5, XEP-0191 §3.4).
  const kept = stanza.clone();
  kept.removeChildren((c) => c.is('delay', NS.delay));
  kept.append(new Element('delay', { xmlns: NS.delay, from: server.domain, stamp: formatDateTimeSeconds(new Date()) }));
  await session.updateRecord({ available: true, priority: priorityOf(stanza), presence: kept.toString() });
  if (!initial) {
    broadcast(server, stanza, session.bare, (await contacts(server, session.username)).from);
    return;
  }
  // Read once the record says available (what arrives from now on reaches the session, not storage):
  // the roster, the waiting requests and the offline count in one read.
  const start = await server.stores.sessionStart.read(session.username);
  const { from, to } = split(start.roster);
  // Own resources include this one: the client sees its own presence come back (RFC 6121 §4.2.3).
  broadcast(server, stanza, session.bare, from);
  // §4.2.2: ask for the current presence of everyone the user is subscribed to.
  for (const jid of to) {
    server.router.route(new Element('presence', { type: 'probe', from: session.full, to: jid }, [], NS.client));
  }
  // §3.1.3: requests that arrived while the user was away are shown again.
  for (const req of pendingStanzas(start.pendingIn)) session.send(req);
  keepSessionStart(session, start);
  try {
    await server.hooks.fire('session/online', session);
  } finally {
    keepSessionStart(session, null);
  }
}

/** Unavailable presence from a resource: its subscribers, the account's other resources, directed targets. */
async function unavailable(server: Server, full: string, username: string, stanza: Element, directed: Iterable<string>): Promise<void> {
  const bare = `${username}@${server.domain}`;
  stanza.attrs.from = full;
  delete stanza.attrs.to;
  const { from } = await contacts(server, username);
  broadcast(server, stanza, bare, from, full);
  const covered = new Set(from);
  for (const jid of directed) {
    const target = tryParseJid(jid);
    if (target && !covered.has(target.bareString()) && target.bareString() !== bare) server.router.route(copyTo(stanza, jid));
  }
}

async function clientPresence(server: Server, session: LocalSession, stanza: Element): Promise<void> {
  const type = stanza.attrs.type;
  if (type === undefined) return available(server, session, stanza);
  if (type !== 'unavailable') return; // subscription stanzas and probes need an address
  const state = stateOf(session);
  const directed = [...state.directed];
  state.directed.clear();
  if (!session.record.available) {
    // Never went online: only the targets of directed presence saw it (§4.6.3).
    stanza.attrs.from = session.full;
    for (const jid of directed) server.router.route(copyTo(stanza, jid));
    return;
  }
  await session.updateRecord({ available: false, presence: null });
  await unavailable(server, session.full, session.username, stanza, directed);
}

/** Presence with a 'to' from a local client: subscriptions are processed, directed presence remembered. */
function clientStanza(server: Server, session: LocalSession, stanza: Element): boolean | Promise<boolean> {
  const type = stanza.attrs.type;
  const to = tryParseJid(stanza.attrs.to!);
  if (!to) return false;
  if (isSubscriptionStanza(type)) {
    return handleOutbound(server, session.jid, to.bare(), stanza).then(() => true);
  }
  if (type === undefined || type === 'unavailable') {
    if (to.domain === server.domain && !to.local) return false; // to the server itself: see presence/host
    const directed = stateOf(session).directed;
    if (type === undefined) directed.add(to.toString());
    else directed.delete(to.toString());
  }
  return false;
}

/** RFC 6121 §4.3.2: the server answers a probe for its user from the session table. */
async function answerProbe(server: Server, ev: StanzaEvent): Promise<void> {
  const user = ev.to.bare();
  const bare = user.bareString();
  const prober = ev.from.toString();
  const item = await server.stores.roster.getItem(user.local, ev.from.bareString());
  if (!item || !hasFrom(item.subscription)) {
    if (ev.from.bareString() === bare) return;
    // Not subscribed: say so, so the prober's server can repair its roster.
    server.router.route(new Element('presence', { type: 'unsubscribed', from: bare, to: ev.from.bareString() }, [], NS.client));
    return;
  }
  const sent = sendCurrentPresence(server, bare, prober);
  if (sent === 0) server.router.route(new Element('presence', { type: 'unavailable', from: bare, to: prober }, [], NS.client));
}

function presenceToBare(server: Server, ev: StanzaEvent): boolean | Promise<boolean> {
  const type = ev.stanza.attrs.type;
  if (isSubscriptionStanza(type)) return handleInbound(server, ev).then(() => true);
  if (type === 'probe') return answerProbe(server, ev).then(() => true);
  // Presence that follows a subscription change (§3.1.6: subscribed, then the contact's presence) keeps its place.
  const busy = rosterWork(ev.to.local);
  return busy ? busy.then(() => false) : false;
}

/** Presence to the server's own JID: from a client that has not gone online yet, it is initial presence. */
function presenceToHost(server: Server, ev: StanzaEvent): boolean | Promise<boolean> {
  const type = ev.stanza.attrs.type;
  const session = server.local.get(ev.from.toString());
  if (session && type === undefined && !session.record.available) return available(server, session, ev.stanza).then(() => true);
  // The server itself is always available to whoever asks (as Prosody answers).
  const to = ev.from.bareString();
  if (type === 'subscribe') server.router.route(new Element('presence', { type: 'subscribed', from: server.domain, to }, [], NS.client));
  if (type === 'subscribe' || type === 'probe') server.router.route(new Element('presence', { from: server.domain, to }, [], NS.client));
  return true;
}

/** A resource is gone without saying so: tell everyone who saw it available. */
function vanished(server: Server, rec: SessionRecord, directed: Iterable<string>): Promise<void> {
  const jid: Jid | null = tryParseJid(rec.jid);
  if (!jid) return Promise.resolve();
  const stanza = new Element('presence', { type: 'unavailable' }, [], NS.client);
  return unavailable(server, rec.jid, jid.local, stanza, directed);
}

export const presenceModule: Module = {
  name: 'presence',
  init(server) {
    server.hooks.on('client/presence', ({ session, stanza }) => clientPresence(server, session, stanza));
    server.hooks.on('client/stanza', ({ session, stanza }) => {
      if (stanza.name !== 'presence' || stanza.attrs.to === undefined) return false;
      return clientStanza(server, session, stanza);
    });
    server.hooks.on('presence/bare', (ev) => presenceToBare(server, ev));
    server.hooks.on('presence/host', (ev) => presenceToHost(server, ev));
    server.hooks.on('session/closed', ({ session }) => {
      const state = stateOf(session);
      const directed = [...state.directed];
      state.directed.clear();
      if (!session.record.available && directed.length === 0) return;
      if (!session.record.available) {
        const stanza = new Element('presence', { type: 'unavailable', from: session.full }, [], NS.client);
        for (const jid of directed) server.router.route(copyTo(stanza, jid));
        return;
      }
      return vanished(server, session.record, directed);
    });
    server.hooks.on('cluster/lost', async ({ records }) => {
      for (const rec of records) if (rec.available) await vanished(server, rec, []);
    });
  },
};
