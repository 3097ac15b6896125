// The compliance capture's tables in SQL that runs unchanged on PostgreSQL and PGlite: the append-only
// event table, the one-row state (configuration and the exporter's lease) and the export runs.
import { num } from './sql-rows.js';
import {
  DEFAULT_COMPLIANCE_CONFIG,
  type ComplianceConfig, type ComplianceEvent, type ComplianceRecord, type ComplianceRun, type ComplianceStore, type Db,
} from './types.js';

/**
 * The INSERT of a batch of events, numbering its parameters from first: a statement of its own, or a
 * data-modifying CTE inside the archive's append so that both commit together.
 */
export function complianceInsert(events: ComplianceEvent[], first: number): { sql: string; params: unknown[] } {
  const p = (i: number): string => `$${first + i}`;
  return {
    sql: `INSERT INTO compliance_events (stamp, kind, room, actor, nick, content, message_id, detail)
      SELECT t, k, r, a, n, c, m, d::jsonb
      FROM unnest(${p(0)}::timestamptz[], ${p(1)}::text[], ${p(2)}::text[], ${p(3)}::text[], ${p(4)}::text[], ${p(5)}::text[], ${p(6)}::text[], ${p(7)}::text[])
        WITH ORDINALITY AS e(t, k, r, a, n, c, m, d, i)
      ORDER BY i`,
    params: [
      events.map((e) => e.stamp.toISOString()),
      events.map((e) => e.kind),
      events.map((e) => e.room),
      events.map((e) => e.actor),
      events.map((e) => e.nick),
      events.map((e) => e.content),
      events.map((e) => e.messageId),
      events.map((e) => (e.detail === null ? null : JSON.stringify(e.detail))),
    ],
  };
}

interface EventRow {
  id: unknown; stamp: Date; kind: string; room: string | null; actor: string; nick: string | null;
  content: string; message_id: string | null; detail: unknown;
}
interface RunRow {
  id: unknown; node: string; from_id: unknown; to_id: unknown; started_at: Date; finished_at: Date | null;
  events: unknown; files: unknown; present: unknown; error: string | null;
}

const json = (v: unknown): unknown => (typeof v === 'string' ? JSON.parse(v) : v);

function toRecord(r: EventRow): ComplianceRecord {
  return {
    id: num(r.id), stamp: new Date(r.stamp), kind: r.kind as ComplianceRecord['kind'], room: r.room, actor: r.actor,
    nick: r.nick, content: r.content, messageId: r.message_id, detail: (json(r.detail) as Record<string, unknown> | null) ?? null,
  };
}

function toRun(r: RunRow): ComplianceRun {
  return {
    id: num(r.id), node: r.node, fromId: num(r.from_id), toId: num(r.to_id), startedAt: new Date(r.started_at),
    finishedAt: r.finished_at === null ? null : new Date(r.finished_at), events: num(r.events),
    files: (json(r.files) as string[]) ?? [], present: (json(r.present) as ComplianceRun['present']) ?? {}, error: r.error,
  };
}

const RUN_COLUMNS = 'id, node, from_id, to_id, started_at, finished_at, events, files, present, error';

export function createComplianceStore(db: Db): ComplianceStore {
  return {
    async append(events) {
      if (events.length === 0) return;
      const { sql, params } = complianceInsert(events, 1);
      await db.query(sql, params);
    },

    async read(after, upTo, limit) {
      const rows = await db.query<EventRow>(
        `SELECT id, stamp, kind, room, actor, nick, content, message_id, detail FROM compliance_events
          WHERE id > $1 AND id <= $2 ORDER BY id LIMIT $3`,
        [after, upTo, limit],
      );
      return rows.map(toRecord);
    },

    async count() {
      const rows = await db.query<{ n: unknown }>('SELECT count(*) AS n FROM compliance_events');
      return num(rows[0]?.n ?? 0);
    },

    async getConfig() {
      const rows = await db.query<{ config: unknown }>('SELECT config FROM compliance_state WHERE id = 1');
      return { ...DEFAULT_COMPLIANCE_CONFIG, ...((json(rows[0]?.config) as Partial<ComplianceConfig> | undefined) ?? {}) };
    },

    async setConfig(config) {
      await db.query('UPDATE compliance_state SET config = $1::jsonb WHERE id = 1', [JSON.stringify(config)]);
    },

    async claimLease(holder, ttlMs) {
      const rows = await db.query(
        `UPDATE compliance_state SET lease_holder = $1, lease_expires = now() + make_interval(secs => $2::float8 / 1000)
          WHERE id = 1 AND (lease_holder IS NULL OR lease_holder = $1 OR lease_expires < now()) RETURNING 1`,
        [holder, ttlMs],
      );
      return rows.length > 0;
    },

    async releaseLease(holder) {
      await db.query('UPDATE compliance_state SET lease_holder = NULL, lease_expires = NULL WHERE id = 1 AND lease_holder = $1', [holder]);
    },

    async leaseHolder() {
      const rows = await db.query<{ lease_holder: string | null; lease_expires: Date | null }>(
        'SELECT lease_holder, lease_expires FROM compliance_state WHERE id = 1 AND lease_holder IS NOT NULL AND lease_expires >= now()',
      );
      const r = rows[0];
      return r && r.lease_holder !== null && r.lease_expires !== null ? { holder: r.lease_holder, expires: new Date(r.lease_expires) } : null;
    },

    async lastRunAt() {
      const rows = await db.query<{ last_run_at: Date | null }>('SELECT last_run_at FROM compliance_state WHERE id = 1');
      const at = rows[0]?.last_run_at ?? null;
      return at === null ? null : new Date(at);
    },

    async unfinishedRun() {
      const rows = await db.query<RunRow>(`SELECT ${RUN_COLUMNS} FROM compliance_runs WHERE finished_at IS NULL ORDER BY id LIMIT 1`);
      return rows[0] ? toRun(rows[0]) : null;
    },

    async openRun(node) {
      return db.transaction(async (tx) => {
        // EXCLUSIVE waits for every insert in flight (they hold ROW EXCLUSIVE from before they take an
        // id), so every id up to max(id) is committed or gone: the run's range is fixed for good.
        await tx.query('LOCK TABLE compliance_events IN EXCLUSIVE MODE');
        const last = await tx.query<{ to_id: unknown }>('SELECT coalesce(max(to_id), 0) AS to_id FROM compliance_runs');
        const from = num(last[0]?.to_id ?? 0);
        const top = await tx.query<{ id: unknown }>('SELECT max(id) AS id FROM compliance_events WHERE id > $1', [from]);
        if (top[0]?.id === null || top[0]?.id === undefined) return null;
        const rows = await tx.query<RunRow>(
          `INSERT INTO compliance_runs (node, from_id, to_id) VALUES ($1, $2, $3) RETURNING ${RUN_COLUMNS}`,
          [node, from, num(top[0].id)],
        );
        return toRun(rows[0]!);
      });
    },

    async planRunFiles(runId, paths) {
      await db.query('UPDATE compliance_runs SET files = $2::jsonb WHERE id = $1 AND finished_at IS NULL', [runId, JSON.stringify(paths)]);
    },

    async finishRun(runId, files, events, present) {
      await db.transaction(async (tx) => {
        const runs = await tx.query<RunRow>(`SELECT ${RUN_COLUMNS} FROM compliance_runs WHERE id = $1 FOR UPDATE`, [runId]);
        const run = runs[0];
        if (!run || run.finished_at !== null) return;
        await tx.query('DELETE FROM compliance_events WHERE id > $1 AND id <= $2', [num(run.from_id), num(run.to_id)]);
        await tx.query(
          'UPDATE compliance_runs SET finished_at = now(), files = $2::jsonb, events = $3, present = $4::jsonb WHERE id = $1',
          [runId, JSON.stringify(files), events, JSON.stringify(present)],
        );
        await tx.query('UPDATE compliance_state SET last_run_at = now() WHERE id = 1');
      });
    },

    async lastFinishedRun() {
      const rows = await db.query<RunRow>(`SELECT ${RUN_COLUMNS} FROM compliance_runs WHERE finished_at IS NOT NULL ORDER BY id DESC LIMIT 1`);
      return rows[0] ? toRun(rows[0]) : null;
    },

    async touchLastRun() {
      await db.query('UPDATE compliance_state SET last_run_at = now() WHERE id = 1');
    },

    async runs(limit) {
      const rows = await db.query<RunRow>(`SELECT ${RUN_COLUMNS} FROM compliance_runs ORDER BY id DESC LIMIT $1`, [limit]);
      return rows.map(toRun);
    },
  };
}
