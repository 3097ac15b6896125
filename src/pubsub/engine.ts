// The one XEP-0060 engine behind PEP (a service per account, XEP-0163) and the pubsub service on
// pubsub.<domain>: node and item operations with their permission checks, over a PubsubStore.
// It knows nothing of stanzas in flight: it returns what happened and who should hear of it, and
// the module (module.ts) turns that into IQ results and event messages.
import { randomBytes } from 'node:crypto';
import { Element } from '../../protocol/xml.js';
import { StanzaError } from '../../protocol/errors.js';
import { ACCESS_MODELS, MAX_ITEMS_LIMIT, pubsubError, type AccessModel, type NodeConfig } from '../../protocol/pubsub.js';
import type { PubsubAffiliation, PubsubItem, PubsubNode, PubsubStore, PubsubSubscriptionState } from '../../storage/sql-pubsub.js';

/** What "max" means for pubsub#max_items, and the most any node keeps. */
export const MAX_ITEMS = MAX_ITEMS_LIMIT;

/** What differs between PEP and the pubsub service. */
export interface ServicePolicy {
  readonly pep: boolean;
  /** Configuration of a node created without one. */
  defaults(): NodeConfig;
  /** May this bare JID create nodes here? */
  mayCreate(service: string, actor: string): boolean;
  /** Has jid (bare) a presence subscription to owner (owner's roster says from or both)? */
  presenceSubscribed(owner: string, jid: string): Promise<boolean>;
  /** The owner's roster groups of jid (bare); null when jid is not in the owner's roster. */
  rosterGroups(owner: string, jid: string): Promise<string[] | null>;
}

export interface PublishedItem { id: string; publisher: string; payload: Element | null }

export function maxItemsOf(config: NodeConfig): number {
  const v = config['pubsub#max_items'];
  if (v === 'max' || v === undefined) return MAX_ITEMS;
  return Math.min(Number(v), MAX_ITEMS);
}
const flag = (config: NodeConfig, name: string, dflt: boolean): boolean =>
  config[name] === undefined ? dflt : config[name] === 'true';
export const persistItems = (c: NodeConfig): boolean => flag(c, 'pubsub#persist_items', true);
export const deliverPayloads = (c: NodeConfig): boolean => flag(c, 'pubsub#deliver_payloads', true);
export const notifyRetract = (c: NodeConfig): boolean => flag(c, 'pubsub#notify_retract', true);
export const notifyDelete = (c: NodeConfig): boolean => flag(c, 'pubsub#notify_delete', true);
export const accessModel = (c: NodeConfig): AccessModel => (c['pubsub#access_model'] as AccessModel | undefined) ?? 'open';

const bareOf = (jid: string): string => { const i = jid.indexOf('/'); return i < 0 ? jid : jid.slice(0, i); };

export class PubsubEngine {
  constructor(readonly store: PubsubStore, readonly policy: ServicePolicy) {}

  async node(service: string, node: string): Promise<PubsubNode> {
    const n = await this.store.node(service, node);
    if (!n) throw new StanzaError('item-not-found');
    return n;
  }

  /** The affiliation of a bare JID: PEP's account is owner of every node it has. */
  async affiliation(n: PubsubNode, actor: string): Promise<PubsubAffiliation | 'none'> {
    if (this.policy.pep && actor === n.service) return 'owner';
    if (actor === n.owner) return 'owner';
    const rows = await this.store.affiliations(n.service, n.node);
    return rows.find((r) => r.jid === actor)?.affiliation ?? 'none';
  }

  /** Throws the XEP-0060 §6.5.x / §7.x condition when actor may not see the node's items. */
  async checkAccess(n: PubsubNode, actor: string, fullJid?: string): Promise<void> {
    const aff = await this.affiliation(n, actor);
    if (aff === 'owner' || aff === 'publisher') return;
    if (aff === 'outcast') throw new StanzaError('forbidden');
    switch (accessModel(n.config)) {
      case 'open':
        return;
      case 'presence': {
        const owner = this.policy.pep ? n.service : n.owner;
        if (await this.policy.presenceSubscribed(owner, actor)) return;
        throw pubsubError('not-authorized', 'presence-subscription-required');
      }
      case 'roster': {
        // In the owner's roster; in one of pubsub#roster_groups_allowed when the node names some.
        const owner = this.policy.pep ? n.service : n.owner;
        const groups = await this.policy.rosterGroups(owner, actor);
        const allowed = n.config['pubsub#roster_groups_allowed'];
        const wanted = allowed === undefined ? [] : Array.isArray(allowed) ? allowed : [allowed];
        if (groups !== null && (wanted.length === 0 || groups.some((g) => wanted.includes(g)))) return;
        throw pubsubError('not-authorized', 'not-in-roster-group');
      }
      case 'whitelist':
        if (aff === 'member' || aff === 'publish-only') return;
        throw pubsubError('not-allowed', 'closed-node');
      case 'authorize': {
        const subs = await this.store.subscriptions(n.service, n.node);
        if (subs.some((s) => s.state === 'subscribed' && (s.jid === actor || s.jid === fullJid))) return;
        throw pubsubError('not-authorized', 'not-subscribed');
      }
    }
  }

  async create(service: string, node: string | null, actor: string, config: NodeConfig = {}): Promise<PubsubNode> {
    if (!this.policy.mayCreate(service, actor)) throw new StanzaError('forbidden');
    const name = node ?? randomBytes(8).toString('hex');
    const n: PubsubNode = { service, node: name, owner: actor, config: { ...this.policy.defaults(), ...config } };
    checkConfig(n.config);
    if (!(await this.store.createNode(n))) throw new StanzaError('conflict', 'the node exists');
    if (!this.policy.pep) await this.store.setAffiliation(service, name, actor, 'owner');
    return n;
  }

  async requireOwner(service: string, node: string, actor: string): Promise<PubsubNode> {
    const n = await this.node(service, node);
    if ((await this.affiliation(n, actor)) !== 'owner') throw new StanzaError('forbidden');
    return n;
  }

  async configure(service: string, node: string, actor: string, change: NodeConfig): Promise<PubsubNode> {
    const n = await this.requireOwner(service, node, actor);
    const config = { ...n.config, ...change };
    checkConfig(config);
    await this.store.configure(service, node, config);
    if (!persistItems(config)) await this.store.trim(service, node, 1);
    else await this.store.trim(service, node, maxItemsOf(config));
    return { ...n, config };
  }

  /** Deletes the node; returns the subscribers to tell (when the node says so). */
  async delete(service: string, node: string, actor: string): Promise<{ node: PubsubNode; subscribers: string[] }> {
    const n = await this.requireOwner(service, node, actor);
    const subs = await this.store.subscriptions(service, node);
    await this.store.deleteNode(service, node);
    return { node: n, subscribers: notifyDelete(n.config) ? subs.filter((s) => s.state === 'subscribed').map((s) => s.jid) : [] };
  }

  async purge(service: string, node: string, actor: string): Promise<PubsubNode> {
    const n = await this.requireOwner(service, node, actor);
    await this.store.purge(service, node);
    return n;
  }

  /**
   * Publishes an item (XEP-0060 §7.1), creating the node on PEP (XEP-0163 §3) with the publish
   * options as its configuration; on an existing node the options are preconditions (§7.1.5).
   */
  async publish(service: string, node: string, actor: string, item: PublishedItem, options: NodeConfig | null): Promise<{ node: PubsubNode; item: PublishedItem }> {
    let n = await this.store.node(service, node);
    if (!n) {
      if (!this.policy.pep) throw new StanzaError('item-not-found');
      n = await this.create(service, node, actor, options ?? {}).catch(async (e: unknown) => {
        // Two publishes racing to create the node: the second publishes to the first's.
        if (e instanceof StanzaError && e.condition === 'conflict') return this.node(service, node);
        throw e;
      });
    } else if (options) {
      for (const [k, v] of Object.entries(options)) {
        const have = n.config[k] ?? this.policy.defaults()[k];
        if (JSON.stringify(have) !== JSON.stringify(v)) {
          throw pubsubError('conflict', 'precondition-not-met', `Field does not match: ${k.replace(/^pubsub#/, '')}`);
        }
      }
    }
    const aff = await this.affiliation(n, actor);
    const model = n.config['pubsub#publish_model'] ?? 'publishers';
    let allowed = aff === 'owner' || aff === 'publisher' || aff === 'publish-only' || model === 'open';
    if (!allowed && model === 'subscribers') {
      allowed = (await this.store.subscriptions(service, node)).some((s) => s.state === 'subscribed' && bareOf(s.jid) === actor);
    }
    if (!allowed) throw new StanzaError('forbidden');
    const published: PublishedItem = { ...item, id: item.id || randomBytes(8).toString('hex'), publisher: actor };
    const persist = persistItems(n.config);
    // A transient node still keeps its last item, for the last-item-on-login rule of XEP-0163.
    await this.store.publish(service, node, {
      id: published.id, publisher: actor, payload: published.payload ? storedPayload(published.payload) : '',
    }, persist ? maxItemsOf(n.config) : 1);
    return { node: n, item: published };
  }

  async retract(service: string, node: string, actor: string, id: string): Promise<PubsubNode> {
    const n = await this.node(service, node);
    const aff = await this.affiliation(n, actor);
    if (aff !== 'owner' && aff !== 'publisher') {
      const mine = (await this.store.items(service, node, { ids: [id] }))[0];
      if (!mine || mine.publisher !== actor) throw new StanzaError('forbidden');
    }
    if (!(await this.store.retract(service, node, id))) throw new StanzaError('item-not-found');
    return n;
  }

  async items(service: string, node: string, actor: string, fullJid: string, opts: { ids?: string[]; max?: number }): Promise<{ node: PubsubNode; items: PubsubItem[] }> {
    const n = await this.node(service, node);
    await this.checkAccess(n, actor, fullJid);
    return { node: n, items: await this.store.items(service, node, opts) };
  }

  async subscribe(service: string, node: string, actor: string, jid: string): Promise<{ node: PubsubNode; state: PubsubSubscriptionState }> {
    const n = await this.node(service, node);
    if (bareOf(jid) !== actor) throw pubsubError('bad-request', 'invalid-jid');
    if (accessModel(n.config) === 'authorize' && (await this.affiliation(n, actor)) !== 'owner') {
      throw pubsubError('feature-not-implemented', 'unsupported', 'subscription approval is not supported', 'subscribe');
    }
    await this.checkAccess(n, actor, jid);
    await this.store.setSubscription(service, node, jid, 'subscribed');
    return { node: n, state: 'subscribed' };
  }

  async unsubscribe(service: string, node: string, actor: string, jid: string): Promise<void> {
    await this.node(service, node);
    if (bareOf(jid) !== actor) throw pubsubError('bad-request', 'invalid-jid');
    const subs = await this.store.subscriptions(service, node);
    if (!subs.some((s) => s.jid === jid)) throw pubsubError('unexpected-request', 'not-subscribed');
    await this.store.setSubscription(service, node, jid, null);
  }

  async setAffiliations(service: string, node: string, actor: string, changes: { jid: string; affiliation: PubsubAffiliation | 'none' }[]): Promise<void> {
    const n = await this.requireOwner(service, node, actor);
    for (const c of changes) {
      // The node keeps an owner (§8.9.2.4 lets the service refuse the change that would orphan it).
      if (c.jid === actor && c.affiliation !== 'owner') throw new StanzaError('not-acceptable', 'the node would have no owner');
      await this.store.setAffiliation(service, n.node, c.jid, c.affiliation === 'none' ? null : c.affiliation);
      if (c.affiliation === 'outcast') {
        for (const s of await this.store.subscriptions(service, n.node)) {
          if (bareOf(s.jid) === c.jid) await this.store.setSubscription(service, n.node, s.jid, null);
        }
      }
    }
  }

  async setSubscriptions(service: string, node: string, actor: string, changes: { jid: string; state: PubsubSubscriptionState | 'none' }[]): Promise<void> {
    await this.requireOwner(service, node, actor);
    for (const c of changes) await this.store.setSubscription(service, node, c.jid, c.state === 'none' ? null : c.state);
  }
}

/** Values that the form check cannot see alone. */
function checkConfig(config: NodeConfig): void {
  const model = config['pubsub#access_model'];
  if (model !== undefined && !(ACCESS_MODELS as readonly string[]).includes(model as string)) {
    throw new StanzaError('not-acceptable', `access model ${String(model)} is not supported`);
  }
}

/** The payload as stored: its namespace declared on the root so that it parses back alone. */
export function storedPayload(el: Element): string {
  const copy = el.clone();
  copy.attrs.xmlns = el.ns;
  return copy.toString();
}
