// Blocking Command (XEP-0191): a per-account block list, enforced on what the account sends and on
// what reaches it. Each node caches the lists of the accounts it holds sessions for; a change is
// announced to every node holding a session of the account, which reloads from storage.
import { parseStanzaString } from '../../protocol/xml-stream.js';
import { randomBytes } from 'node:crypto';
import { Element } from '../../protocol/xml.js';
import { NS } from '../../protocol/namespaces.js';
import { StanzaError, errorReply } from '../../protocol/errors.js';
import { tryParseJid, type Jid } from '../../protocol/jid.js';
import type { Delivery, Module, Server } from '../context.js';
import { formatDateTimeSeconds } from '../../protocol/datetime.js';

const MODULE = 'blocking';
const KIND = 'blocklist';
const TOPIC = 'blocking';

/**
 * XEP-0191 §3.3 matching (as XEP-0016): user@domain/resource, user@domain, domain/resource, then
 * domain, which also covers every address at that domain or at a subdomain of it.
 */
export function isBlocked(list: ReadonlySet<string>, jid: Jid): boolean {
  if (list.size === 0) return false;
  if (jid.resource && list.has(jid.toString())) return true;
  if (jid.local && list.has(jid.bareString())) return true;
  if (jid.resource && list.has(`${jid.domain}/${jid.resource}`)) return true;
  for (let d = jid.domain; ; ) {
    if (list.has(d)) return true;
    const dot = d.indexOf('.');
    if (dot === -1) return false;
    d = d.slice(dot + 1);
  }
}

/** §3.3: what the user's own attempt to reach a blocked contact is answered with. */
export function blockedError(): StanzaError {
  return new StanzaError('not-acceptable', 'You have blocked this JID', 'cancel',
    new Element('blocked', { xmlns: NS.blockingErrors }));
}

interface BlockingNotice { user: string; action: 'block' | 'unblock'; jids: string[] }

function isNotice(data: unknown): data is BlockingNotice {
  const d = data as Partial<BlockingNotice> | null;
  return typeof d === 'object' && d !== null && typeof d.user === 'string' &&
    (d.action === 'block' || d.action === 'unblock') && Array.isArray(d.jids) && d.jids.every((j) => typeof j === 'string');
}

/** Lists by account, counting those that block anyone (a list is replaced, never changed). */
class HeldLists extends Map<string, Set<string>> {
  blocking = 0;

  override set(user: string, list: Set<string>): this {
    if (this.get(user)?.size) this.blocking--;
    if (list.size) this.blocking++;
    return super.set(user, list);
  }

  override delete(user: string): boolean {
    if (this.get(user)?.size) this.blocking--;
    return super.delete(user);
  }
}

export const blockingModule: Module = {
  name: MODULE,
  init(server: Server) {
    server.disco.hostFeatures.add(NS.blocking);
    server.disco.accountFeatures.add(NS.blocking);

    /** Block lists of the accounts with a session on this node. */
    const lists = new HeldLists();
    /** Changes and loads of one account run one after another. */
    const queues = new Map<string, Promise<unknown>>();
    const serial = <T>(user: string, fn: () => Promise<T>): Promise<T> => {
      const run = (queues.get(user) ?? Promise.resolve()).then(fn, fn);
      const tail = run.catch(() => {});
      queues.set(user, tail);
      void tail.then(() => { if (queues.get(user) === tail) queues.delete(user); });
      return run;
    };
    const bareOf = (user: string) => `${user}@${server.domain}`;
    const load = async (user: string) => new Set((await server.stores.userData.list(user, KIND)).map((r) => r.key));
    const reload = (user: string) => serial(user, async () => {
      if (server.localOf(bareOf(user)).length === 0) return;
      lists.set(user, await load(user));
    });

    /**
     * Reads of the lists of accounts not held here, shared while in flight: stanzas to one account
     * then go on in the order they came (RFC 6120 §10.1; reads of their own could finish in any
     * order), and a burst of them costs one read.
     */
    const loading = new Map<string, Promise<Set<string>>>();
    const loadShared = (user: string): Promise<Set<string>> => {
      const p = load(user);
      loading.set(user, p);
      const done = () => { if (loading.get(user) === p) loading.delete(user); };
      p.then(done, done);
      return p;
    };
    /** The cached list, or the stored one for an account not held here. */
    const listFor = (user: string): Set<string> | Promise<Set<string>> => lists.get(user) ?? loading.get(user) ?? loadShared(user);

    // Awaited: delivery filters read the cached list synchronously, so it is in place before the bind
    // result goes out. The other modules' session-start reads (archive preferences, vCard) start at a
    // higher priority without waiting, so this read joins them in one statement.
    server.hooks.on('session/bound', async (session) => {
      if (!lists.has(session.username)) await reload(session.username);
      return false;
    });
    server.hooks.on('session/closed', ({ session }) => {
      if (server.localOf(session.bare).length === 0) lists.delete(session.username);
      return false;
    });
    server.hooks.on('user/deleted', ({ username }) => {
      lists.delete(username);
      return false;
    });

    // --- protocol ----------------------------------------------------------------------------------

    const ownAccount = (from: Jid, to: Jid) => {
      if (from.bareString() !== to.bareString()) throw new StanzaError('service-unavailable');
    };
    const itemJids = (payload: Element): string[] => payload.getChildren('item', NS.blocking).map((item) => {
      const jid = tryParseJid(item.attrs.jid ?? '');
      if (!jid) throw new StanzaError('jid-malformed', 'invalid JID in item');
      return jid.toString();
    });

    server.iq('account', NS.blocking, 'get', async ({ payload, from, to, session }) => {
      ownAccount(from, to);
      if (payload.name !== 'blocklist') throw new StanzaError('bad-request');
      // §3.2: resources that asked for the list get the pushes.
      session?.data.set(MODULE, true);
      const out = new Element('blocklist', { xmlns: NS.blocking });
      for (const jid of [...(await listFor(to.local))].sort()) out.c('item', { jid });
      return out;
    });

    server.iq('account', NS.blocking, 'set', async ({ payload, from, to }) => {
      ownAccount(from, to);
      const user = to.local;
      if (payload.name === 'block') {
        const jids = itemJids(payload);
        if (jids.length === 0) throw new StanzaError('bad-request', 'block needs at least one item');
        await serial(user, () => block(user, jids));
      } else if (payload.name === 'unblock') {
        const jids = itemJids(payload);
        await serial(user, () => unblock(user, jids));
      } else {
        throw new StanzaError('bad-request');
      }
      return null;
    });

    const block = async (user: string, jids: string[]): Promise<void> => {
      const before = await load(user);
      const added = jids.filter((j) => !before.has(j));
      for (const j of added) await server.stores.userData.put(user, KIND, j, '');
      const after = new Set([...before, ...added]);
      if (server.localOf(bareOf(user)).length) lists.set(user, after);
      announce({ user, action: 'block', jids });
      // §3.3: the newly blocked contacts that could see the user's presence now see it go.
      const contacts = await presenceContacts(user, (jid) => isBlocked(new Set(added), jid));
      for (const rec of server.sessions.resources(bareOf(user)).filter((r) => r.available)) {
        for (const contact of contacts) {
          server.router.route(new Element('presence', { type: 'unavailable', from: rec.jid, to: contact }));
        }
      }
    };

    const unblock = async (user: string, jids: string[]): Promise<void> => {
      const before = await load(user);
      const removed = jids.length === 0 ? [...before] : jids.filter((j) => before.has(j));
      if (jids.length === 0) await server.stores.userData.clear(user, KIND);
      else for (const j of removed) await server.stores.userData.delete(user, KIND, j);
      const after = new Set([...before].filter((j) => !removed.includes(j)));
      if (server.localOf(bareOf(user)).length) lists.set(user, after);
      announce({ user, action: 'unblock', jids });
      // §3.4: the unblocked contacts that may see the user's presence get its current presence.
      const removedSet = new Set(removed);
      const contacts = await presenceContacts(user, (jid) => isBlocked(removedSet, jid) && !isBlocked(after, jid));
      for (const rec of server.sessions.resources(bareOf(user)).filter((r) => r.available && r.presence)) {
        const current = parseStanzaString(rec.presence!);
        if (!current) continue;
        if (!current.getChild('delay', NS.delay)) {
          current.append(new Element('delay', { xmlns: NS.delay, from: server.domain, stamp: formatDateTimeSeconds(new Date()) }));
        }
        for (const contact of contacts) {
          const p = current.clone();
          p.attrs.from = rec.jid;
          p.attrs.to = contact;
          server.router.route(p);
        }
      }
    };

    /** Roster contacts with a subscription to the user's presence (RFC 6121 'from' or 'both') that match. */
    const presenceContacts = async (user: string, match: (jid: Jid) => boolean): Promise<string[]> => {
      const roster = await server.stores.roster.get(user);
      return roster.items
        .filter((i) => i.subscription === 'from' || i.subscription === 'both')
        .filter((i) => { const j = tryParseJid(i.jid); return j !== null && match(j); })
        .map((i) => i.jid);
    };

    /** Every node holding a session of the account reloads the list and pushes the change. */
    const announce = (notice: BlockingNotice) => {
      const nodes = new Set(server.sessions.resources(bareOf(notice.user)).map((r) => r.node));
      nodes.delete(server.sessions.nodeId);
      for (const node of nodes) server.cluster.send(node, TOPIC, notice);
      pushLocal(notice);
    };

    const pushLocal = (notice: BlockingNotice) => {
      for (const s of server.localOf(bareOf(notice.user))) {
        if (s.data.get(MODULE) !== true) continue;
        const iq = new Element('iq', { type: 'set', id: 'block-' + randomBytes(6).toString('hex'), to: s.full });
        const change = iq.c(notice.action, { xmlns: NS.blocking });
        for (const jid of notice.jids) change.c('item', { jid });
        server.router.deliverTo(s.record, iq, 'iq');
      }
    };

    server.cluster.on(TOPIC, (data) => {
      if (!isNotice(data)) return;
      reload(data.user).then(() => pushLocal(data), (e) => server.log.error('block list reload failed', { err: e, user: data.user }));
    });

    // --- enforcement -------------------------------------------------------------------------------

    /** Is the sender blocked by this account? Never the account itself, nor the server. */
    const blocks = (list: ReadonlySet<string>, owner: string, sender: Jid) =>
      list.size > 0 && sender.bareString() !== bareOf(owner) && !(sender.domain === server.domain && !sender.local) &&
      isBlocked(list, sender);

    // Outbound: §3.3, the user's stanzas to a blocked contact are refused, not routed.
    server.hooks.on('client/stanza', ({ stanza, session }) => {
      if (stanza.ns !== NS.client || stanza.attrs.to === undefined) return false;
      const list = lists.get(session.username);
      if (!list || list.size === 0) return false;
      const to = tryParseJid(stanza.attrs.to);
      if (!to || !blocks(list, session.username, to)) return false;
      const reply = errorReply(stanza, blockedError());
      if (reply) session.send(reply);
      return true;
    }, 100);

    // Inbound to the bare JID (and offline storage): checked once per stanza, whichever node holds the account.
    const inbound = (kind: 'message' | 'presence', to: Jid, from: Jid, stanza: Element): boolean | Promise<boolean> => {
      if (to.domain !== server.domain || !to.local) return false;
      const decide = (list: Set<string>): boolean => {
        if (!blocks(list, to.local, from)) return false;
        // §3.3: messages get service-unavailable, presence of any kind gets no answer at all.
        if (kind === 'message' && stanza.attrs.type !== 'groupchat') server.router.bounce(stanza, new StanzaError('service-unavailable'));
        return true;
      };
      const list = listFor(to.local);
      return list instanceof Promise ? list.then(decide) : decide(list);
    };
    server.hooks.on('message/bare', ({ stanza, from, to }) => inbound('message', to, from, stanza), 100);
    server.hooks.on('message/offline', ({ stanza, from, to }) => inbound('message', to, from, stanza), 100);
    server.hooks.on('presence/bare', ({ stanza, from, to }) => inbound('presence', to, from, stanza), 100);

    // Inbound to one session, whatever the route (full-JID stanzas, other nodes, carbons).
    server.hooks.on('deliver/filter', (delivery) => filterDelivery(delivery), 100);

    const filterDelivery = (d: Delivery): boolean => {
      const { session } = d;
      const list = lists.get(session.username);
      const ownList = list !== undefined && list.size > 0;
      // Available presence of a local user who blocked this recipient (broadcasts, probe answers). Asked
      // only while someone here blocks anyone: the type is read from the start tag of the string.
      const availability = d.name === 'presence' && lists.blocking > 0 && d.type === undefined;
      // Most deliveries stop here: the recipient blocks nobody and it is not presence, so nothing is parsed.
      if (!ownList && !availability) return false;
      const sender = tryParseJid(d.from ?? '');
      if (!sender) return false;
      if (ownList && blocks(list, session.username, sender)) {
        const type = d.type;
        if (d.name === 'iq' ? type === 'get' || type === 'set' : d.name === 'message' && type !== 'groupchat') {
          const stanza = d.element();
          if (stanza) server.router.bounce(stanza, new StanzaError('service-unavailable'));
        }
        return true;
      }
      // A carbon copy of a message from a blocked sender is not delivered either: only here are the children read.
      if (ownList && d.name === 'message' && sender.toString() === session.bare) {
        const inner = d.element()?.getChild('received', NS.carbons)?.getChild('forwarded', NS.forward)?.getChild('message', NS.client);
        const origin = inner && tryParseJid(inner.attrs.from ?? '');
        if (origin && blocks(list, session.username, origin)) return true;
      }
      if (availability && sender.domain === server.domain && sender.local) {
        const senderList = lists.get(sender.local);
        if (senderList && blocks(senderList, sender.local, session.jid)) return true;
      }
      return false;
    };
  },
};
