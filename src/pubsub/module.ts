// Publish-subscribe on the wire: XEP-0163 PEP on every account's bare JID and an XEP-0060 service on
// pubsub.<domain>, both over one engine (engine.ts). Also here: whom a PEP event goes to (the
// account's own resources and its presence subscribers, by their XEP-0115 +notify features), the
// caps learning that decides it, and the last item sent when a contact comes online or is approved.
import { Element } from '../../protocol/xml.js';
import { NS } from '../../protocol/namespaces.js';
import { StanzaError, errorReply } from '../../protocol/errors.js';
import { tryParseJid, type Jid } from '../../protocol/jid.js';
import { capsVerOfQuery } from '../../protocol/caps.js';
import { PUBSUB, configForm, eventMessage, parseConfigForm, pubsubError, type NodeConfig } from '../../protocol/pubsub.js';
import { createPubsubStore, type PubsubAffiliation, type PubsubItem, type PubsubNode, type PubsubSubscriptionState } from '../../storage/sql-pubsub.js';
import type { Module, Server } from '../context.js';
import { parsePresence, rosterWork } from '../modules/subscriptions.js';
import { parseStoredXml } from '../modules/private.js';
import { PubsubEngine, accessModel, deliverPayloads, notifyRetract, type ServicePolicy } from './engine.js';
import { bookmarksSync } from './bookmarks.js';
import type { PubsubHost } from './host.js';
import { avatarToVcard, CONVERSION_FEATURE, initVcardToAvatar } from './avatar-vcard.js';

const COMMON_DEFAULTS: NodeConfig = {
  'pubsub#persist_items': 'true', 'pubsub#publish_model': 'publishers', 'pubsub#deliver_notifications': 'true',
  'pubsub#deliver_payloads': 'true', 'pubsub#notification_type': 'headline', 'pubsub#notify_delete': 'true',
  'pubsub#notify_retract': 'true',
};
/** XEP-0163 §4: PEP nodes keep the last item and are visible to presence subscribers. */
const PEP_DEFAULTS: NodeConfig = {
  ...COMMON_DEFAULTS, 'pubsub#max_items': '1', 'pubsub#access_model': 'presence', 'pubsub#send_last_published_item': 'on_sub_and_presence',
};
const SERVICE_DEFAULTS: NodeConfig = {
  ...COMMON_DEFAULTS, 'pubsub#max_items': '20', 'pubsub#access_model': 'open', 'pubsub#send_last_published_item': 'never',
};

export const PUBSUB_FEATURES = [
  'access-open', 'access-presence', 'access-whitelist', 'auto-create', 'auto-subscribe', 'config-node',
  'create-and-configure', 'create-nodes', 'delete-items', 'delete-nodes', 'filtered-notifications',
  'instant-nodes', 'item-ids', 'last-published', 'manage-affiliations', 'manage-subscriptions', 'modify-affiliations',
  'multi-items', 'outcast-affiliation', 'persistent-items', 'presence-notifications', 'publish', 'publish-options',
  'publisher-affiliation', 'purge-nodes', 'retract-items', 'retrieve-affiliations', 'retrieve-default', 'retrieve-items',
  'retrieve-subscriptions', 'subscribe', 'config-node-max',
].map((f) => `${PUBSUB.main}#${f}`);

const bareOf = (jid: string): string => { const i = jid.indexOf('/'); return i < 0 ? jid : jid.slice(0, i); };

/** The XEP-0115 <c/> of a presence: its node and ver. */
function capsOf(presence: Element | null): { node: string; ver: string } | null {
  const c = presence?.getChild('c', NS.caps);
  if (!c?.attrs.ver || !c.attrs.node) return null;
  return { node: c.attrs.node, ver: c.attrs.ver };
}

export class Pubsub implements PubsubHost {
  readonly pep: PubsubEngine;
  readonly service: PubsubEngine;
  readonly serviceJid: string;
  /** Verified caps: ver → features (XEP-0115 §5.4 hash matches the disco#info answer). */
  private readonly verified = new Map<string, Set<string>>();
  /** Features a full JID answered with for a ver that did not verify: trusted for that JID only. */
  private readonly perJid = new Map<string, { ver: string; features: Set<string> }>();
  /** The ver each full JID last announced, as this node has seen it. */
  private readonly announced = new Map<string, string>();
  /** Caps queries in flight, as "service ver". */
  private readonly asked = new Set<string>();

  constructor(readonly server: Server) {
    const store = createPubsubStore(server.stores.db);
    const presenceSubscribed = async (owner: string, jid: string): Promise<boolean> => {
      if (owner === jid) return true;
      const o = tryParseJid(owner);
      if (!o || o.domain !== server.domain || !o.local) return false;
      const item = await server.stores.roster.getItem(o.local, jid);
      return item?.subscription === 'from' || item?.subscription === 'both';
    };
    const rosterGroups = async (owner: string, jid: string): Promise<string[] | null> => {
      const o = tryParseJid(owner);
      if (!o || o.domain !== server.domain || !o.local) return null;
      return (await server.stores.roster.getItem(o.local, jid))?.groups ?? null;
    };
    const pepPolicy: ServicePolicy = {
      pep: true,
      defaults: () => ({ ...PEP_DEFAULTS }),
      mayCreate: (service, actor) => service === actor,
      presenceSubscribed,
      rosterGroups,
    };
    this.serviceJid = `pubsub.${server.domain}`;
    const servicePolicy: ServicePolicy = {
      pep: false,
      defaults: () => ({ ...SERVICE_DEFAULTS }),
      // Administrators create nodes (they then make others publishers); anyone may subscribe where
      // the access model allows.
      mayCreate: (_service, actor) => server.isAdmin(actor),
      presenceSubscribed,
      rosterGroups,
    };
    this.pep = new PubsubEngine(store, pepPolicy);
    this.service = new PubsubEngine(store, servicePolicy);
  }

  // --- caps ----------------------------------------------------------------------------------------

  private features(fullJid: string, ver: string | undefined): Set<string> | null {
    if (ver === undefined) return null;
    const v = this.verified.get(ver);
    if (v) return v;
    const j = this.perJid.get(fullJid);
    return j && j.ver === ver ? j.features : null;
  }

  /** The features of an available resource, from what its last presence announced; null when unknown. */
  notifyFeatures(fullJid: string): Set<string> | null {
    let ver = this.announced.get(fullJid);
    if (ver === undefined) {
      const rec = this.server.sessions.get(fullJid);
      ver = rec?.presence ? capsOf(parsePresence(rec.presence))?.ver : undefined;
    }
    return this.features(fullJid, ver);
  }

  /** PEP services whose events this account receives: its own, and its contacts' it is subscribed to. */
  private async servicesFor(bare: string): Promise<string[]> {
    const jid = tryParseJid(bare);
    if (!jid?.local) return [];
    const roster = await this.server.stores.roster.get(jid.local);
    const out = [bare];
    for (const item of roster.items) {
      if ((item.subscription === 'to' || item.subscription === 'both') && tryParseJid(item.jid)?.domain === this.server.domain) {
        out.push(item.jid);
      }
    }
    return out;
  }

  /** Resources whose announced caps changed to a ver already known, awaiting their last items. */
  private readonly changed = new Set<string>();

  /**
   * Available presence from a local resource, before it is broadcast: note its caps and, when they
   * are new, ask for them from the account's own PEP service first (the answer decides its events).
   */
  presenceEarly(fullJid: string, stanza: Element): void {
    if (stanza.attrs.type === 'unavailable') { this.announced.delete(fullJid); this.perJid.delete(fullJid); this.changed.delete(fullJid); return; }
    if (stanza.attrs.type !== undefined) return;
    const caps = capsOf(stanza);
    if (!caps) return;
    const before = this.announced.get(fullJid);
    this.announced.set(fullJid, caps.ver);
    if (this.features(fullJid, caps.ver)) {
      if (before !== caps.ver) this.changed.add(fullJid);
      return;
    }
    this.askCaps(bareOf(fullJid), fullJid, caps);
  }

  /** After the broadcast: the contacts' services ask too, or everyone sends the last items. */
  async presenceLate(fullJid: string, stanza: Element): Promise<void> {
    if (stanza.attrs.type !== undefined) return;
    const caps = capsOf(stanza);
    if (!caps) return;
    const services = await this.servicesFor(bareOf(fullJid));
    if (this.changed.delete(fullJid)) {
      for (const s of services) await this.sendLastItems(s, fullJid);
      return;
    }
    if (this.features(fullJid, caps.ver)) return;
    for (const s of services) if (s !== bareOf(fullJid)) this.askCaps(s, fullJid, caps);
  }

  /** Each PEP service asks from its own JID, as the account's server would on its behalf. */
  private askCaps(service: string, fullJid: string, caps: { node: string; ver: string }): void {
    const key = `${service} ${caps.ver}`;
    if (this.asked.has(key)) return;
    this.asked.add(key);
    setTimeout(() => this.asked.delete(key), 60_000).unref();
    const iq = new Element('iq', { type: 'get', id: 'disco', from: service, to: fullJid }, [], NS.client);
    iq.c('query', { xmlns: NS.discoInfo, node: `${caps.node}#${caps.ver}` });
    this.server.router.route(iq);
  }

  /** A disco#info answer to a caps query one of the PEP services sent. */
  async onCapsReply(stanza: Element, from: Jid, to: Jid): Promise<void> {
    const q = stanza.getChild('query', NS.discoInfo);
    const node = q?.attrs.node;
    if (stanza.attrs.type !== 'result' || !q || !node || !node.includes('#')) return;
    const ver = node.slice(node.lastIndexOf('#') + 1);
    this.asked.delete(`${to.bareString()} ${ver}`);
    const features = new Set(q.getChildren('feature', NS.discoInfo).map((f) => f.attrs.var ?? ''));
    if (capsVerOfQuery(q) === ver) this.verified.set(ver, features);
    else this.perJid.set(from.toString(), { ver, features });
    await this.sendLastItems(to.bareString(), from.toString());
  }

  /** XEP-0163 §4.3.4: the last item of each node the resource wants (+notify) and may see. */
  async sendLastItems(service: string, fullJid: string, only?: string): Promise<void> {
    const features = this.notifyFeatures(fullJid);
    if (!features) return;
    for (const n of await this.pep.store.nodes(service)) {
      if (only !== undefined && n.node !== only) continue;
      if (!features.has(`${n.node}+notify`)) continue;
      if ((n.config['pubsub#send_last_published_item'] ?? 'on_sub_and_presence') === 'never') continue;
      try { await this.pep.checkAccess(n, bareOf(fullJid), fullJid); } catch { continue; }
      const [last] = await this.pep.store.items(service, n.node, { max: 1 });
      if (last) this.server.router.route(eventMessage(service, fullJid, this.itemsEvent(n, [last])));
    }
  }

  /** A contact was just approved: the account's resources get the owner's last items (XEP-0163 §4.3.3). */
  async onSubscribed(owner: string, contact: string): Promise<void> {
    const c = tryParseJid(contact);
    if (!c?.local || c.domain !== this.server.domain) return;
    // The subscriptions module applies the change after this observer returns: let it start, then wait for it.
    await new Promise((r) => setTimeout(r, 10));
    await rosterWork(c.local);
    for (const rec of this.server.sessions.resources(contact)) if (rec.available) await this.sendLastItems(owner, rec.jid);
  }

  // --- events --------------------------------------------------------------------------------------

  itemsEvent(n: PubsubNode, items: PubsubItem[]): Element {
    const el = new Element('items', { node: n.node });
    for (const it of items) {
      const item = el.c('item', { id: it.id, publisher: it.publisher });
      if (deliverPayloads(n.config) && it.payload) { const p = parseStoredXml(it.payload); if (p) item.append(p); }
    }
    return el;
  }

  /** Who hears of an event on a node: JIDs to send to (full, or bare for bare subscriptions). */
  async recipients(engine: PubsubEngine, n: PubsubNode): Promise<Set<string>> {
    const out = new Set<string>();
    for (const s of await engine.store.subscriptions(n.service, n.node)) if (s.state === 'subscribed') out.add(s.jid);
    if (!engine.policy.pep) return out;
    const owner = tryParseJid(n.service);
    if (!owner?.local) return out;
    // Contacts that receive the owner's presence, and anyone the node names; then the access model decides.
    const candidates = new Set([n.service]);
    for (const item of (await this.server.stores.roster.get(owner.local)).items) {
      if (item.subscription === 'from' || item.subscription === 'both' || accessModel(n.config) === 'roster') candidates.add(item.jid);
    }
    for (const a of await engine.store.affiliations(n.service, n.node)) candidates.add(a.jid);
    for (const bare of candidates) {
      if (bare !== n.service) { try { await engine.checkAccess(n, bare); } catch { continue; } }
      for (const rec of this.server.sessions.resources(bare)) {
        if (rec.available && this.notifyFeatures(rec.jid)?.has(`${n.node}+notify`)) out.add(rec.jid);
      }
    }
    return out;
  }

  async broadcast(engine: PubsubEngine, from: string, n: PubsubNode, payload: () => Element): Promise<void> {
    if (n.config['pubsub#deliver_notifications'] === 'false') return;
    for (const to of await this.recipients(engine, n)) this.server.router.route(eventMessage(from, to, payload()));
  }

  // --- IQ ------------------------------------------------------------------------------------------

  /** One pubsub or pubsub#owner request on a service; the result's payload or nothing. */
  async handle(engine: PubsubEngine, service: string, from: Jid, type: string, payload: Element): Promise<Element | null> {
    const actor = from.bareString();
    const full = from.toString();
    const ops = payload.elements();
    const op = ops.find((e) => !['configure', 'publish-options', 'options'].includes(e.name)) ?? ops[0];
    if (!op) throw new StanzaError('bad-request');
    const nodeName = op.attrs.node;
    const needNode = (): string => {
      if (nodeName === undefined || nodeName === '') throw pubsubError('bad-request', 'nodeid-required');
      return nodeName;
    };
    if (payload.ns === PUBSUB.main && type === 'set') {
      switch (op.name) {
        case 'create': {
          const confEl = payload.getChild('configure', PUBSUB.main)?.getChild('x', NS.dataForms);
          const config = confEl ? parseConfigForm(confEl, PUBSUB.nodeConfig) : {};
          const n = await engine.create(service, nodeName || null, actor, config);
          if (nodeName) return null;
          const r = new Element('pubsub', { xmlns: PUBSUB.main });
          r.c('create', { node: n.node });
          return r;
        }
        case 'publish': {
          const node = needNode();
          const items = op.getChildren('item', PUBSUB.main);
          if (items.length > 1) throw pubsubError('bad-request', 'invalid-payload');
          const itemEl = items[0];
          const payloads = itemEl?.elements() ?? [];
          if (payloads.length > 1) throw pubsubError('bad-request', 'invalid-payload');
          const optsEl = payload.getChild('publish-options', PUBSUB.main)?.getChild('x', NS.dataForms);
          let options: NodeConfig | null = null;
          if (optsEl) {
            try {
              options = parseConfigForm(optsEl, PUBSUB.publishOptions);
            } catch (e) {
              throw e instanceof StanzaError ? pubsubError('conflict', 'precondition-not-met', e.text) : e;
            }
          }
          const r = await engine.publish(service, node, actor, { id: itemEl?.attrs.id ?? '', publisher: actor, payload: payloads[0] ?? null }, options);
          const n = r.node;
          await this.broadcast(engine, service, n, () => {
            const ev = new Element('items', { node });
            const item = ev.c('item', { id: r.item.id, publisher: actor });
            if (deliverPayloads(n.config) && r.item.payload) item.append(r.item.payload.clone());
            return ev;
          });
          if (engine.policy.pep) await this.afterPepPublish(service, node, r.item.payload);
          const res = new Element('pubsub', { xmlns: PUBSUB.main });
          res.c('publish', { node }).c('item', { id: r.item.id });
          return res;
        }
        case 'retract': {
          const node = needNode();
          const ids = op.getChildren('item', PUBSUB.main).map((i) => i.attrs.id).filter((i): i is string => !!i);
          if (ids.length === 0) throw pubsubError('bad-request', 'item-required');
          let n: PubsubNode | null = null;
          for (const id of ids) n = await engine.retract(service, node, actor, id);
          const notify = op.attrs.notify === 'true' || op.attrs.notify === '1' || (op.attrs.notify === undefined && notifyRetract(n!.config));
          if (notify) {
            await this.broadcast(engine, service, n!, () => {
              const ev = new Element('items', { node });
              for (const id of ids) ev.c('retract', { id });
              return ev;
            });
          }
          if (engine.policy.pep) await this.afterPepRetract(service, node);
          return null;
        }
        case 'subscribe': {
          const node = needNode();
          const jid = op.attrs.jid ?? '';
          const r = await engine.subscribe(service, node, actor, jid);
          const res = new Element('pubsub', { xmlns: PUBSUB.main });
          res.c('subscription', { node, jid, subscription: r.state });
          const send = r.node.config['pubsub#send_last_published_item'];
          if (send === 'on_sub' || send === 'on_sub_and_presence') {
            const [last] = await engine.store.items(service, node, { max: 1 });
            if (last) setImmediate(() => this.server.router.route(eventMessage(service, jid, this.itemsEvent(r.node, [last]))));
          }
          return res;
        }
        case 'unsubscribe': {
          const node = needNode();
          const jid = op.attrs.jid ?? '';
          await engine.unsubscribe(service, node, actor, jid);
          const res = new Element('pubsub', { xmlns: PUBSUB.main });
          res.c('subscription', { node, jid, subscription: 'none' });
          return res;
        }
        case 'options':
          throw pubsubError('feature-not-implemented', 'unsupported', undefined, 'subscription-options');
      }
      throw new StanzaError('feature-not-implemented');
    }
    if (payload.ns === PUBSUB.main && type === 'get') {
      switch (op.name) {
        case 'items': {
          const node = needNode();
          const ids = op.getChildren('item', PUBSUB.main).map((i) => i.attrs.id).filter((i): i is string => !!i);
          const opts: { ids?: string[]; max?: number } = {};
          if (ids.length > 0) opts.ids = ids;
          else if (op.attrs.max_items !== undefined) {
            if (!/^[0-9]{1,9}$/.test(op.attrs.max_items)) throw new StanzaError('bad-request', 'max_items must be a number');
            opts.max = Number(op.attrs.max_items);
          }
          const r = await engine.items(service, node, actor, full, opts);
          const res = new Element('pubsub', { xmlns: PUBSUB.main });
          const itemsEl = res.c('items', { node });
          for (const it of r.items) {
            const item = itemsEl.c('item', { id: it.id, publisher: it.publisher });
            if (it.payload) { const p = parseStoredXml(it.payload); if (p) item.append(p); }
          }
          return res;
        }
        case 'subscriptions': {
          const res = new Element('pubsub', { xmlns: PUBSUB.main });
          const el = res.c('subscriptions', nodeName ? { node: nodeName } : {});
          for (const s of await engine.store.subscriptionsOf(service, actor)) {
            if (!nodeName || s.node === nodeName) el.c('subscription', { node: s.node, jid: s.jid, subscription: s.state });
          }
          return res;
        }
        case 'affiliations': {
          const res = new Element('pubsub', { xmlns: PUBSUB.main });
          const el = res.c('affiliations', nodeName ? { node: nodeName } : {});
          const rows = engine.policy.pep && actor === service
            ? (await engine.store.nodes(service)).map((n) => ({ node: n.node, affiliation: 'owner' }))
            : await engine.store.affiliationsOf(service, actor);
          for (const a of rows) if (!nodeName || a.node === nodeName) el.c('affiliation', { node: a.node, affiliation: a.affiliation });
          return res;
        }
        case 'default': {
          const res = new Element('pubsub', { xmlns: PUBSUB.main });
          res.c('default').append(configForm(engine.policy.defaults()));
          return res;
        }
        case 'options':
          throw pubsubError('feature-not-implemented', 'unsupported', undefined, 'subscription-options');
      }
      throw new StanzaError('feature-not-implemented');
    }
    if (payload.ns === PUBSUB.owner) {
      const res = new Element('pubsub', { xmlns: PUBSUB.owner });
      if (type === 'get') {
        switch (op.name) {
          case 'configure': {
            const n = await engine.requireOwner(service, needNode(), actor);
            res.c('configure', { node: n.node }).append(configForm({ ...engine.policy.defaults(), ...n.config }));
            return res;
          }
          case 'default':
            res.c('default').append(configForm(engine.policy.defaults()));
            return res;
          case 'subscriptions': {
            const node = needNode();
            await engine.requireOwner(service, node, actor);
            const el = res.c('subscriptions', { node });
            for (const s of await engine.store.subscriptions(service, node)) el.c('subscription', { jid: s.jid, subscription: s.state });
            return res;
          }
          case 'affiliations': {
            const node = needNode();
            const n = await engine.requireOwner(service, node, actor);
            const el = res.c('affiliations', { node });
            const rows = await engine.store.affiliations(service, node);
            if (engine.policy.pep) el.c('affiliation', { jid: n.service, affiliation: 'owner' });
            for (const a of rows) el.c('affiliation', { jid: a.jid, affiliation: a.affiliation });
            return res;
          }
        }
        throw new StanzaError('feature-not-implemented');
      }
      switch (op.name) {
        case 'configure': {
          const node = needNode();
          const x = op.getChild('x', NS.dataForms);
          if (!x) throw new StanzaError('bad-request', 'a configuration form is required');
          await engine.configure(service, node, actor, parseConfigForm(x, PUBSUB.nodeConfig));
          return null;
        }
        case 'delete': {
          const node = needNode();
          const r = await engine.delete(service, node, actor);
          for (const to of r.subscribers) this.server.router.route(eventMessage(service, to, new Element('delete', { node })));
          if (engine.policy.pep) {
            for (const to of await this.recipients(engine, { ...r.node })) {
              if (!r.subscribers.includes(to)) this.server.router.route(eventMessage(service, to, new Element('delete', { node })));
            }
          }
          return null;
        }
        case 'purge': {
          const node = needNode();
          const n = await engine.purge(service, node, actor);
          await this.broadcast(engine, service, n, () => new Element('purge', { node }));
          return null;
        }
        case 'subscriptions': {
          const node = needNode();
          const changes = op.getChildren('subscription', PUBSUB.owner).map((s) => {
            const state = s.attrs.subscription;
            if (!s.attrs.jid || !['none', 'subscribed', 'pending', 'unconfigured'].includes(state ?? '')) throw new StanzaError('bad-request');
            return { jid: s.attrs.jid, state: state as PubsubSubscriptionState | 'none' };
          });
          await engine.setSubscriptions(service, node, actor, changes);
          return null;
        }
        case 'affiliations': {
          const node = needNode();
          const changes = op.getChildren('affiliation', PUBSUB.owner).map((a) => {
            const aff = a.attrs.affiliation;
            const jid = a.attrs.jid ? tryParseJid(a.attrs.jid) : null;
            if (!jid || !['none', 'owner', 'publisher', 'publish-only', 'member', 'outcast'].includes(aff ?? '')) throw new StanzaError('bad-request');
            return { jid: jid.bareString(), affiliation: aff as PubsubAffiliation | 'none' };
          });
          await engine.setAffiliations(service, node, actor, changes);
          return null;
        }
      }
      throw new StanzaError('feature-not-implemented');
    }
    throw new StanzaError('service-unavailable');
  }

  /** What rides on PEP: bookmarks in private storage too, an avatar in the vCard too. */
  private async afterPepPublish(service: string, node: string, payload: Element | null): Promise<void> {
    try { await bookmarksSync.afterPublish(this, service, node); } catch (e) { this.server.log.error('bookmarks sync failed', { err: e }); }
    try { await avatarToVcard(this, service, node, payload); } catch (e) { this.server.log.error('avatar conversion failed', { err: e }); }
  }
  private async afterPepRetract(service: string, node: string): Promise<void> {
    try { await bookmarksSync.afterRetract(this, service, node); } catch (e) { this.server.log.error('bookmarks sync failed', { err: e }); }
  }

  // --- the service's own JID -----------------------------------------------------------------------

  private serviceInfo(node: string | undefined): Element {
    const q = new Element('query', { xmlns: NS.discoInfo });
    if (node !== undefined) q.attrs.node = node;
    q.c('identity', node === undefined
      ? { category: 'pubsub', type: 'service', name: 'Publish-Subscribe' }
      : { category: 'pubsub', type: 'leaf' });
    for (const f of [NS.discoInfo, NS.discoItems, PUBSUB.main, ...PUBSUB_FEATURES]) q.c('feature', { var: f });
    return q;
  }

  async onServiceStanza(stanza: Element): Promise<void> {
    if (stanza.name !== 'iq') return;
    const type = stanza.attrs.type ?? '';
    if (type !== 'get' && type !== 'set') return;
    const from = tryParseJid(stanza.attrs.from ?? '');
    if (!from) return;
    const payload = stanza.elements()[0];
    const reply = (child: Element | null): void => {
      const r = new Element('iq', { type: 'result', id: stanza.attrs.id ?? '', from: this.serviceJid, to: from.toString() }, [], NS.client);
      if (child) r.append(child);
      this.server.router.route(r);
    };
    try {
      if (!payload) throw new StanzaError('bad-request');
      if (payload.ns === NS.discoInfo && type === 'get') {
        const node = payload.attrs.node;
        if (node !== undefined) {
          const n = await this.service.node(this.serviceJid, node);
          const q = this.serviceInfo(node);
          q.append(configForm({ ...this.service.policy.defaults(), ...n.config }, PUBSUB.metaData, 'result'));
          return reply(q);
        }
        return reply(this.serviceInfo(undefined));
      }
      if (payload.ns === NS.discoItems && type === 'get') {
        const q = new Element('query', { xmlns: NS.discoItems });
        if (payload.attrs.node === undefined) {
          for (const n of await this.service.store.nodes(this.serviceJid)) {
            try { await this.service.checkAccess(n, from.bareString(), from.toString()); } catch { continue; }
            q.c('item', { jid: this.serviceJid, node: n.node });
          }
        }
        return reply(q);
      }
      if (payload.ns === PUBSUB.main || payload.ns === PUBSUB.owner) {
        return reply(await this.handle(this.service, this.serviceJid, from, type, payload));
      }
      throw new StanzaError('service-unavailable');
    } catch (e) {
      if (!(e instanceof StanzaError)) this.server.log.error('pubsub request failed', { err: e });
      const r = errorReply(stanza, e instanceof StanzaError ? e : new StanzaError('internal-server-error'));
      if (r) { r.attrs.from = this.serviceJid; r.attrs.to = from.toString(); this.server.router.route(r); }
    }
  }
}

let current: Pubsub | null = null;
/** The running instance, for modules riding on PEP (private storage bookmarks). */
export function pubsubInstance(): Pubsub | null { return current; }

export const pubsubModule: Module = {
  name: 'pubsub',
  init(server) {
    const ps = new Pubsub(server);
    current = ps;
    for (const ns of [PUBSUB.main, PUBSUB.owner]) {
      server.iq('account', ns, 'both', async ({ payload, from, to, stanza }) => ps.handle(ps.pep, to.bareString(), from, stanza.attrs.type ?? '', payload));
    }
    // XEP-0163 §4: the account is a PEP service; clients look for this identity before publishing.
    server.disco.accountIdentities.push({ category: 'pubsub', type: 'pep' });
    server.disco.accountFeatures.add(PUBSUB.main);
    server.disco.accountFeatures.add(CONVERSION_FEATURE);
    for (const f of PUBSUB_FEATURES) server.disco.accountFeatures.add(f);
    server.disco.hostItems.push({ jid: ps.serviceJid, name: 'Publish-Subscribe' });
    server.disco.accountItems.push(async (account, from) => {
      const out: Element[] = [];
      for (const n of await ps.pep.store.nodes(account.toString())) {
        try { await ps.pep.checkAccess(n, from.bareString(), from.toString()); } catch { continue; }
        const title = n.config['pubsub#title'];
        out.push(new Element('item', typeof title === 'string' && title !== '' ? { jid: n.service, node: n.node, name: title } : { jid: n.service, node: n.node }));
      }
      return out;
    });
    server.router.addDomain(ps.serviceJid, (stanza) => { void ps.onServiceStanza(stanza); });
    // Observed on both sides of the presence module's broadcast (which never consumes the event).
    server.hooks.on('client/presence', ({ session, stanza }) => { ps.presenceEarly(session.full, stanza); }, 10);
    server.hooks.on('client/presence', async ({ session, stanza }) => {
      await ps.presenceLate(session.full, stanza).catch((e) => server.log.error('pep presence failed', { err: e }));
    }, -10);
    server.hooks.on('session/closed', ({ session }) => { ps.presenceEarly(session.full, new Element('presence', { type: 'unavailable' })); });
    server.hooks.on('iq/account-reply', ({ stanza, from, to }) => {
      if (stanza.attrs.id === 'disco') ps.onCapsReply(stanza, from, to).catch((e) => server.log.error('pep caps failed', { err: e }));
    });
    server.hooks.on('presence/bare', ({ stanza, from, to }) => {
      // Observed only: the subscriptions module applies the change; the last items follow it.
      if (stanza.attrs.type === 'subscribed') ps.onSubscribed(from.bareString(), to.bareString()).catch((e) => server.log.error('pep subscribed failed', { err: e }));
    }, 10);
    server.hooks.on('user/deleted', async ({ username }) => { await ps.pep.store.deleteService(`${username}@${server.domain}`); });
    bookmarksSync.init(server, ps);
    initVcardToAvatar(server, ps);
  },
  stop(server) { if (current?.server === server) current = null; },
};
