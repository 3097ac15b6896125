// The message archive in SQL that runs unchanged on PostgreSQL and PGlite: appends in one statement
// per batch, XEP-0313 queries with bounded counts, the search across archives, the one text condition
// that search and the administrator's remove-messages share, and the administrator's clear and rewrite.
import { num } from './sql-rows.js';
import { ROOM_ROW } from './archive-partitions.js';
import { archiveKeys, type ArchiveKeys } from './archive-keys.js';
import { complianceInsert } from './sql-compliance.js';
import type {
  ArchiveEntry, ArchiveMatch, ArchivedMessage, ArchiveQueryResult, ArchiveSearch, ArchiveStore, ComplianceEvent, Db,
} from './types.js';

interface ArchiveRow {
  id: unknown;
  archive: string;
  stanza_id: string;
  stamp: Date;
  from_jid: string;
  real_jid: string | null;
  body: string | null;
  stanza: string;
  retracted: boolean;
}

const ARCHIVE_COLUMNS = 'id, archive, stanza_id, stamp, from_jid, real_jid, body, stanza, retracted';

function toArchived(r: ArchiveRow): ArchivedMessage {
  return {
    id: num(r.id),
    archive: r.archive,
    stanzaId: r.stanza_id,
    stamp: new Date(r.stamp),
    fromJid: r.from_jid,
    realJid: r.real_jid,
    body: r.body,
    stanza: r.stanza,
    retracted: r.retracted,
  };
}


/**
 * The append's columns each as one text: every value after a U+0001, U+0002 standing for null (split
 * by string_to_array, the empty first element dropped, so that one empty value stays one). XML 1.0
 * forbids both characters in a document, so no JID, id, stanza or body the server parsed holds them;
 * null when a value holds a U+0001 or is a lone U+0002 all the same (the caller sends arrays then:
 * string_to_array reads null only for a whole value equal to U+0002, so one holding it among other
 * characters packs as it is, and each value is scanned once). Against text[] parameters:
 * no quoting and escaping of each value by the driver (a quarter of the statement's cost in this
 * process) and a split instead of PostgreSQL's array parser (bench/archive-instructions.mjs).
 */
export function packColumns(columns: readonly (readonly (string | number | null)[])[]): string[] | null {
  const out = new Array<string>(columns.length);
  for (let c = 0; c < columns.length; c++) {
    const values = columns[c]!;
    let nulls = false;
    for (const v of values) {
      if (v === null) nulls = true;
      else if (typeof v === 'string' && (v.includes('\u0001') || v === '\u0002')) return null;
    }
    // One join per column: the text is built once, not value by value.
    out[c] = values.length === 0 ? '' : '\u0001' + (nulls ? values.map((v) => v ?? '\u0002') : values).join('\u0001');
  }
  return out;
}

/**
 * Rows up to which an append is a VALUES list rather than unnested columns (smallAppend). PostgreSQL's
 * instructions per message, VALUES ÷ unnest: one-to-one messages one a statement 0.77×, two 0.90×,
 * three 0.96×, four 0.99× (bench/archive-instructions.mjs --messages N).
 */
const SMALL_BATCH_ROWS = 6;

/** Rows counted at most for a filtered result set's <count/> and a page's index. */
const COUNT_BOUND = 2_000;
/**
 * The same for searches (our match and authors filters, and every search across archives): counting
 * visits each matching row's heap page, and 2,000 rows scattered over a large table cost 100-300 ms.
 */
const SEARCH_COUNT_BOUND = 200;

export function createArchiveStore(db: Db, fulltextLanguage: string): ArchiveStore {
  const keys = archiveKeys(db);
  /**
   * The condition naming one archive as $1, and $1's value: its key where the indexes lead with keys,
   * else its JID (storage/archive-keys.ts).
   */
  async function named(archive: string): Promise<{ cond: string; value: string | number; jid: string }> {
    return (await keys.mode()) === 'keyed'
      ? { cond: 'akey = $1', value: await keys.key(archive), jid: '(SELECT archive FROM archive_keys WHERE key = $1)' }
      : { cond: 'archive = $1', value: archive, jid: '$1' };
  }

  /** Row ids of the named stanza ids of one archive; absent ids are left out. */
  async function rowIds(archive: string, stanzaIds: string[]): Promise<Map<string, number>> {
    if (stanzaIds.length === 0) return new Map();
    const n = await named(archive);
    const rows = await db.queryPlannedOnce<{ id: unknown; stanza_id: string }>(
      `SELECT id, stanza_id FROM archive WHERE ${n.cond} AND stanza_id = ANY($2::text[])`,
      [n.value, stanzaIds],
    );
    return new Map(rows.map((r) => [r.stanza_id, num(r.id)]));
  }

  /**
   * The batch's INSERT. Entries in a row with the same stanza and body (a one-to-one message's two
   * copies) send them once: the stanza is most of a row's bytes, and PostgreSQL parses every
   * character of a text[] parameter.
   */
  function appendStatement(
    entries: ArchiveEntry[], compliance: ComplianceEvent[], ids: boolean, akeys: Map<string, number> | null,
  ): { sql: string; params: unknown[] } | null {
    // No entries: the compliance events alone, if any.
    if (entries.length === 0) return compliance.length > 0 ? complianceInsert(compliance, 1) : null;
    const n = entries.length;
    const archives = new Array<string>(n), stanzaIds = new Array<string>(n), stamps = new Array<string>(n);
    const froms = new Array<string>(n), reals = new Array<string | null>(n), payload = new Array<number>(n);
    const keyed = akeys === null ? null : new Array<number>(n);
    const bodies: (string | null)[] = [], stanzas: string[] = [];
    // A busy server stamps many entries of a batch in the same millisecond (a message's two copies,
    // made in one routing pass, nearly always): each run of one instant is formatted once.
    let lastTime = NaN, lastStamp = '';
    for (let i = 0; i < n; i++) {
      const e = entries[i]!;
      archives[i] = e.archive;
      if (keyed) keyed[i] = akeys!.get(e.archive)!;
      stanzaIds[i] = e.stanzaId;
      const time = e.stamp.getTime();
      if (time !== lastTime) {
        lastTime = time;
        lastStamp = e.stamp.toISOString();
      }
      stamps[i] = lastStamp;
      froms[i] = e.fromJid;
      reals[i] = e.realJid;
      const last = stanzas.length - 1;
      if (last < 0 || stanzas[last] !== e.stanza || bodies[last] !== e.body) {
        stanzas.push(e.stanza);
        bodies.push(e.body);
      }
      payload[i] = stanzas.length;
    }
    // Compliance events ride in the same statement as a data-modifying CTE (one commit for both), their
    // parameters after the rows'.
    const withClause = (first: number): { sql: string; params: unknown[] } => {
      if (compliance.length === 0) return { sql: '', params: [] };
      const c = complianceInsert(compliance, first);
      return { sql: `WITH captured AS (${c.sql}) `, params: c.params };
    };
    if (n <= SMALL_BATCH_ROWS) return smallAppend();
    const columns: (string | number | null)[][] = [archives, stanzaIds, stamps, froms, reals, payload, bodies, stanzas];
    if (keyed) columns.push(keyed);
    const c = withClause(columns.length + 1);
    const packed = packColumns(columns);
    // Each column one text parameter split by PostgreSQL (packColumns), or where a value holds a
    // separator (no parsed stanza can), a text[] parameter.
    const col = (i: number, type: string) => (packed ? `(string_to_array($${i}, chr(1), chr(2)))[2:]::${type}[]` : `$${i}::${type}[]`);
    return {
      // WITH ORDINALITY and ORDER BY keep the ids in input order. Each body's words (archive_tsv) are
      // computed once for its copies: OFFSET 0 keeps the planner from pulling the function up into
      // the join, where it would run once per row.
      sql: `${c.sql}INSERT INTO archive (archive, stanza_id, stamp, from_jid, real_jid, body, stanza, tsv${keyed ? ', akey' : ''})
         SELECT e.a, e.s, e.t, e.f, e.r, p.b, p.x, p.v${keyed ? ', e.ak' : ''}
         FROM unnest(${col(1, 'text')}, ${col(2, 'text')}, ${col(3, 'timestamptz')}, ${col(4, 'text')}, ${col(5, 'text')}, ${col(6, 'int')}${keyed ? `, ${col(9, 'int')}` : ''}) WITH ORDINALITY AS e(a, s, t, f, r, k, ${keyed ? 'ak, ' : ''}i)
           JOIN (SELECT b, x, k, archive_tsv(b) AS v FROM unnest(${col(7, 'text')}, ${col(8, 'text')}) WITH ORDINALITY AS q(b, x, k) OFFSET 0) p ON p.k = e.k
         ORDER BY e.i${ids ? '\n         RETURNING id, archive, stanza_id' : ''}`,
      params: [...(packed ?? columns), ...c.params],
    };

    /**
     * A batch of a few rows (what a server that is not busy writes: a message or two a statement) as a
     * VALUES list, each row naming its body by number, each body's words computed once in a one-row
     * subquery (OFFSET 0 keeps them there). PostgreSQL sets up the unnest shape's function scans, join
     * and sort anew for every statement, which in a batch this small cost more than writing its rows
     * (SMALL_BATCH_ROWS). A cross join with a one-row side is a nested loop that reads the list in
     * order, so ids follow it. The text depends on the numbers of rows and of bodies only: each pair is
     * prepared once a connection.
     */
    function smallAppend(): { sql: string; params: unknown[] } {
      const params: unknown[] = [];
      const p = (v: unknown): string => {
        params.push(v);
        return `$${params.length}`;
      };
      const bodyParams = bodies.map((b, j) => ({ body: `${p(b)}::text`, stanza: `${p(stanzas[j])}::text` }));
      const pick = (f: (j: number) => string): string =>
        bodyParams.length === 1 ? f(0) : `CASE x.k ${bodyParams.map((_, j) => `WHEN ${j + 1} THEN ${f(j)}`).join(' ')} END`;
      const rows: string[] = [];
      for (let i = 0; i < n; i++) {
        rows.push(`(${p(archives[i])}::text, ${p(stanzaIds[i])}::text, ${p(stamps[i])}::timestamptz, ${p(froms[i])}::text, ${p(reals[i])}::text, ${p(payload[i])}::int${keyed ? `, ${p(keyed[i])}::int` : ''})`);
      }
      const c = withClause(params.length + 1);
      return {
        sql: `${c.sql}INSERT INTO archive (archive, stanza_id, stamp, from_jid, real_jid, body, stanza, tsv${keyed ? ', akey' : ''})
         SELECT x.a, x.s, x.t, x.f, x.r, ${pick((j) => bodyParams[j]!.body)}, ${pick((j) => bodyParams[j]!.stanza)}, ${pick((j) => `v.t${j + 1}`)}${keyed ? ', x.ak' : ''}
         FROM (SELECT ${bodyParams.map((b, j) => `archive_tsv(${b.body}) AS t${j + 1}`).join(', ')} OFFSET 0) v,
           (VALUES ${rows.join(', ')}) AS x(a, s, t, f, r, k${keyed ? ', ak' : ''})${ids ? '\n         RETURNING id, archive, stanza_id' : ''}`,
        params: [...params, ...c.params],
      };
    }
  }

  return {
    async append(entries, compliance = []) {
      const statement = appendStatement(entries, compliance, true, await entryKeys(keys, entries));
      if (statement === null) return [];
      const rows = await db.query<{ id: unknown; archive: string; stanza_id: string }>(statement.sql, statement.params);
      // A bare JID holds no line break.
      const ids = new Map(rows.map((r) => [`${r.archive}\n${r.stanza_id}`, num(r.id)]));
      return entries.map((e) => {
        const id = ids.get(`${e.archive}\n${e.stanzaId}`);
        if (id === undefined) throw new Error(`archive insert returned no id for ${e.stanzaId}`);
        return { id, stanzaId: e.stanzaId };
      });
    },

    async write(entries, compliance = []) {
      const statement = appendStatement(entries, compliance, false, await entryKeys(keys, entries));
      if (statement !== null) await db.query(statement.sql, statement.params);
    },

    async query(archive, q) {
      const anchors = await rowIds(
        archive,
        [q.afterId, q.beforeId, q.after, typeof q.before === 'string' ? q.before : undefined].filter(
          (v): v is string => v !== undefined,
        ),
      );
      const anchor = (stanzaId: string | undefined): number | null | undefined =>
        stanzaId === undefined ? undefined : (anchors.get(stanzaId) ?? null);
      const afterId = anchor(q.afterId);
      const beforeId = anchor(q.beforeId);
      const after = anchor(q.after);
      const before = anchor(typeof q.before === 'string' ? q.before : undefined);
      if (afterId === null || beforeId === null || after === null || before === null) {
        return { entries: [], complete: true, count: 0, notFound: true };
      }

      const named1 = await named(archive);
      const params: unknown[] = [named1.value];
      const param = (v: unknown): string => {
        params.push(v);
        return `$${params.length}`;
      };
      const where = [named1.cond];
      if (q.start) where.push(`stamp >= ${param(q.start.toISOString())}::timestamptz`);
      if (q.end) where.push(`stamp <= ${param(q.end.toISOString())}::timestamptz`);
      if (q.with?.occupant !== undefined) where.push(withFullJid(archive, q.with.occupant, param));
      if (q.with?.realJid !== undefined) where.push(`real_jid = ${param(q.with.realJid)}`);
      if (afterId !== undefined) where.push(`id > ${param(afterId)}`);
      if (beforeId !== undefined) where.push(`id < ${param(beforeId)}`);
      if (q.ids) where.push(`stanza_id = ANY(${param(q.ids)}::text[])`);
      if (q.fulltext !== undefined) where.push(`tsv @@ plainto_tsquery('${fulltextLanguage}', ${param(q.fulltext)})`);
      if (q.match) where.push(matchCondition(q.match, fulltextLanguage, param));
      if (q.authors) where.push(authorsCondition(q.authors, param));
      const filters = where.join(' AND ');
      const filterParams = [...params];

      // The result set is ordered by id, newest first for searches (text or authors); paging follows that order.
      const newestFirst = q.fulltext !== undefined || q.match !== undefined || q.authors !== undefined;
      const follows = newestFirst ? '<' : '>';
      const precedes = newestFirst ? '>' : '<';
      const cursor: string[] = [];
      if (after !== undefined) cursor.push(`id ${follows} ${param(after)}`);
      if (before !== undefined) cursor.push(`id ${precedes} ${param(before)}`);
      const backwards = q.before !== undefined;
      const descending = newestFirst !== backwards;
      const offset = after === undefined && !backwards && q.index ? ` OFFSET ${param(q.index)}` : '';
      // A search in a date window: the window's rows first (its index), then newest first; in id order
      // from the newest, the planner would read through everything after the window.
      const window = newestFirst && (q.start !== undefined || q.end !== undefined) &&
        (await estimatedRows(db, filters, filterParams)) <= NARROW_TEXT;
      const unfiltered = where.length === 1;
      const textOnly = !unfiltered && !q.start && !q.end && !q.with && !q.authors && afterId === undefined && beforeId === undefined && !q.ids;
      const wide = textOnly && (await isWide(db, [archive]));
      const bound = q.match !== undefined || q.authors !== undefined ? SEARCH_COUNT_BOUND : COUNT_BOUND;
      const resultShape = { limit: q.limit, backwards, cursor: after !== undefined, offsetIndex: offset ? q.index : undefined, bound, unfiltered };

      // A text search's first or last page: one scan for the page and the count. Up to bound + 1
      // matches are read once; when that is all of them, the page is their first ones in the set's
      // order and the count is exact. Reading the full-text index twice (page, then count) cost twice
      // as much at 10 million rows: 20 ms of CPU instead of 11 for a word in 88 rows of a
      // million-message room, 27 instead of 15 for one in 1,000. A common word (over the bound) then
      // runs the page query as before, its count known: 17 ms instead of 11 (an EXPLAIN to tell it in
      // advance cost as much, planning over every partition).
      let overBound = false;
      if ((q.fulltext !== undefined || q.match !== undefined) && !window && !wide && after === undefined && before === undefined && !offset) {
        const rows = await db.query<ArchiveRow & { total: unknown }>(
          `WITH m AS MATERIALIZED (SELECT ${ARCHIVE_COLUMNS} FROM archive WHERE ${filters} LIMIT ${bound + 1})
           SELECT *, (SELECT count(*) FROM m) AS total FROM m ORDER BY id ${descending ? 'DESC' : 'ASC'} LIMIT ${q.limit + 1}`,
          filterParams,
        );
        const total = rows.length === 0 ? 0 : num(rows[0]!.total);
        if (total <= bound) return pageResult(rows, { total, side: 0 }, resultShape);
        overBound = true;
      }

      const pageCond = [filters, ...cursor].join(' AND ');
      // Only the archive and an id range: one plan serves every archive and cursor, planned once.
      const once = !newestFirst && where.every((c, i) => i === 0 || c.startsWith('id '));
      const read = <T>(sql: string, p: unknown[]) => (once ? db.queryPlannedOnce<T>(sql, p) : db.query<T>(sql, p));
      const pageQuery = read<ArchiveRow>(
        `SELECT ${ARCHIVE_COLUMNS} FROM ${window ? `(SELECT * FROM archive WHERE ${pageCond} OFFSET 0) a` : `archive WHERE ${pageCond}`}
         ORDER BY id ${descending ? 'DESC' : 'ASC'} LIMIT ${param(q.limit + 1)}${offset}`,
        params,
      );

      // Counts (XEP-0059 <count/> and <first index/>) without scanning a large archive: the whole
      // archive's size is kept by triggers (archive_size); anything else is counted only up to COUNT_BOUND rows,
      // and left out beyond (XEP-0059 §2.6 allows that when counting would be exceptionally costly).
      // The page's position follows from the cursor, so the count runs beside the page query.
      const countFilters = wide ? unindexed(filters, named1.cond) : filters;
      // Unindexed, the count follows the page's plan (id order, or the full-text index then a sort).
      const bounded = (cond: string) => `(SELECT count(*) FROM (SELECT 1 FROM archive WHERE ${cond}${wide ? ' ORDER BY id DESC' : ''} LIMIT ${bound + 1}) s)`;
      const countParams = [...filterParams];
      const cp = (v: unknown): string => {
        countParams.push(v);
        return `$${countParams.length}`;
      };
      // Rows before an `after` cursor (it included), or from a `before` cursor (it included) to the end.
      let sideCond: string | null = null;
      if (!backwards && after !== undefined) sideCond = `${countFilters} AND id ${newestFirst ? '>=' : '<='} ${cp(after)}`;
      if (backwards && before !== undefined) sideCond = `${countFilters} AND id ${newestFirst ? '<=' : '>='} ${cp(before)}`;
      // Over the bound already (the one scan above): no count to make, and no cursor to count from.
      const countQuery = overBound ? Promise.resolve([{ total: bound + 1, side: 0 }]) : read<{ total: unknown; side: unknown }>(
        `SELECT ${unfiltered ? `COALESCE((SELECT n FROM archive_size WHERE archive = ${named1.jid}), 0)` : bounded(countFilters)} AS total,
                ${sideCond === null ? '0' : bounded(sideCond)} AS side`,
        countParams,
      );
      const [rows, [c]] = await Promise.all([pageQuery, countQuery]);
      return pageResult(rows, c, resultShape);
    },

    async get(archive, stanzaId) {
      const n = await named(archive);
      const [r] = await db.queryPlannedOnce<ArchiveRow>(
        `SELECT ${ARCHIVE_COLUMNS} FROM archive WHERE ${n.cond} AND stanza_id = $2`,
        [n.value, stanzaId],
      );
      return r ? toArchived(r) : null;
    },

    async lastN(archive, n, opts = {}) {
      const k = await named(archive);
      const params: unknown[] = [k.value, n];
      let since = '';
      if (opts.since) {
        params.push(opts.since.toISOString());
        since = ' AND stamp >= $3::timestamptz';
      }
      // Without a since, one plan serves every archive (planned once); with one, the plan follows
      // how far back it reaches (a generic plan would walk the archive by id past the window).
      const sql = `SELECT ${ARCHIVE_COLUMNS} FROM archive WHERE ${k.cond}${since} ORDER BY id DESC LIMIT $2`;
      const rows = await (since ? db.query<ArchiveRow>(sql, params) : db.queryPlannedOnce<ArchiveRow>(sql, params));
      const picked: ArchivedMessage[] = [];
      let chars = 0;
      for (const r of rows) {
        chars += r.stanza.length;
        if (opts.maxChars !== undefined && chars > opts.maxChars) break;
        picked.push(toArchived(r));
      }
      return picked.reverse();
    },

    async retract(archive, stanzaId, tombstoneStanza) {
      // tsv follows body (the archive_tsv_update trigger), so a null body also takes the entry out of full-text results.
      const n = await named(archive);
      const rows = await db.query(
        `UPDATE archive SET retracted = true, stanza = $3, body = NULL
         WHERE ${n.cond} AND stanza_id = $2 RETURNING id`,
        [n.value, stanzaId, tombstoneStanza],
      );
      return rows.length > 0;
    },

    async mentioning(archive, stanzaId, texts, limit) {
      if (texts.length === 0) return [];
      // LIKE patterns with the texts taken literally (backslash is LIKE's default escape).
      const patterns = texts.map((t) => `%${t.replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
      const n = await named(archive);
      const rows = await db.query<ArchiveRow>(
        `SELECT ${ARCHIVE_COLUMNS} FROM archive
         WHERE ${n.cond} AND NOT retracted AND stanza LIKE ANY($3::text[])
           AND id > (SELECT id FROM archive WHERE ${n.cond} AND stanza_id = $2)
         ORDER BY id LIMIT $4`,
        [n.value, stanzaId, patterns, limit],
      );
      return rows.map(toArchived);
    },

    async removeArchive(archive) {
      const k = await named(archive);
      const [r] = await db.query<{ n: unknown }>(
        `WITH gone AS (DELETE FROM archive WHERE ${k.cond} RETURNING 1) SELECT count(*) AS n FROM gone`,
        [k.value],
      );
      return num(r?.n);
    },

    async deleteBefore(archive, before, limit) {
      if (limit <= 0) return 0;
      // Oldest first through the (archive, stamp) index (the partitions after the bound pruned), a
      // bounded batch so no statement holds the table long.
      const k = await named(archive);
      const [r] = await db.query<{ n: unknown }>(
        `WITH gone AS (
           DELETE FROM archive WHERE ${k.cond} AND stamp <= $2::timestamptz AND id IN (
             SELECT id FROM archive WHERE ${k.cond} AND stamp <= $2::timestamptz ORDER BY stamp, id LIMIT $3)
           RETURNING 1)
         SELECT count(*) AS n FROM gone`,
        [k.value, before.toISOString(), limit],
      );
      return num(r?.n);
    },

    async rewrite(archive, entries) {
      if (entries.length === 0) return [];
      const k = await named(archive);
      const rows = await db.query<{ stanza_id: string }>(
        `UPDATE archive a SET stanza = e.x, body = e.b, retracted = e.r
         FROM unnest($2::text[], $3::text[], $4::text[], $5::boolean[]) AS e(s, x, b, r)
         WHERE a.${k.cond} AND a.stanza_id = e.s
         RETURNING a.stanza_id`,
        [k.value, entries.map((e) => e.stanzaId), entries.map((e) => e.stanza), entries.map((e) => e.body), entries.map((e) => e.retracted)],
      );
      return rows.map((r) => r.stanza_id);
    },

    async sizes(archives) {
      if (archives.length === 0) return new Map();
      const rows = await db.query<{ archive: string; n: unknown; bytes: unknown }>(
        'SELECT archive, n, bytes FROM archive_size WHERE archive = ANY($1::text[])',
        [archives],
      );
      return new Map(rows.map((r) => [r.archive, { messages: num(r.n), bytes: num(r.bytes) }]));
    },

    async foldCounts() {
      await db.query('SELECT archive_count_fold()');
    },

    search(archives, q) {
      return searchArchives(db, keys, fulltextLanguage, archives, q);
    },
  };
}

/** The keys of the entries' archives (made where missing) when the archive has the akey column; else null. */
async function entryKeys(keys: ArchiveKeys, entries: ArchiveEntry[]): Promise<Map<string, number> | null> {
  if (entries.length === 0 || (await keys.mode()) === 'none') return null;
  return keys.ensure(entries.map((e) => e.archive));
}

/**
 * Archives holding more rows than this together, and a quarter of the table, are not narrowed by the
 * archive index in a filtered count (nor in a search's page): a bitmap of a million-row archive ANDed
 * with the full-text one cost 0.5-1 s, where the full-text index alone (a rare word) or a scan in id
 * order that stops early (a common one) takes milliseconds. Smaller sets keep the index: a scan in id
 * order through rows mostly of other archives is what costs there.
 */
const WIDE_ARCHIVE = 100_000;

/**
 * Do these archives hold more than WIDE_ARCHIVE rows (kept sizes) and a quarter of the table (the
 * planner's row estimate of the table or its partitions: summing every archive's kept size cost
 * 3-13 ms at 10 million rows, more than the search it steers)?
 */
async function isWide(db: Db, archives: string[]): Promise<boolean> {
  const [r] = await db.query<{ n: unknown; all: unknown }>(
    `SELECT (SELECT COALESCE(sum(n), 0) FROM archive_size WHERE archive = ANY($1::text[])) AS n,
            (SELECT COALESCE(sum(GREATEST(c.reltuples, 0)), 0) FROM pg_class c
              WHERE (c.oid = to_regclass('archive') AND c.relkind = 'r')
                 OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = to_regclass('archive'))) AS all`,
    [archives],
  );
  const n = num(r?.n);
  return n > WIDE_ARCHIVE && n * 4 > num(r?.all);
}

/** Rows the full-text index alone may find for a search's text, below which it drives the search. */
const NARROW_TEXT = 10_000;

/** The search's text conditions alone, with their own parameters; null without text. */
function textCondition(q: ArchiveSearch, language: string): { sql: string; params: unknown[] } | null {
  const params: unknown[] = [];
  const param = (v: unknown): string => {
    params.push(v);
    return `$${params.length}`;
  };
  const conds: string[] = [];
  if (q.fulltext !== undefined) conds.push(`tsv @@ plainto_tsquery('${language}', ${param(q.fulltext)})`);
  if (q.match) conds.push(matchCondition(q.match, language, param));
  return conds.length ? { sql: conds.join(' AND '), params } : null;
}

/** The planner's estimate of the rows matching a condition (EXPLAIN, nothing run). */
async function estimatedRows(db: Db, cond: string, params: unknown[]): Promise<number> {
  const rows = await db.query<Record<string, unknown>>(`EXPLAIN (FORMAT JSON) SELECT 1 FROM archive WHERE ${cond}`, params);
  const raw = rows[0]?.['QUERY PLAN'];
  const plan = (typeof raw === 'string' ? JSON.parse(raw) : raw) as { Plan?: { 'Plan Rows'?: number } }[] | undefined;
  return plan?.[0]?.Plan?.['Plan Rows'] ?? Number.POSITIVE_INFINITY;
}

/** The filters with their leading archive condition out of the planner's index choices (same rows). */
function unindexed(filters: string, archiveCond: string): string {
  return filters.startsWith(archiveCond) ? `(${archiveCond}) IS TRUE${filters.slice(archiveCond.length)}` : filters;
}

/**
 * ArchiveStore.search: one statement over the archives named, newest first by row id (the cursor),
 * with the same bounded count as a single archive's query.
 */
async function searchArchives(db: Db, keys: ArchiveKeys, fulltextLanguage: string, archives: string[], q: ArchiveSearch): Promise<ArchiveQueryResult> {
  if (archives.length === 0) return { entries: [], complete: true, count: 0 };
  // The archives by key where the indexes lead with keys (those never written have none, and no rows).
  const keyed = (await keys.mode()) === 'keyed';
  const archiveCond = keyed ? 'akey = ANY($1::int[])' : 'archive = ANY($1::text[])';
  const jids = keyed ? 'archive IN (SELECT archive FROM archive_keys WHERE key = ANY($1::int[]))' : 'archive = ANY($1::text[])';
  const params: unknown[] = [keyed ? [...(await keys.known(archives)).values()] : archives];
  const param = (v: unknown): string => {
    params.push(v);
    return `$${params.length}`;
  };
  const where = [archiveCond];
  if (q.start) where.push(`stamp >= ${param(q.start.toISOString())}::timestamptz`);
  if (q.end) where.push(`stamp <= ${param(q.end.toISOString())}::timestamptz`);
  if (q.fulltext !== undefined) where.push(`tsv @@ plainto_tsquery('${fulltextLanguage}', ${param(q.fulltext)})`);
  if (q.match) where.push(matchCondition(q.match, fulltextLanguage, param));
  if (q.authors) {
    const { realJids, occupants, realJidArchives } = q.authors;
    const any: string[] = [];
    if (realJids?.length) {
      any.push(realJidArchives
        ? `(real_jid = ANY(${param(realJids)}::text[]) AND archive = ANY(${param(realJidArchives)}::text[]))`
        : `real_jid = ANY(${param(realJids)}::text[])`);
    }
    if (occupants?.length) any.push(`(from_jid = ANY(${param(occupants)}::text[]) AND ${ROOM_ROW})`);
    where.push(any.length ? `(${any.join(' OR ')})` : 'false');
  }
  const filters = where.join(' AND ');
  const filterParams = [...params];

  // The archive index, or not (see WIDE_ARCHIVE): not for many archives, nor for a text the full-text
  // index alone narrows to a few rows (as the planner estimates it); always with a date window.
  const unfiltered = where.length === 1;
  const text = textCondition(q, fulltextLanguage);
  const wide = !unfiltered && !q.start && !q.end && (await isWide(db, archives));
  // A narrow text: the full-text index first, whatever the planner would do for ORDER BY id LIMIT n
  // (a scan in id order through the whole table when few rows of the archives match); OFFSET 0 keeps
  // the subquery planned on its own.
  const narrow = !wide && !unfiltered && !q.start && !q.end && !q.authors && text !== null && (await estimatedRows(db, text.sql, text.params)) <= NARROW_TEXT;
  const unindex = wide || narrow;
  // A date window the archives' index narrows to a few rows: those rows first, then newest first.
  const window = !unindex && !unfiltered && (q.start !== undefined || q.end !== undefined) && (await estimatedRows(db, filters, filterParams)) <= NARROW_TEXT;
  const countFilters = unindex ? unindexed(filters, archiveCond) : filters;
  const from = (cond: string) => (narrow || window ? `(SELECT * FROM archive WHERE ${cond} OFFSET 0) a` : `archive WHERE ${cond}`);
  const cursor: string[] = [];
  const before = typeof q.before === 'number' ? q.before : undefined;
  if (q.after !== undefined) cursor.push(`id < ${param(q.after)}`);
  if (before !== undefined) cursor.push(`id > ${param(before)}`);
  const backwards = q.before !== undefined;
  const offset = q.after === undefined && !backwards && q.index ? ` OFFSET ${param(q.index)}` : '';
  const pageQuery = db.query<ArchiveRow>(
    `SELECT ${ARCHIVE_COLUMNS} FROM ${from([countFilters, ...cursor].join(' AND '))}
     ORDER BY id ${backwards ? 'ASC' : 'DESC'} LIMIT ${param(q.limit + 1)}${offset}`,
    params,
  );

  const bounded = (cond: string) => `(SELECT count(*) FROM (SELECT 1 FROM ${from(cond)}${unindex ? ' ORDER BY id DESC' : ''} LIMIT ${SEARCH_COUNT_BOUND + 1}) s)`;
  const countParams = [...filterParams];
  const cp = (v: unknown): string => {
    countParams.push(v);
    return `$${countParams.length}`;
  };
  let sideCond: string | null = null;
  if (!backwards && q.after !== undefined) sideCond = `${countFilters} AND id >= ${cp(q.after)}`;
  if (backwards && before !== undefined) sideCond = `${countFilters} AND id <= ${cp(before)}`;
  const countQuery = db.query<{ total: unknown; side: unknown }>(
    `SELECT ${unfiltered ? `COALESCE((SELECT sum(n) FROM archive_size WHERE ${jids}), 0)` : bounded(countFilters)} AS total,
            ${sideCond === null ? '0' : bounded(sideCond)} AS side`,
    countParams,
  );
  const [rows, [c]] = await Promise.all([pageQuery, countQuery]);
  return pageResult(rows, c, { limit: q.limit, backwards, cursor: q.after !== undefined, offsetIndex: offset ? q.index : undefined, bound: SEARCH_COUNT_BOUND, unfiltered });
}

/**
 * A query's answer from its page rows (limit + 1 asked, in paging order) and its bounded counts:
 * the whole set's and the rows on the cursor's side (it included). A count beyond the bound is left
 * out (unless it is an archive's kept size), and so is an index that would need it.
 */
function pageResult(rows: ArchiveRow[], counts: { total: unknown; side: unknown } | undefined, o: {
  limit: number; backwards: boolean; cursor: boolean; offsetIndex: number | undefined; bound: number; unfiltered: boolean;
}): ArchiveQueryResult {
  const complete = rows.length <= o.limit;
  const page = rows.slice(0, o.limit).map(toArchived);
  if (o.backwards) page.reverse();
  const totalRaw = num(counts?.total);
  const count = totalRaw <= o.bound || o.unfiltered ? totalRaw : undefined;
  const side = num(counts?.side);
  let firstIndex: number | undefined;
  if (page.length > 0 && side <= o.bound) {
    if (!o.backwards) firstIndex = o.cursor ? side : (o.offsetIndex ?? 0);
    else if (count !== undefined) firstIndex = count - side - page.length;
  }
  const result: ArchiveQueryResult = { entries: page, complete };
  if (count !== undefined) result.count = count;
  if (firstIndex !== undefined) result.firstIndex = firstIndex;
  return result;
}

/** Words of a search text, as the body's words are cut (letters, digits and what joins them). */
export function searchWords(text: string): string[] {
  return text.split(/\s+/).map((w) => w.trim()).filter((w) => w !== '');
}

/**
 * The SQL condition for an ArchiveMatch. The GIN index on tsv narrows the rows (each word, or the
 * phrase, as lexemes); strpos then checks the exact text and the case, which tsv does not keep.
 */
export function matchCondition(m: ArchiveMatch, language: string, param: (v: unknown) => string): string {
  const words = searchWords(m.text);
  if (words.length === 0) return 'false';
  const lang = `'${language}'`;
  if (m.mode === 'exact') {
    const text = m.text.trim();
    const t = param(text);
    const contains = m.caseSensitive ? `strpos(body, ${t}) > 0` : `strpos(lower(body), lower(${t})) > 0`;
    return `(tsv @@ phraseto_tsquery(${lang}, ${t}) AND ${contains})`;
  }
  const join = m.mode === 'all' ? ' AND ' : ' OR ';
  // One plainto_tsquery per word: a word the parser splits (e-mail, c++) stays one requirement.
  const lexemes = words.map((w) => `plainto_tsquery(${lang}, ${param(w)})`);
  const indexed = `tsv @@ (${lexemes.join(m.mode === 'all' ? ' && ' : ' || ')})`;
  if (!m.caseSensitive) return `(${indexed})`;
  const cased = words.map((w) => `strpos(body, ${param(w)}) > 0`);
  return `(${indexed} AND (${cased.join(join)}))`;
}

/**
 * A full JID to match exactly (XEP-0313 §4.1.1). In a room's archive it is an occupant's: the sender
 * index covers room rows only (ROOM_ROW, repeated word for word so the planner may use it). In an
 * account's archive it is a partner's, found through its bare JID (real_jid's index), then filtered.
 */
function withFullJid(archive: string, full: string, param: (v: unknown) => string): string {
  if (full.startsWith(`${archive}/`)) return `from_jid = ${param(full)} AND ${ROOM_ROW}`;
  const slash = full.indexOf('/');
  return `real_jid = ${param(slash === -1 ? full : full.slice(0, slash))} AND from_jid = ${param(full)}`;
}

function authorsCondition(a: { realJids?: string[]; occupants?: string[] }, param: (v: unknown) => string): string {
  const any: string[] = [];
  if (a.realJids?.length) any.push(`real_jid = ANY(${param(a.realJids)}::text[])`);
  if (a.occupants?.length) any.push(`(from_jid = ANY(${param(a.occupants)}::text[]) AND ${ROOM_ROW})`);
  return any.length ? `(${any.join(' OR ')})` : 'false';
}
