// XEP-0402 bookmarks (a PEP node, one item per room) kept in step with XEP-0049 private storage
// <storage xmlns='storage:bookmarks'/> both ways (XEP-0411), for clients of either generation.
// Autojoin is the clients' part: they join the rooms marked autojoin when the bookmarks arrive (the
// last item on login, or a notification); the server does not join on their behalf.
import { Element } from '../../protocol/xml.js';
import { tryParseJid } from '../../protocol/jid.js';
import { NS } from '../../protocol/namespaces.js';
import type { NodeConfig } from '../../protocol/pubsub.js';
import type { Server } from '../context.js';
import { parseStoredXml, storedXml } from '../modules/private.js';
import { eventMessage } from '../../protocol/pubsub.js';
import type { PubsubHost } from './host.js';

export const BOOKMARKS_NODE = NS.bookmarks;
const LEGACY_NS = 'storage:bookmarks';
const PRIVATE_KIND = 'private';
const PRIVATE_KEY = `{${LEGACY_NS}}storage`;
/** XEP-0402 §3: bookmarks are private to the account and keep every room. */
export const BOOKMARKS_OPTIONS: NodeConfig = {
  'pubsub#persist_items': 'true', 'pubsub#max_items': 'max', 'pubsub#access_model': 'whitelist',
  'pubsub#send_last_published_item': 'never',
};

const TRUE = new Set(['1', 'true']);

/** The XEP-0049 <conference/> of one XEP-0402 item. */
function legacyConference(jid: string, c: Element): Element {
  const attrs: Record<string, string> = { jid };
  if (c.attrs.name) attrs.name = c.attrs.name;
  attrs.autojoin = TRUE.has(c.attrs.autojoin ?? '') ? 'true' : 'false';
  const out = new Element('conference', attrs);
  const nick = c.getChildText('nick', BOOKMARKS_NODE);
  if (nick) out.c('nick').t(nick);
  const password = c.getChildText('password', BOOKMARKS_NODE);
  if (password) out.c('password').t(password);
  return out;
}

/** The XEP-0402 payload of one XEP-0049 <conference/>. */
function modernConference(c: Element): Element {
  const attrs: Record<string, string> = { xmlns: BOOKMARKS_NODE };
  if (c.attrs.name) attrs.name = c.attrs.name;
  if (TRUE.has(c.attrs.autojoin ?? '')) attrs.autojoin = 'true';
  const out = new Element('conference', attrs);
  const nick = c.getChildText('nick', LEGACY_NS);
  if (nick) out.c('nick').t(nick);
  const password = c.getChildText('password', LEGACY_NS);
  if (password) out.c('password').t(password);
  return out;
}

export const bookmarksSync = {
  init(server: Server, ps: PubsubHost): void {
    server.disco.accountFeatures.add(`${BOOKMARKS_NODE}#compat`);
    server.hooks.on('private/stored', async ({ username, element }) => {
      if (element.name !== 'storage' || element.ns !== LEGACY_NS) return;
      try {
        await this.fromPrivate(ps, `${username}@${server.domain}`, element);
      } catch (e) {
        server.log.error('bookmarks sync from private storage failed', { err: e });
      }
    });
  },

  /** A XEP-0402 item changed: rewrite the private-storage copy from the node. */
  async afterPublish(ps: PubsubHost, service: string, node: string): Promise<void> {
    if (node !== BOOKMARKS_NODE) return;
    await this.toPrivate(ps, service);
  },
  async afterRetract(ps: PubsubHost, service: string, node: string): Promise<void> {
    if (node !== BOOKMARKS_NODE) return;
    await this.toPrivate(ps, service);
  },

  async toPrivate(ps: PubsubHost, service: string): Promise<void> {
    const username = tryParseJid(service)?.local;
    if (!username) return;
    const storage = new Element('storage', { xmlns: LEGACY_NS });
    for (const it of await ps.pep.store.items(service, BOOKMARKS_NODE)) {
      const c = it.payload ? parseStoredXml(it.payload) : null;
      if (c && c.name === 'conference' && tryParseJid(it.id)) storage.append(legacyConference(it.id, c));
    }
    await ps.server.stores.userData.put(username, PRIVATE_KIND, PRIVATE_KEY, storedXml(storage));
  },

  /** Private storage bookmarks were written: publish what is new or changed, retract what went. */
  async fromPrivate(ps: PubsubHost, service: string, storage: Element): Promise<void> {
    const wanted = new Map<string, Element>();
    for (const c of storage.getChildren('conference', LEGACY_NS)) {
      const jid = c.attrs.jid ? tryParseJid(c.attrs.jid) : null;
      if (jid) wanted.set(jid.toString(), modernConference(c));
    }
    const existing = await ps.pep.store.node(service, BOOKMARKS_NODE);
    const have = new Map<string, string>();
    if (existing) for (const it of await ps.pep.store.items(service, BOOKMARKS_NODE)) have.set(it.id, it.payload);
    for (const [jid, payload] of wanted) {
      if (have.get(jid) === storedXml(payload)) continue;
      const r = await ps.pep.publish(service, BOOKMARKS_NODE, service, { id: jid, publisher: service, payload }, existing ? null : BOOKMARKS_OPTIONS);
      await ps.broadcast(ps.pep, service, r.node, () => {
        const ev = new Element('items', { node: BOOKMARKS_NODE });
        ev.c('item', { id: jid, publisher: service }).append(payload.clone());
        return ev;
      });
    }
    for (const id of have.keys()) {
      if (wanted.has(id)) continue;
      const n = await ps.pep.retract(service, BOOKMARKS_NODE, service, id);
      for (const to of await ps.recipients(ps.pep, n)) {
        const ev = new Element('items', { node: BOOKMARKS_NODE });
        ev.c('retract', { id });
        ps.server.router.route(eventMessage(service, to, ev));
      }
    }
  },
};
