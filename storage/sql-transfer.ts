// Whole-database reads and idempotent writes for export and import, in SQL that runs unchanged on
// PostgreSQL and PGlite. Reads page by key so that an export never holds a table in memory.
import type { ArchivedMessage, Db, InvitationRecord, TransferStore } from './types.js';
import { C, credentialParams, num, toUserRecord, type UserRow } from './sql-rows.js';
import type { PubsubConfig, PubsubItem, PubsubNode } from './sql-pubsub.js';
import { ensureArchivePartitions, partitionStart } from './archive-partitions.js';
import { archiveKeys } from './archive-keys.js';

interface MessageRow {
  id: unknown; archive: string; stanza_id: string; stamp: Date; from_jid: string;
  real_jid: string | null; body: string | null; stanza: string; retracted: boolean;
}

const toMessage = (r: MessageRow): ArchivedMessage => ({
  id: num(r.id), archive: r.archive, stanzaId: r.stanza_id, stamp: new Date(r.stamp), fromJid: r.from_jid,
  realJid: r.real_jid, body: r.body, stanza: r.stanza, retracted: r.retracted,
});

export function createTransferStore(db: Db): TransferStore {
  /** The oldest quarter restoreMessages has made the archive's partitions from (ms); null before the first. */
  let partitionedFrom: number | null = null;
  return {
    async users(after, limit) {
      const rows = await db.query<UserRow>(
        `SELECT * FROM users WHERE $1::text IS NULL OR username ${C} > $1::text ORDER BY username ${C} LIMIT $2`,
        [after, limit],
      );
      return rows.map(toUserRecord);
    },

    async putUser(rec) {
      await db.query(
        `INSERT INTO users (username, sha1_salt, sha1_iterations, sha1_stored_key, sha1_server_key,
           sha256_salt, sha256_iterations, sha256_stored_key, sha256_server_key, disabled, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (username) DO UPDATE SET sha1_salt = EXCLUDED.sha1_salt, sha1_iterations = EXCLUDED.sha1_iterations,
           sha1_stored_key = EXCLUDED.sha1_stored_key, sha1_server_key = EXCLUDED.sha1_server_key,
           sha256_salt = EXCLUDED.sha256_salt, sha256_iterations = EXCLUDED.sha256_iterations,
           sha256_stored_key = EXCLUDED.sha256_stored_key, sha256_server_key = EXCLUDED.sha256_server_key,
           disabled = EXCLUDED.disabled, created_at = EXCLUDED.created_at`,
        [rec.username, ...credentialParams(rec.credentials), rec.disabled, rec.createdAt.toISOString()],
      );
    },

    async userData(username) {
      return db.query<{ kind: string; key: string; value: string }>(
        `SELECT kind, key, value FROM user_data WHERE username = $1 ORDER BY kind ${C}, key ${C}`,
        [username],
      );
    },

    async offline(username) {
      const rows = await db.query<{ stanza: string; stamp: Date }>(
        'SELECT stanza, stamp FROM offline_messages WHERE username = $1 ORDER BY id',
        [username],
      );
      return rows.map((r) => ({ stanza: r.stanza, stamp: new Date(r.stamp) }));
    },

    // Times travel with millisecond precision (JavaScript's): stored ones are compared at that precision.
    async restoreOffline(username, messages) {
      if (messages.length === 0) return 0;
      const rows = await db.query(
        `INSERT INTO offline_messages (username, stanza, stamp)
         SELECT $1, x, t FROM unnest($2::text[], $3::timestamptz[]) WITH ORDINALITY AS m(x, t, i)
          WHERE NOT EXISTS (SELECT 1 FROM offline_messages o WHERE o.username = $1 AND o.stanza = m.x AND date_trunc('milliseconds', o.stamp) = m.t)
          ORDER BY i
         RETURNING id`,
        [username, messages.map((m) => m.stanza), messages.map((m) => m.stamp.toISOString())],
      );
      return rows.length;
    },

    async userOrgUnits() {
      return db.query<{ user: string; path: string }>(`SELECT user_jid AS "user", path FROM user_org_units ORDER BY user_jid`);
    },

    async invitations(afterId, limit) {
      const rows = await db.query<{ id: unknown; user_jid: string; service: string; room: string; inviter: string; at: Date }>(
        'SELECT id, user_jid, service, room, inviter, at FROM chat_invitations WHERE id > $1 ORDER BY id LIMIT $2',
        [afterId, limit],
      );
      return rows.map((r): InvitationRecord => ({ id: num(r.id), user: r.user_jid, service: r.service, room: r.room, inviter: r.inviter, at: new Date(r.at) }));
    },

    async restoreInvitations(items) {
      if (items.length === 0) return 0;
      const rows = await db.query(
        `INSERT INTO chat_invitations (user_jid, service, room, inviter, at)
         SELECT u, s, r, f, t FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[]) WITH ORDINALITY AS n(u, s, r, f, t, i)
          WHERE NOT EXISTS (SELECT 1 FROM chat_invitations c WHERE c.user_jid = n.u AND c.service = n.s AND c.room = n.r AND c.inviter = n.f AND date_trunc('milliseconds', c.at) = n.t)
          ORDER BY i
         RETURNING id`,
        [items.map((x) => x.user), items.map((x) => x.service), items.map((x) => x.room), items.map((x) => x.inviter), items.map((x) => x.at.toISOString())],
      );
      return rows.length;
    },

    async messages(opts) {
      const params: unknown[] = [opts.afterId, opts.limit];
      const where = ['id > $1'];
      if (opts.since) { params.push(opts.since.toISOString()); where.push(`stamp >= $${params.length}::timestamptz`); }
      if (opts.archives) { params.push(opts.archives); where.push(`archive = ANY($${params.length}::text[])`); }
      if (opts.domains) { params.push(opts.domains); where.push(`split_part(archive, '@', 2) = ANY($${params.length}::text[])`); }
      const rows = await db.query<MessageRow>(
        `SELECT id, archive, stanza_id, stamp, from_jid, real_jid, body, stanza, retracted FROM archive
          WHERE ${where.join(' AND ')} ORDER BY id LIMIT $2`,
        params,
      );
      return rows.map(toMessage);
    },

    async existingMessages(keys) {
      if (keys.length === 0) return new Set();
      // By key where the indexes lead with keys (storage/archive-keys.ts).
      const keyed = (await archiveKeys(db).mode()) === 'keyed';
      const rows = await db.query<{ archive: string; stanza_id: string }>(
        `SELECT a.archive, a.stanza_id FROM unnest($1::text[], $2::text[]) AS k(a, s)
           ${keyed ? 'JOIN archive_keys ak ON ak.archive = k.a JOIN archive a ON a.akey = ak.key' : 'JOIN archive a ON a.archive = k.a'} AND a.stanza_id = k.s`,
        [keys.map((k) => k.archive), keys.map((k) => k.stanzaId)],
      );
      return new Set(rows.map((r) => `${r.archive} ${r.stanza_id}`));
    },

    async restoreMessages(entries) {
      if (entries.length === 0) return 0;
      // History older than the archive's partitions would land in the default one, for the next start to
      // move in one transaction (minutes for millions of rows, the server not listening meanwhile): the
      // quarters it needs are made first, once per older quarter met.
      let oldest = Infinity;
      for (const e of entries) oldest = Math.min(oldest, e.stamp.getTime());
      const quarter = partitionStart(new Date(oldest)).getTime();
      if (partitionedFrom === null || quarter < partitionedFrom) {
        await ensureArchivePartitions(db, { from: new Date(oldest) });
        partitionedFrom = quarter;
      }
      const rows = await db.query(
        `INSERT INTO archive (archive, stanza_id, stamp, from_jid, real_jid, body, stanza, retracted)
         SELECT a, s, t, f, r, b, x, d
         FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[], $8::boolean[])
           WITH ORDINALITY AS e(a, s, t, f, r, b, x, d, i)
         ORDER BY i
         ON CONFLICT DO NOTHING
         RETURNING id`,
        [
          entries.map((e) => e.archive), entries.map((e) => e.stanzaId), entries.map((e) => e.stamp.toISOString()),
          entries.map((e) => e.fromJid), entries.map((e) => e.realJid), entries.map((e) => e.body),
          entries.map((e) => e.stanza), entries.map((e) => e.retracted),
        ],
      );
      return rows.length;
    },
  };
}

/** A pubsub node as exported and imported: the stored node and when it was created. */
export interface TransferPubsubNode extends PubsubNode { createdAt: Date }

/** Whole-service reads and idempotent writes of the pubsub tables (migration 8) for export and import. */
export interface PubsubTransfer {
  /** Nodes of every service ordered by service then node (byte order), after the given pair. */
  nodes(after: { service: string; node: string } | null, limit: number): Promise<TransferPubsubNode[]>;
  node(service: string, node: string): Promise<TransferPubsubNode | null>;
  /** Inserts or replaces a node's owner, configuration and creation time; its items and lists stay. */
  putNode(n: TransferPubsubNode): Promise<void>;
  /** Every item of a node in publish order (a node keeps at most 256). */
  items(service: string, node: string): Promise<PubsubItem[]>;
  /**
   * Stores an item with its publisher and stamp: a new id goes last (publish order), an existing one
   * is replaced where it stands.
   */
  putItem(service: string, node: string, item: PubsubItem): Promise<void>;
}

export function createPubsubTransfer(db: Db): PubsubTransfer {
  const toNode = (r: { service: string; node: string; owner: string; config: unknown; created_at: Date }): TransferPubsubNode => ({
    service: r.service, node: r.node, owner: r.owner, createdAt: new Date(r.created_at),
    config: typeof r.config === 'string' ? JSON.parse(r.config) as PubsubConfig : (r.config as PubsubConfig ?? {}),
  });
  type Row = Parameters<typeof toNode>[0];
  return {
    async nodes(after, limit) {
      const rows = await db.query<Row>(
        `SELECT service, node, owner, config, created_at FROM pubsub_nodes
          WHERE $1::text IS NULL OR (service, node) > ($1::text, $2::text) ORDER BY service, node LIMIT $3`,
        [after?.service ?? null, after?.node ?? null, limit],
      );
      return rows.map(toNode);
    },
    async node(service, node) {
      const [r] = await db.query<Row>('SELECT service, node, owner, config, created_at FROM pubsub_nodes WHERE service = $1 AND node = $2', [service, node]);
      return r ? toNode(r) : null;
    },
    async putNode(n) {
      await db.query(
        `INSERT INTO pubsub_nodes (service, node, owner, config, created_at) VALUES ($1, $2, $3, $4::jsonb, $5)
         ON CONFLICT (service, node) DO UPDATE SET owner = EXCLUDED.owner, config = EXCLUDED.config, created_at = EXCLUDED.created_at`,
        [n.service, n.node, n.owner, JSON.stringify(n.config), n.createdAt.toISOString()],
      );
    },
    async items(service, node) {
      const rows = await db.query<{ id: string; publisher: string; payload: string; stamp: Date }>(
        'SELECT id, publisher, payload, stamp FROM pubsub_items WHERE service = $1 AND node = $2 ORDER BY seq',
        [service, node],
      );
      return rows.map((r) => ({ id: r.id, publisher: r.publisher, payload: r.payload, stamp: new Date(r.stamp) }));
    },
    async putItem(service, node, item) {
      await db.query(
        `INSERT INTO pubsub_items (service, node, id, publisher, payload, stamp) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (service, node, id) DO UPDATE SET publisher = EXCLUDED.publisher, payload = EXCLUDED.payload, stamp = EXCLUDED.stamp`,
        [service, node, item.id, item.publisher, item.payload, item.stamp.toISOString()],
      );
    },
  };
}
