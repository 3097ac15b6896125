// Uploaded files' rows in SQL that runs unchanged on PostgreSQL and PGlite: slots, quotas, the
// stored state (with its compliance event in the same transaction) and the expiry job's queries.
import { complianceInsert } from './sql-compliance.js';
import { num } from './sql-rows.js';
import { archiveKeys } from './archive-keys.js';
import type { Db, UploadFile, UploadStore } from './types.js';

interface Row {
  id: string; token: string; put_token: string; owner: string; room: string | null; name: string; content_type: string;
  size: unknown; state: string; created_at: Date; stored_at: Date | null; expires_at: Date; referenced: boolean;
}

const COLUMNS = 'id, token, put_token, owner, room, name, content_type, size, state, created_at, stored_at, expires_at, referenced';

function toFile(r: Row): UploadFile {
  return {
    id: r.id, token: r.token, putToken: r.put_token, owner: r.owner, room: r.room, name: r.name, contentType: r.content_type,
    size: num(r.size), state: r.state as UploadFile['state'], createdAt: new Date(r.created_at),
    storedAt: r.stored_at === null ? null : new Date(r.stored_at), expiresAt: new Date(r.expires_at), referenced: r.referenced,
  };
}

// Serialises reservations, so two slots racing cannot both fit under a quota only one fits in.
const RESERVE_LOCK = 7_065_726_369;

/** Bytes that count against a quota: stored files and pending slots that have not lapsed. */
const LIVE = `(state = 'stored' OR expires_at > now())`;

/** LIKE's wildcards taken literally. */
const likeLiteral = (s: string): string => s.replace(/[\\%_]/g, (c) => `\\${c}`);

export function createUploadStore(db: Db): UploadStore {
  return {
    async reserve(f, quotas) {
      return db.transaction(async (tx) => {
        await tx.query('SELECT pg_advisory_xact_lock($1)', [RESERVE_LOCK]);
        const scopes: ['user' | 'service', number | null, string, unknown[]][] = [
          ['user', quotas.user, `owner = $1 AND ${LIVE}`, [f.owner]],
          ['service', quotas.service, LIVE, []],
        ];
        for (const [quota, limit, where, params] of scopes) {
          if (limit === null) continue;
          const [row] = await tx.query<{ used: unknown; retry: Date | null }>(
            `SELECT coalesce(sum(size), 0) AS used, min(expires_at) FILTER (WHERE state = 'pending') AS retry FROM upload_files WHERE ${where}`,
            params,
          );
          const used = num(row!.used);
          if (used + f.size > limit) return { ok: false as const, quota, used, retryAt: row!.retry ? new Date(row!.retry) : null };
        }
        await tx.query(
          `INSERT INTO upload_files (id, token, put_token, owner, room, name, content_type, size, state, expires_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9)`,
          [f.id, f.token, f.putToken, f.owner, f.room, f.name, f.contentType, f.size, f.expiresAt.toISOString()],
        );
        return { ok: true as const };
      });
    },

    async get(id) {
      const rows = await db.query<Row>(`SELECT ${COLUMNS} FROM upload_files WHERE id = $1`, [id]);
      return rows[0] ? toFile(rows[0]) : null;
    },

    async markStored(id, compliance) {
      return db.transaction(async (tx) => {
        const rows = await tx.query(
          `UPDATE upload_files SET state = 'stored', stored_at = now() WHERE id = $1 AND state = 'pending' RETURNING id`, [id]);
        if (rows.length === 0) return false;
        if (compliance.length > 0) {
          const { sql, params } = complianceInsert(compliance, 1);
          await tx.query(sql, params);
        }
        return true;
      });
    },

    async list(filter, limit) {
      const where: string[] = [];
      const params: unknown[] = [];
      if (filter.owner !== undefined) { params.push(filter.owner); where.push(`owner = $${params.length}`); }
      if (filter.room !== undefined) { params.push(filter.room); where.push(`room = $${params.length}`); }
      if (filter.state !== undefined) { params.push(filter.state); where.push(`state = $${params.length}`); }
      params.push(limit);
      const rows = await db.query<Row>(
        `SELECT ${COLUMNS} FROM upload_files ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
          ORDER BY created_at DESC, id LIMIT $${params.length}`, params);
      return rows.map(toFile);
    },

    async usage(limit) {
      const rows = await db.query<{ owner: string; files: unknown; bytes: unknown; pending: unknown }>(
        `SELECT owner, count(*) FILTER (WHERE state = 'stored') AS files,
            coalesce(sum(size) FILTER (WHERE state = 'stored'), 0) AS bytes,
            count(*) FILTER (WHERE state = 'pending') AS pending
          FROM upload_files GROUP BY owner ORDER BY bytes DESC, owner LIMIT $1`, [limit]);
      return rows.map((r) => ({ owner: r.owner, files: num(r.files), bytes: num(r.bytes), pending: num(r.pending) }));
    },

    async totals() {
      const [r] = await db.query<{ files: unknown; bytes: unknown; pending: unknown }>(
        `SELECT count(*) FILTER (WHERE state = 'stored') AS files,
            coalesce(sum(size) FILTER (WHERE state = 'stored'), 0) AS bytes,
            count(*) FILTER (WHERE state = 'pending') AS pending FROM upload_files`);
      return { files: num(r!.files), bytes: num(r!.bytes), pending: num(r!.pending) };
    },

    async delete(id) {
      const rows = await db.query<Row>(`DELETE FROM upload_files WHERE id = $1 RETURNING ${COLUMNS}`, [id]);
      return rows[0] ? toFile(rows[0]) : null;
    },

    async lapsed(before, limit) {
      const rows = await db.query<Row>(
        `SELECT ${COLUMNS} FROM upload_files WHERE state = 'pending' AND expires_at < $1 ORDER BY expires_at LIMIT $2`,
        [before.toISOString(), limit]);
      return rows.map(toFile);
    },

    async unreferenced(storedBefore, limit) {
      const rows = await db.query<Row>(
        `SELECT ${COLUMNS} FROM upload_files WHERE state = 'stored' AND NOT referenced AND stored_at < $1 ORDER BY stored_at LIMIT $2`,
        [storedBefore.toISOString(), limit]);
      return rows.map(toFile);
    },

    async markReferenced(ids) {
      if (ids.length === 0) return;
      await db.query('UPDATE upload_files SET referenced = true WHERE id = ANY($1::text[])', [ids]);
    },

    async mentionedIn(archive, text) {
      // The archive's index narrows to one archive (by key where keyed); the LIKE scans only its stanzas.
      const keys = archiveKeys(db);
      const keyed = (await keys.mode()) === 'keyed';
      const rows = await db.query(
        `SELECT 1 FROM archive WHERE ${keyed ? 'akey' : 'archive'} = $1 AND stanza LIKE $2 ESCAPE '\\' LIMIT 1`,
        [keyed ? await keys.key(archive) : archive, `%${likeLiteral(text)}%`]);
      return rows.length > 0;
    },
  };
}
