// Publish-subscribe nodes, items, subscriptions and affiliations (XEP-0060) in SQL that runs
// unchanged on PostgreSQL and PGlite. A service is a bare JID (PEP) or a domain (pubsub service).
import { num } from './sql-rows.js';
import type { Db } from './types.js';

export type PubsubConfig = Record<string, string | string[]>;
export interface PubsubNode { service: string; node: string; owner: string; config: PubsubConfig }
export interface PubsubItem { id: string; publisher: string; payload: string; stamp: Date }
export type PubsubSubscriptionState = 'subscribed' | 'pending' | 'unconfigured';
export type PubsubAffiliation = 'owner' | 'publisher' | 'publish-only' | 'member' | 'outcast';

export interface PubsubStore {
  node(service: string, node: string): Promise<PubsubNode | null>;
  nodes(service: string): Promise<PubsubNode[]>;
  /** False when the node exists already. */
  createNode(n: PubsubNode): Promise<boolean>;
  configure(service: string, node: string, config: PubsubConfig): Promise<void>;
  /** False when there was no such node. Items, subscriptions and affiliations go with it. */
  deleteNode(service: string, node: string): Promise<boolean>;
  /** Stores (or replaces, moving it last) an item and keeps at most `keep` of the newest (null: all). */
  publish(service: string, node: string, item: { id: string; publisher: string; payload: string }, keep: number | null): Promise<void>;
  /** In publish order. With ids: those that exist; with max: the newest max. */
  items(service: string, node: string, opts?: { ids?: string[]; max?: number }): Promise<PubsubItem[]>;
  retract(service: string, node: string, id: string): Promise<boolean>;
  purge(service: string, node: string): Promise<void>;
  /** Keeps only the newest `keep` items (after max_items was lowered). */
  trim(service: string, node: string, keep: number): Promise<void>;
  subscriptions(service: string, node: string): Promise<{ jid: string; state: PubsubSubscriptionState }[]>;
  /** Every subscription of jid (or of every JID on that bare JID) on the service. */
  subscriptionsOf(service: string, jid: string): Promise<{ node: string; jid: string; state: PubsubSubscriptionState }[]>;
  setSubscription(service: string, node: string, jid: string, state: PubsubSubscriptionState | null): Promise<void>;
  affiliations(service: string, node: string): Promise<{ jid: string; affiliation: PubsubAffiliation }[]>;
  affiliationsOf(service: string, jid: string): Promise<{ node: string; affiliation: PubsubAffiliation }[]>;
  setAffiliation(service: string, node: string, jid: string, affiliation: PubsubAffiliation | null): Promise<void>;
  /** Every node of a service (an account being deleted). */
  deleteService(service: string): Promise<void>;
}

interface NodeRow { service: string; node: string; owner: string; config: unknown }

function toNode(r: NodeRow): PubsubNode {
  const config = typeof r.config === 'string' ? JSON.parse(r.config) as PubsubConfig : (r.config as PubsubConfig ?? {});
  return { service: r.service, node: r.node, owner: r.owner, config };
}

export function createPubsubStore(db: Db): PubsubStore {
  /** A per-(node, JID) row of one of the two tables keyed so: stored, replaced, or deleted for null. */
  async function setOrDelete(
    table: 'pubsub_subscriptions' | 'pubsub_affiliations', column: 'state' | 'affiliation',
    service: string, node: string, jid: string, value: string | null,
  ): Promise<void> {
    if (value === null) {
      await db.query(`DELETE FROM ${table} WHERE service = $1 AND node = $2 AND jid = $3`, [service, node, jid]);
      return;
    }
    await db.query(
      `INSERT INTO ${table} (service, node, jid, ${column}) VALUES ($1, $2, $3, $4)
       ON CONFLICT (service, node, jid) DO UPDATE SET ${column} = EXCLUDED.${column}`,
      [service, node, jid, value],
    );
  }

  const trim = async (q: Db['query'], service: string, node: string, keep: number): Promise<void> => {
    await q(
      `DELETE FROM pubsub_items WHERE service = $1 AND node = $2 AND seq NOT IN
         (SELECT seq FROM pubsub_items WHERE service = $1 AND node = $2 ORDER BY seq DESC LIMIT $3)`,
      [service, node, keep],
    );
  };
  return {
    async node(service, node) {
      const [r] = await db.query<NodeRow>('SELECT service, node, owner, config FROM pubsub_nodes WHERE service = $1 AND node = $2', [service, node]);
      return r ? toNode(r) : null;
    },
    async nodes(service) {
      const rows = await db.query<NodeRow>('SELECT service, node, owner, config FROM pubsub_nodes WHERE service = $1 ORDER BY node', [service]);
      return rows.map(toNode);
    },
    async createNode(n) {
      const rows = await db.query(
        `INSERT INTO pubsub_nodes (service, node, owner, config) VALUES ($1, $2, $3, $4::jsonb)
         ON CONFLICT (service, node) DO NOTHING RETURNING node`,
        [n.service, n.node, n.owner, JSON.stringify(n.config)],
      );
      return rows.length === 1;
    },
    async configure(service, node, config) {
      await db.query('UPDATE pubsub_nodes SET config = $3::jsonb WHERE service = $1 AND node = $2', [service, node, JSON.stringify(config)]);
    },
    async deleteNode(service, node) {
      const rows = await db.query('DELETE FROM pubsub_nodes WHERE service = $1 AND node = $2 RETURNING node', [service, node]);
      return rows.length === 1;
    },
    async publish(service, node, item, keep) {
      await db.transaction(async (tx) => {
        await tx.query(
          `INSERT INTO pubsub_items (service, node, id, publisher, payload) VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (service, node, id) DO UPDATE SET publisher = EXCLUDED.publisher, payload = EXCLUDED.payload,
             stamp = now(), seq = nextval('pubsub_item_seq')`,
          [service, node, item.id, item.publisher, item.payload],
        );
        if (keep !== null) await trim(tx.query.bind(tx), service, node, keep);
      });
    },
    async items(service, node, opts = {}) {
      let rows: { id: string; publisher: string; payload: string; stamp: Date; seq: unknown }[];
      if (opts.ids) {
        rows = await db.query(
          'SELECT id, publisher, payload, stamp, seq FROM pubsub_items WHERE service = $1 AND node = $2 AND id = ANY($3::text[]) ORDER BY seq',
          [service, node, opts.ids],
        );
      } else if (opts.max !== undefined) {
        rows = await db.query(
          'SELECT id, publisher, payload, stamp, seq FROM pubsub_items WHERE service = $1 AND node = $2 ORDER BY seq DESC LIMIT $3',
          [service, node, opts.max],
        );
        rows.sort((a, b) => num(a.seq) - num(b.seq));
      } else {
        rows = await db.query('SELECT id, publisher, payload, stamp, seq FROM pubsub_items WHERE service = $1 AND node = $2 ORDER BY seq', [service, node]);
      }
      return rows.map((r) => ({ id: r.id, publisher: r.publisher, payload: r.payload, stamp: new Date(r.stamp) }));
    },
    async retract(service, node, id) {
      const rows = await db.query('DELETE FROM pubsub_items WHERE service = $1 AND node = $2 AND id = $3 RETURNING id', [service, node, id]);
      return rows.length === 1;
    },
    async purge(service, node) {
      await db.query('DELETE FROM pubsub_items WHERE service = $1 AND node = $2', [service, node]);
    },
    async trim(service, node, keep) {
      await trim(db.query.bind(db), service, node, keep);
    },
    async subscriptions(service, node) {
      return db.query('SELECT jid, state FROM pubsub_subscriptions WHERE service = $1 AND node = $2 ORDER BY jid', [service, node]);
    },
    async subscriptionsOf(service, jid) {
      return db.query(
        `SELECT node, jid, state FROM pubsub_subscriptions WHERE service = $1 AND (jid = $2 OR jid LIKE $3) ORDER BY node, jid`,
        [service, jid, `${jid.replace(/[\\%_]/g, (c) => `\\${c}`)}/%`],
      );
    },
    async setSubscription(service, node, jid, state) {
      await setOrDelete('pubsub_subscriptions', 'state', service, node, jid, state);
    },
    async affiliations(service, node) {
      return db.query('SELECT jid, affiliation FROM pubsub_affiliations WHERE service = $1 AND node = $2 ORDER BY jid', [service, node]);
    },
    async affiliationsOf(service, jid) {
      return db.query('SELECT node, affiliation FROM pubsub_affiliations WHERE service = $1 AND jid = $2 ORDER BY node', [service, jid]);
    },
    async setAffiliation(service, node, jid, affiliation) {
      await setOrDelete('pubsub_affiliations', 'affiliation', service, node, jid, affiliation);
    },
    async deleteService(service) {
      await db.query('DELETE FROM pubsub_nodes WHERE service = $1', [service]);
    },
  };
}
