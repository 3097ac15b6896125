// The archive at scale (storage/archive-partitions.ts, migrations 10-11): the migration from the single
// table with data (counts, bytes, full text and MAM pages the same after), the online conversion of a
// large table, partitions made ahead (and rows the default partition caught moved in), retention
// dropping whole partitions, and exact counts under concurrent writers to one archive; on PGlite and
// on PostgreSQL.
import { expect } from 'chai';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultConfig } from '../src/config.js';
import { pidPath } from '../src/admin/socket.js';
import { archiveMain } from '../src/cli/archive.js';
import type { Io } from '../src/cli/admin.js';
import { sqlBackends } from './services.js';
import { migrate } from '../storage/migrations.js';
import {
  archiveIsPartitioned, cheaperArchiveRows, defaultPartitionRows, ensureArchivePartitions, expireArchive, moveDefaultPartitionRows, partitionArchive, rekeyOnline,
  partitionStart, partitionName, ROOM_ROW,
} from '../storage/archive-partitions.js';
import { createSqlStores } from '../storage/sql-stores.js';
import { archiveKeys, readKeyMode } from '../storage/archive-keys.js';
import { openPglite } from '../storage/db-pglite.js';
import type { ArchiveEntry, ArchiveQuery, ArchiveStore, Db } from '../storage/types.js';

const ROOM = 'room@conference.example.com';
const OTHER = 'other@conference.example.com';
const ACCOUNT = 'alice@example.com';
const DAY = 86_400_000;
const NOW = Date.now();

/** n entries, oldest `days` days ago, the last now, spread over the archives named. */
function entries(n: number, days: number, archives = [ROOM, OTHER], tag = 'e'): ArchiveEntry[] {
  return Array.from({ length: n }, (_, i) => {
    const archive = archives[i % archives.length]!;
    const body = i % 7 === 0 ? `needle ${i} in a haystack` : `message ${i} ${'é'.repeat(i % 5)}`;
    return {
      archive, stanzaId: `${tag}${i}`, stamp: new Date(NOW - days * DAY + Math.floor((i * days * DAY) / Math.max(1, n - 1))),
      fromJid: `${archive}/nick${i % 3}`, realJid: `user${i % 3}@example.com`, body,
      stanza: `<message type="groupchat"><body>${body}</body></message>`,
    };
  });
}

/** What the stored archive answers: sizes, pages forward and back, filters, full text, counts. */
async function answers(a: ArchiveStore): Promise<unknown> {
  const out: unknown[] = [[...(await a.sizes([ROOM, OTHER])).entries()]];
  const queries: ArchiveQuery[] = [
    { limit: 10 }, { limit: 10, before: true }, { limit: 5, after: 'e40' }, { limit: 5, before: 'e40' },
    { limit: 10, with: { realJid: 'user1@example.com' } }, { limit: 10, with: { occupant: `${ROOM}/nick2` }, before: true },
    { limit: 10, start: new Date(NOW - 100 * DAY), end: new Date(NOW - 50 * DAY) },
    { limit: 10, fulltext: 'needle' }, { limit: 3, fulltext: 'needle', after: 'e98' }, { limit: 10, ids: ['e2', 'e4', 'e7'] },
  ];
  for (const q of queries) {
    const r = await a.query(ROOM, q);
    out.push([r.entries.map((e) => [e.id, e.stanzaId, e.stamp.toISOString(), e.body]), r.count, r.firstIndex, r.complete]);
  }
  const s = await a.search([ROOM, OTHER], { limit: 7, fulltext: 'needle' });
  out.push([s.entries.map((e) => e.stanzaId), s.count]);
  return out;
}

/** The kept sizes against the rows themselves. */
async function exactSizes(db: Db, a: ArchiveStore): Promise<void> {
  const rows = await db.query<{ archive: string; n: unknown; b: unknown }>(
    'SELECT archive, count(*) AS n, sum(octet_length(stanza)) AS b FROM archive GROUP BY archive');
  const kept = await a.sizes(rows.map((r) => r.archive));
  for (const r of rows) expect(kept.get(r.archive), r.archive).to.deep.equal({ messages: Number(r.n), bytes: Number(r.b) });
}

/** The full-text index's key on the archive table and on each of its partitions (null: one lacks it). */
async function fulltextKeys(db: Db): Promise<string[]> {
  const rows = await db.query<{ rel: string; def: string | null }>(
    `SELECT c.relname AS rel, (SELECT string_agg(pg_get_indexdef(i.indexrelid), '; ') FROM pg_index i
       WHERE i.indrelid = c.oid AND pg_get_indexdef(i.indexrelid) LIKE '%USING gin%') AS def
     FROM pg_class c WHERE c.oid = to_regclass('archive')
        OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = to_regclass('archive'))`);
  return [...new Set(rows.map((r) => /USING gin (\([^)]*\))/.exec(r.def ?? '')?.[1] ?? 'none'))];
}

/** Rows as a writer before migration 14 added them: tsv left to the generated column. */
async function appendBefore14(db: Db, list: ArchiveEntry[]): Promise<void> {
  for (const e of list) {
    await db.query('INSERT INTO archive (archive, stanza_id, stamp, from_jid, real_jid, body, stanza) VALUES ($1, $2, $3, $4, $5, $6, $7)',
      [e.archive, e.stanzaId, e.stamp.toISOString(), e.fromJid, e.realJid, e.body, e.stanza]);
  }
}

/** The partitioned archive as migration 11 made it before migration 14: tsv generated, indexes deduplicating. */
async function schemaBefore14(db: Db): Promise<void> {
  const key = (await fulltextKeys(db))[0]!;
  await db.query('DROP TRIGGER archive_tsv_insert ON archive');
  await db.query('DROP TRIGGER archive_tsv_update ON archive');
  await db.query('DROP INDEX archive_tsv');
  await db.query('ALTER TABLE archive DROP COLUMN tsv');
  await db.query(`ALTER TABLE archive ADD COLUMN tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', body)) STORED`);
  await db.query(`CREATE INDEX archive_tsv ON archive USING gin ${key}`);
  await db.query('DROP FUNCTION archive_tsv_fill()');
  await db.query('DROP FUNCTION archive_tsv(text)');
  for (const { index } of await btreeDeduplication(db)) await db.query(`ALTER INDEX ${index} SET (deduplicate_items = on)`);
}

/** Each non-unique B-tree index on the archive's tables (its partitions, or the single table), and whether it deduplicates. */
async function btreeDeduplication(db: Db): Promise<{ index: string; dedup: boolean }[]> {
  return db.query<{ index: string; dedup: boolean }>(
    `SELECT c.relname AS index, NOT COALESCE(c.reloptions, '{}') @> '{deduplicate_items=off}' AS dedup
       FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam
      WHERE c.relkind = 'i' AND a.amname = 'btree' AND NOT i.indisunique
        AND (i.indrelid = to_regclass('archive') OR i.indrelid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = to_regclass('archive')))
      ORDER BY 1`);
}

/** Rows whose tsv is not archive_tsv(body), the words the archive's configuration makes of the body. */
async function staleWords(db: Db): Promise<number> {
  const [r] = await db.query<{ n: unknown }>('SELECT count(*) AS n FROM archive WHERE tsv IS DISTINCT FROM archive_tsv(body)');
  return Number(r!.n);
}

/** Is the archive's tsv a generated column? */
async function tsvGenerated(db: Db): Promise<boolean> {
  const [r] = await db.query<{ g: string }>(`SELECT attgenerated AS g FROM pg_attribute WHERE attrelid = to_regclass('archive') AND attname = 'tsv'`);
  return r!.g !== '';
}

/** An account's archive: the partner's JID as addressed (two resources), its bare JID in real_jid. */
function accountEntries(n: number): ArchiveEntry[] {
  return Array.from({ length: n }, (_, i): ArchiveEntry => ({
    archive: ACCOUNT, stanzaId: `p${i}`, stamp: new Date(NOW - (n - i) * DAY),
    fromJid: i % 4 === 0 ? 'bob@example.com' : `bob@example.com/res${i % 2}`, realJid: 'bob@example.com',
    body: `chat ${i}`, stanza: `<message type="chat"><body>chat ${i}</body></message>`,
  }));
}

/** What `with` and the authors filter answer, in an account's archive and across rooms. */
async function withAnswers(a: ArchiveStore): Promise<unknown[]> {
  const out: unknown[] = [await answers(a)];
  for (const occupant of ['bob@example.com/res0', 'bob@example.com/res1', 'bob@example.com/none']) {
    const r = await a.query(ACCOUNT, { limit: 7, with: { occupant }, before: true });
    out.push([r.entries.map((e) => e.stanzaId), r.count, r.firstIndex, r.complete]);
  }
  const s = await a.search([ROOM, OTHER], { limit: 9, authors: { occupants: [`${ROOM}/nick1`, `${OTHER}/nick2`] } });
  out.push([s.entries.map((e) => e.stanzaId), s.count]);
  const w = await a.search([ROOM, OTHER, ACCOUNT], { limit: 9, authors: { realJids: ['user1@example.com', 'bob@example.com'], realJidArchives: [ROOM, ACCOUNT] } });
  out.push([w.entries.map((e) => e.stanzaId), w.count]);
  return out;
}

/** The column every B-tree index of the archive but (id) leads with, on the table and its partitions. */
async function indexKeys(db: Db): Promise<string[]> {
  const rows = await db.query<{ def: string }>(
    `SELECT pg_get_indexdef(i.indexrelid) AS def FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am m ON m.oid = c.relam
      WHERE m.amname = 'btree' AND (i.indrelid = to_regclass('archive') OR i.indrelid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = to_regclass('archive')))`);
  return [...new Set(rows.map((r) => /\(([a-z_]+)/.exec(r.def)![1]!).filter((c) => c !== 'id'))];
}

/** Rows without their archive's key (or with another's). */
async function unkeyedRows(db: Db): Promise<number> {
  const [r] = await db.query<{ n: unknown }>(
    'SELECT count(*) AS n FROM archive a LEFT JOIN archive_keys k ON k.key = a.akey WHERE k.archive IS DISTINCT FROM a.archive');
  return Number(r!.n);
}

/** A store on the schema before migration 16, holding two rooms' and an account's messages. */
async function archiveBefore16(db: Db): Promise<ArchiveStore> {
  await migrate(db, undefined, 15);
  const a = createSqlStores(db).archive;
  await a.append(entries(150, 400));
  await a.append(accountEntries(40));
  return a;
}

/**
 * The migrations on as they go for an archive over the in-place limit (by the kept counts, an archive
 * that holds no rows made to count as two million): migration 16 adds the key and keeps the JID indexes.
 */
async function migrateOverInPlaceLimit(db: Db): Promise<void> {
  await db.query(`INSERT INTO archive_count (archive, n, bytes) VALUES ('huge@example.com', 2000000, 0)`);
  await migrate(db);
  await db.query(`DELETE FROM archive_count WHERE archive = 'huge@example.com'`);
}

/** The sender index over every row (the schema before migration 13). */
async function wholeSenderIndex(db: Db): Promise<void> {
  await db.query('DROP INDEX archive_archive_from_jid');
  await db.query('CREATE INDEX archive_archive_from_jid ON archive (archive, from_jid, id)');
}

describe('archive partitions and counts', function () {
  this.timeout(120_000);
  for (const backend of sqlBackends) {
    describe(backend.name, function () {
      const disposers: (() => Promise<void>)[] = [];
      async function open(ctx: Mocha.Context): Promise<Db> {
        try {
          const o = await backend.open();
          disposers.push(o.dispose);
          return o.db;
        } catch (e) {
          if ((e as { skip?: boolean }).skip) { console.warn(`    ${(e as Error).message}: skipping`); ctx.skip(); }
          throw e;
        }
      }
      after(async () => { for (const d of disposers) await d(); });

      it('migrates a single archive table with data to quarterly partitions: sizes, pages and full text the same', async function () {
        const db = await open(this);
        await migrate(db, undefined, 9);
        const a = createSqlStores(db).archive;
        await appendBefore14(db, entries(200, 400));
        await a.retract(ROOM, 'e10', '<message type="groupchat"><retracted/></message>');
        await db.query(`DELETE FROM archive WHERE stanza_id = 'e11'`);
        const [old] = await db.query<{ n: unknown; bytes: unknown }>('SELECT n, bytes FROM archive_count WHERE archive = $1', [ROOM]);
        await migrate(db, undefined, 10);
        expect(await archiveIsPartitioned(db)).to.equal(false);
        const before = await answers(a);
        expect((await a.sizes([ROOM])).get(ROOM)).to.deep.equal({ messages: Number(old?.n), bytes: Number(old?.bytes) });
        await migrate(db);
        expect(await archiveIsPartitioned(db)).to.equal(true);
        expect(await answers(a)).to.deep.equal(before);
        // The months of the rows and the coming ones each have a partition; the default one is empty.
        const parts = (await db.query<{ name: string }>(
          `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass('archive')`)).map((r) => r.name);
        expect(parts).to.include(partitionName(partitionStart(new Date(NOW - 400 * DAY))));
        expect(parts).to.include(partitionName(partitionStart(new Date(NOW), 2)));
        expect(await db.query('SELECT 1 FROM archive_p_default')).to.have.length(0);
        // New rows get the next ids, and the same checks hold.
        const [added] = await a.append(entries(1, 0, [ROOM], 'new'));
        expect(added!.id).to.be.greaterThan(200);
        await exactSizes(db, a);
        expect((await a.query(ROOM, { limit: 1, fulltext: 'needle' })).count).to.equal(16);
        // Migrations 12 and 16: the full-text index is keyed by the archive's key on the table and every partition.
        expect(await fulltextKeys(db)).to.deep.equal(['(akey, tsv)']);
        expect(await unkeyedRows(db)).to.equal(0);
        // Migration 14: tsv a plain column every row of which holds its words; no index deduplicates.
        expect(await tsvGenerated(db)).to.equal(false);
        expect(await staleWords(db)).to.equal(0);
        expect((await btreeDeduplication(db)).filter((i) => i.dedup)).to.deep.equal([]);
      });

      it('fills tsv once per message and by triggers for other writers, without deduplication (migration 14)', async function () {
        const db = await open(this);
        await migrate(db, undefined, 13);
        await schemaBefore14(db);
        expect(await tsvGenerated(db)).to.equal(true);
        expect((await btreeDeduplication(db)).filter((i) => !i.dedup)).to.deep.equal([]);
        await appendBefore14(db, entries(60, 400));
        const a = createSqlStores(db).archive;
        const before = await answers(a);
        await migrate(db);
        expect(await tsvGenerated(db)).to.equal(false);
        expect(await staleWords(db)).to.equal(0);
        expect(await answers(a)).to.deep.equal(before);
        // The append: one-to-one copies (the same body twice in a row) and room rows.
        await a.append(entries(20, 0, [ROOM, ROOM], 'twin'));
        const twins = await db.query<{ n: unknown }>(
          `SELECT count(*) AS n FROM archive WHERE stanza_id LIKE 'twin%' AND tsv IS NOT NULL AND tsv = archive_tsv(body)`);
        expect(Number(twins[0]!.n)).to.equal(20);
        // Another writer: an insert without tsv (an import, a node of the version before) and a rewrite of body.
        await appendBefore14(db, [{ ...entries(1, 0, [ROOM], 'raw')[0]!, body: 'unheard-of words' }]);
        await db.query(`UPDATE archive SET body = 'rewritten wholly' WHERE stanza_id = 'e8'`);
        await a.retract(ROOM, 'e14', '<message type="groupchat"><retracted/></message>');
        expect(await staleWords(db)).to.equal(0);
        expect((await a.query(ROOM, { limit: 5, fulltext: 'unheard-of' })).entries.map((e) => e.stanzaId)).to.deep.equal(['raw0']);
        expect((await a.query(ROOM, { limit: 5, fulltext: 'wholly' })).entries.map((e) => e.stanzaId)).to.deep.equal(['e8']);
        expect((await a.query(ROOM, { limit: 50, fulltext: 'needle' })).entries.map((e) => e.stanzaId)).to.have.members(['e0', 'e28', 'e42', 'e56', 'twin0', 'twin7', 'twin14']);
        // No B-tree index deduplicates, a quarter made afterwards' neither (its parent index predates migration 14).
        await ensureArchivePartitions(db, { now: new Date(NOW + 400 * DAY) });
        const indexes = await btreeDeduplication(db);
        expect(indexes.length).to.be.greaterThan(5 * 5);
        expect(indexes.filter((i) => i.dedup)).to.deep.equal([]);
        await exactSizes(db, a);
      });

      it('keeps room rows only in the sender index (migrations 13 and 16): every with query answers the same', async function () {
        const db = await open(this);
        // The sender index over every row, as migration 11 made it.
        await migrate(db, undefined, 12);
        await wholeSenderIndex(db);
        const a = createSqlStores(db).archive;
        await a.append(entries(120, 400));
        // An account's archive: the partner's JID as addressed (two resources), its bare JID in real_jid.
        await a.append(accountEntries(40));
        const senderIndexes = async () => {
          const rows = await db.query<{ def: string }>(
            `SELECT pg_get_indexdef(x.indexrelid) AS def FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid
              WHERE (c.oid = to_regclass('archive') OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = to_regclass('archive')))
                AND pg_get_indexdef(x.indexrelid) LIKE '%, from_jid, id)%'`);
          const shape = (def: string) => {
            const m = /\(([a-z]+), from_jid, id\)(.* WHERE (.*))?$/.exec(def);
            return `${m?.[1]} ${m?.[3] ?? 'every row'}`;
          };
          return [...new Set(rows.map((r) => shape(r.def)))];
        };
        expect(await senderIndexes()).to.deep.equal(['archive every row']);
        const before = await withAnswers(a);
        expect((before[1] as unknown[])[1], 'res0 rows in the account archive').to.equal(10);
        await migrate(db);
        expect(await senderIndexes()).to.deep.equal([`akey starts_with(from_jid, (archive || '/'::text))`]);
        expect(await withAnswers(a)).to.deep.equal(before);
        // The planner can use it for an occupant: the query states its predicate word for word.
        const plan = await db.transaction(async (tx) => {
          await tx.query('SET LOCAL enable_seqscan = off');
          await tx.query('SET LOCAL enable_bitmapscan = off');
          return tx.query<Record<string, unknown>>(`EXPLAIN SELECT id FROM archive WHERE akey = 1 AND from_jid = '${ROOM}/nick1' AND ${ROOM_ROW} ORDER BY id DESC LIMIT 5`);
        });
        expect(JSON.stringify(plan)).to.match(/from_jid/);
        // A quarter made afterwards gets the narrow keyed index.
        await ensureArchivePartitions(db, { now: new Date(NOW + 400 * DAY) });
        expect(await senderIndexes()).to.deep.equal([`akey starts_with(from_jid, (archive || '/'::text))`]);
        expect(await withAnswers(a)).to.deep.equal(before);
      });

      it('narrows the sender index inside migration 13 for an archive up to a million messages', async function () {
        const db = await open(this);
        await migrate(db, undefined, 12);
        await wholeSenderIndex(db);
        await createSqlStores(db).archive.append(entries(30, 100));
        await migrate(db);
        const [idx] = await db.query<{ def: string }>(`SELECT pg_get_indexdef(to_regclass('archive_archive_from_jid')) AS def`);
        expect(idx!.def).to.include('starts_with');
      });

      it('names each archive by an integer inside migration 16 (up to a million messages): every answer the same', async function () {
        const db = await open(this);
        const a = await archiveBefore16(db);
        expect(await readKeyMode(db)).to.equal('none');
        const before = [await answers(a), await withAnswers(a)];
        await migrate(db);
        expect(await readKeyMode(db)).to.equal('keyed');
        expect(await indexKeys(db)).to.deep.equal(['akey']);
        expect(await fulltextKeys(db)).to.deep.equal(['(akey, tsv)']);
        expect(await unkeyedRows(db)).to.equal(0);
        expect([await answers(a), await withAnswers(a)]).to.deep.equal(before);
        // The store names the key: a last page reads (akey, id).
        const plan = await db.query<Record<string, unknown>>(`EXPLAIN SELECT id FROM archive WHERE akey = 1 ORDER BY id DESC LIMIT 5`);
        expect(JSON.stringify(plan)).to.match(/archive_archive_id|_akey_id_idx|akey/);
        // The server's writer names each key (a new archive's made first); another writer's rows get theirs from the trigger.
        await a.append(entries(4, 0, ['new@conference.example.com'], 'fresh'));
        await appendBefore14(db, entries(2, 0, ['raw@conference.example.com'], 'raw'));
        expect(await unkeyedRows(db)).to.equal(0);
        const [keysMade] = await db.query<{ n: unknown }>(`SELECT count(*) AS n FROM archive_keys WHERE archive IN ('new@conference.example.com', 'raw@conference.example.com')`);
        expect(Number(keysMade!.n)).to.equal(2);
        expect((await a.query('raw@conference.example.com', { limit: 5 })).entries.map((e) => e.stanzaId)).to.deep.equal(['raw0', 'raw1']);
        expect((await a.query('never@conference.example.com', { limit: 5 })).entries).to.deep.equal([]);
        expect((await a.search(['never@conference.example.com'], { limit: 5, fulltext: 'needle' })).entries).to.deep.equal([]);
        await exactSizes(db, a);
      });

      it('keys a larger archive beside running writers (perch archive reindex), every answer the same', async function () {
        const db = await open(this);
        const a = await archiveBefore16(db);
        const before = [await answers(a), await withAnswers(a)];
        await migrateOverInPlaceLimit(db);
        expect(await readKeyMode(db)).to.equal('filling');
        expect(await indexKeys(db)).to.deep.equal(['archive']);
        expect([await answers(a), await withAnswers(a)]).to.deep.equal(before);
        // Rows written now carry their key already.
        await a.append(entries(2, 0, [ROOM], 'filled'));
        const [filled] = await db.query<{ n: unknown }>(`SELECT count(*) AS n FROM archive WHERE stanza_id LIKE 'filled%' AND akey IS NOT NULL`);
        expect(Number(filled!.n)).to.equal(2);
        await db.query(`DELETE FROM archive WHERE stanza_id LIKE 'filled%'`);
        const phases: string[] = [];
        const meanwhile: Promise<unknown>[] = [];
        expect(await rekeyOnline(db, {
          grace: 0,
          onProgress: (phase, done, total) => {
            if (phases.at(-1) !== phase) phases.push(phase);
            expect(done).to.be.at.most(total);
            // Writes between partitions land in indexed and not yet indexed ones alike.
            if (phase === 'indexes' && done === 3) meanwhile.push(a.append(entries(2, 0, [ROOM], 'during')), a.retract(ROOM, 'e28', '<message><retracted/></message>'));
          },
        })).to.equal('keyed');
        await Promise.all(meanwhile);
        expect(phases).to.deep.equal(['keys', 'indexes']);
        expect(await readKeyMode(db)).to.equal('keyed');
        expect(await indexKeys(db)).to.deep.equal(['akey']);
        expect(await unkeyedRows(db)).to.equal(0);
        expect(await db.query(`SELECT 1 FROM pg_class WHERE relname LIKE 'archive\\_k\\_%'`)).to.have.length(0);
        expect((await a.query(ROOM, { limit: 5, ids: ['during0', 'during1', 'e28'] })).entries.map((e) => [e.stanzaId, e.retracted]))
          .to.deep.equal([['e28', true], ['during0', false], ['during1', false]]);
        await db.query(`DELETE FROM archive WHERE stanza_id LIKE 'during%'`);
        await a.rewrite(ROOM, [{ stanzaId: 'e28', stanza: entries(29, 400)[28]!.stanza, body: entries(29, 400)[28]!.body, retracted: false }]);
        expect([await answers(a), await withAnswers(a)]).to.deep.equal(before);
        // A quarter made afterwards gets the keyed indexes; a second run has nothing to do.
        await ensureArchivePartitions(db, { now: new Date(NOW + 400 * DAY) });
        expect(await indexKeys(db)).to.deep.equal(['akey']);
        expect(await rekeyOnline(db, { grace: 0 })).to.equal('already');
        await exactSizes(db, a);
      });

      it('gives two nodes appending to the same new archives at once one key each, whichever makes it', async function () {
        const db = await open(this);
        await migrate(db);
        // Two handles on the database: two nodes, each with its own memory of keys.
        const handle = (): Db => ({ ...db, kind: db.kind, query: (q, p) => db.query(q, p), queryPlannedOnce: (q, p) => db.queryPlannedOnce(q, p),
          transaction: (fn) => db.transaction(fn), warm: (r) => db.warm(r), close: async () => {} });
        const [one, two] = [createSqlStores(handle()).archive, createSqlStores(handle()).archive];
        const rooms = Array.from({ length: 12 }, (_, i) => `new${i}@conference.example.com`);
        await Promise.all([one.append(entries(48, 1, rooms, 'one')), two.append(entries(48, 1, [...rooms].reverse(), 'two'))]);
        const [k] = await db.query<{ keys: unknown; archives: unknown }>(
          `SELECT count(*) AS keys, count(DISTINCT archive) AS archives FROM archive_keys WHERE archive LIKE 'new%'`);
        expect([Number(k!.keys), Number(k!.archives)]).to.deep.equal([12, 12]);
        expect(await unkeyedRows(db)).to.equal(0);
        for (const room of rooms) expect((await one.query(room, { limit: 10 })).entries).to.have.length(8);
      });

      it('reads by JID until a reindex is seen, then by key, answers the same either way (a node holding its reading of the mode)', async function () {
        const db = await open(this);
        await migrate(db, undefined, 15);
        await migrateOverInPlaceLimit(db);
        const a = createSqlStores(db).archive;
        await a.append(entries(80, 400));
        const before = await answers(a);
        expect(await archiveKeys(db).mode()).to.equal('filling');
        // Another process keys the archive (its own handle on the database): this one still holds
        // 'filling' (for KEY_MODE_TTL_MS), and reads by JID, through the keyed indexes' table.
        const other: Db = { ...db, kind: db.kind, query: (q, p) => db.query(q, p), queryPlannedOnce: (q, p) => db.queryPlannedOnce(q, p),
          transaction: (fn) => db.transaction(fn), warm: (r) => db.warm(r), close: async () => {} };
        await rekeyOnline(other, { grace: 0 });
        expect(await readKeyMode(db)).to.equal('keyed');
        expect(await archiveKeys(db).mode()).to.equal('filling');
        expect(await answers(a)).to.deep.equal(before);
        await a.append(entries(2, 0, [ROOM], 'stale'));
        expect(await unkeyedRows(db)).to.equal(0);
        await db.query(`DELETE FROM archive WHERE stanza_id LIKE 'stale%'`);
        archiveKeys(db).invalidate();
        expect(await archiveKeys(db).mode()).to.equal('keyed');
        expect(await answers(a)).to.deep.equal(before);
      });

      it('converts a large table online in batches, keeping rows written, retracted and deleted meanwhile', async function () {
        const db = await open(this);
        // A single table over the in-place limit: migrations 11-13 leave it as it is, 14 applies.
        await migrate(db, undefined, 10);
        await cheaperArchiveRows(db);
        expect(await tsvGenerated(db)).to.equal(false);
        const a = createSqlStores(db).archive;
        await a.append(entries(120, 90));
        const progress: [number, number][] = [];
        const meanwhile: Promise<unknown>[] = [];
        let step = 0;
        const copied = await partitionArchive(db, {
          batch: 25,
          onProgress: (done, total) => {
            progress.push([done, total]);
            // Writes while the copy runs: each lands in the old table and must reach the new one.
            if (++step === 2) meanwhile.push(a.append(entries(3, 0, [ROOM], 'late')), a.retract(ROOM, 'e4', '<message><retracted/></message>'));
            if (step === 3) meanwhile.push(db.query(`DELETE FROM archive WHERE stanza_id = 'e6'`));
          },
        });
        await Promise.all(meanwhile);
        expect(copied).to.be.at.least(100);
        expect(progress[0]).to.deep.equal([0, 120]);
        expect(await archiveIsPartitioned(db)).to.equal(true);
        await migrate(db);
        const got = await a.query(ROOM, { limit: 100, ids: ['e4', 'e6', 'late0', 'late2'] });
        expect(got.entries.map((e) => [e.stanzaId, e.retracted])).to.deep.equal([['e4', true], ['late0', false], ['late2', false]]);
        await exactSizes(db, a);
        const [{ n }] = await db.query<{ n: unknown }>('SELECT count(*) AS n FROM archive') as [{ n: unknown }];
        expect(Number(n)).to.equal(122);
        expect((await a.query(ROOM, { limit: 6 })).entries.map((e) => e.stanzaId)).to.deep.equal(['e0', 'e2', 'e4', 'e8', 'e10', 'e12']);
        expect((await a.query(ROOM, { limit: 3, before: true })).entries.map((e) => e.stanzaId)).to.deep.equal(['late0', 'late1', 'late2']);
        // The partitioned table is keyed: every row, the late ones too, given its key by the trigger.
        expect(await fulltextKeys(db)).to.deep.equal(['(akey, tsv)']);
        expect(await indexKeys(db)).to.deep.equal(['akey']);
        expect(await unkeyedRows(db)).to.equal(0);
        // The copy kept each row's words, and the rows written and retracted meanwhile have theirs.
        expect(await staleWords(db)).to.equal(0);
        expect((await btreeDeduplication(db)).filter((i) => i.dedup)).to.deep.equal([]);
      });

      it('retention drops the partitions a cut-off covers and deletes the rest before it, counts following', async function () {
        const db = await open(this);
        await migrate(db);
        const a = createSqlStores(db).archive;
        await ensureArchivePartitions(db, { from: new Date(NOW - 400 * DAY) });
        await a.append(entries(150, 400));
        // Far older than any partition: the default partition keeps it.
        await a.append([{ ...entries(1, 0, [OTHER], 'ancient')[0]!, stamp: new Date(NOW - 2000 * DAY) }]);
        const cutoff = new Date(NOW - 150 * DAY);
        const [{ n: expected }] = await db.query<{ n: unknown }>('SELECT count(*) AS n FROM archive WHERE stamp >= $1', [cutoff.toISOString()]) as [{ n: unknown }];
        const r = await expireArchive(db, cutoff, { batch: 20 });
        // The ancient row was older than the cut-off: gone with the rest, its partition made for it first.
        expect(await db.query(`SELECT 1 FROM archive WHERE stanza_id = 'ancient0'`)).to.have.length(0);
        // Every month ending on or before the cut-off went whole.
        const gone = [];
        for (let m = partitionStart(new Date(NOW - 400 * DAY)); partitionStart(m, 1) <= cutoff; m = partitionStart(m, 1)) gone.push(partitionName(m));
        expect(r.dropped).to.deep.equal(gone);
        expect(gone.length).to.be.at.least(2);
        expect(r.deleted).to.be.greaterThan(0);
        const [{ n, oldest }] = await db.query<{ n: unknown; oldest: Date }>('SELECT count(*) AS n, min(stamp) AS oldest FROM archive') as [{ n: unknown; oldest: Date }];
        expect(Number(n)).to.equal(Number(expected));
        expect(new Date(oldest).getTime()).to.be.at.least(cutoff.getTime());
        await exactSizes(db, a);
        expect((await a.sizes([OTHER])).get(OTHER)?.messages).to.equal(Number((await db.query<{ n: unknown }>('SELECT count(*) AS n FROM archive WHERE archive = $1', [OTHER]))[0]?.n));
        // A room's clear before a time still works on what is left.
        await a.deleteBefore(ROOM, new Date(NOW - 30 * DAY), 7);
        await exactSizes(db, a);
      });

      it('moves rows the default partition caught into a partition made for their quarter', async function () {
        const db = await open(this);
        await migrate(db);
        const a = createSqlStores(db).archive;
        // An imported old history: its quarter gets a partition at the next start.
        await a.append([{ ...entries(1, 0, [ROOM], 'imported')[0]!, stamp: new Date(NOW - 3000 * DAY) }]);
        await migrate(db);
        expect(await db.query('SELECT 1 FROM archive_p_default')).to.have.length(0);
        expect(await db.query(`SELECT 1 FROM ${partitionName(partitionStart(new Date(NOW - 3000 * DAY)))}`)).to.have.length(1);
        const later = new Date(partitionStart(new Date(NOW), 4).getTime() + 5 * DAY);
        await a.append([{ ...entries(1, 0, [ROOM], 'future')[0]!, stamp: later }]);
        expect(await db.query('SELECT 1 FROM archive_p_default')).to.have.length(1);
        const made = await ensureArchivePartitions(db, { now: later });
        expect(made).to.include(partitionName(partitionStart(later)));
        expect(await db.query('SELECT 1 FROM archive_p_default')).to.have.length(0);
        expect(await db.query(`SELECT 1 FROM ${partitionName(partitionStart(later))}`)).to.have.length(1);
        await exactSizes(db, a);
      });

      it('leaves more stray rows than a start may move where they are, readable, and moves them a quarter at a time on demand', async function () {
        const db = await open(this);
        await migrate(db);
        const a = createSqlStores(db).archive;
        const y2019 = new Date('2019-02-10T00:00:00Z');
        const y2020 = new Date('2020-08-10T00:00:00Z');
        // History loaded in SQL without its quarters (perch archive partitions --from not run first).
        await appendBefore14(db, [
          ...entries(3, 0, [ROOM], 'old').map((e, i) => ({ ...e, stamp: new Date(y2019.getTime() + i * DAY) })),
          { ...entries(1, 0, [ROOM], 'older')[0]!, stamp: y2020 },
        ]);
        // Past the limit: the quarters ahead are made, those two left unmade, the rows kept and read where they are.
        const later = new Date(partitionStart(new Date(NOW), 4).getTime() + 5 * DAY);
        const made = await ensureArchivePartitions(db, { now: later, moveAtMost: 2 });
        expect(made).to.include(partitionName(partitionStart(later)));
        expect(made).to.not.include('archive_p201901');
        expect(await defaultPartitionRows(db, 2)).to.equal(3);
        expect(await defaultPartitionRows(db, 10)).to.equal(4);
        expect((await a.query(ROOM, { limit: 10, end: new Date('2021-01-01T00:00:00Z') })).entries.map((e) => e.stanzaId))
          .to.deep.equal(['old0', 'old1', 'old2', 'older0']);
        // Within it: moved (the start's case).
        const progress: string[] = [];
        expect(await moveDefaultPartitionRows(db, (done, total) => progress.push(`${done}/${total}`))).to.deep.equal({ moved: 4, quarters: 2 });
        expect(progress).to.deep.equal(['1/2', '2/2']);
        expect(await defaultPartitionRows(db, 10)).to.equal(0);
        expect(await db.query('SELECT 1 FROM archive_p201901')).to.have.length(3);
        expect(await db.query('SELECT 1 FROM archive_p202007')).to.have.length(1);
        expect((await a.query(ROOM, { limit: 10, end: new Date('2021-01-01T00:00:00Z') })).entries.map((e) => e.stanzaId))
          .to.deep.equal(['old0', 'old1', 'old2', 'older0']);
        await exactSizes(db, a);
        expect(await moveDefaultPartitionRows(db)).to.deep.equal({ moved: 0, quarters: 0 });
      });

      it('folds the size deltas only when asked (migration 15): a write appends its deltas and folds none', async function () {
        const db = await open(this);
        await migrate(db);
        const a = createSqlStores(db).archive;
        const deltas = async () => Number((await db.query<{ n: unknown }>('SELECT count(*) AS n FROM archive_count_delta'))[0]!.n);
        // Before, one statement in 20 folded every delta: 200 statements all without a fold, 1 in 28,000.
        for (let i = 0; i < 200; i++) await a.write(entries(1, 0, [ROOM], `one${i}-`));
        expect(await deltas()).to.equal(200);
        const before = await a.sizes([ROOM]);
        expect(before.get(ROOM)?.messages).to.equal(200);
        await a.foldCounts();
        expect(await deltas()).to.equal(0);
        expect(await a.sizes([ROOM])).to.deep.equal(before);
        await exactSizes(db, a);
      });

      it('keeps counts and bytes exact under concurrent writers to one archive', async function () {
        const db = await open(this);
        await migrate(db);
        const a = createSqlStores(db).archive;
        // 8 writers, 25 batches each, most rows in one archive, deletes and rewrites among them; folds
        // of the deltas all the while, as a running node makes them.
        let writing = true;
        const folding = (async () => { while (writing) await a.foldCounts(); })();
        await Promise.all(Array.from({ length: 8 }, async (_, w) => {
          for (let b = 0; b < 25; b++) {
            await a.append(entries(20, 0, [ROOM, ROOM, ROOM, OTHER], `w${w}b${b}-`));
            if (b % 10 === 9) await a.deleteBefore(ROOM, new Date(NOW + DAY), 3);
            if (b % 10 === 5) await a.rewrite(ROOM, [{ stanzaId: `w${w}b${b}-0`, stanza: '<message>x</message>', body: 'x', retracted: false }]);
          }
        }));
        writing = false;
        await folding;
        await exactSizes(db, a);
        expect((await a.query(ROOM, { limit: 1 })).count).to.equal(Number((await db.query<{ n: unknown }>('SELECT count(*) AS n FROM archive WHERE archive = $1', [ROOM]))[0]?.n));
        // Folding the deltas keeps the same sizes.
        await a.foldCounts();
        await exactSizes(db, a);
        await db.query('TRUNCATE archive');
        expect((await a.sizes([ROOM])).size).to.equal(0);
      });
    });
  }
});

async function failure(p: Promise<unknown>): Promise<string> {
  try { await p; } catch (e) { return (e as Error).message; }
  throw new Error('expected a failure');
}

describe('perch archive (embedded database)', function () {
  this.timeout(60_000);
  let dir: string;
  const run = async (args: string[]) => {
    const out: string[] = [];
    const io: Io = { out: (t) => out.push(t), err: () => {}, readSecret: async () => '' };
    const code = await archiveMain({ ...defaultConfig(), dataDir: dir, databaseUrl: null }, args, io);
    return { code, out: out.join('') };
  };
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'perch-archive-')); });
  after(async () => { await rm(dir, { recursive: true, force: true }); });

  it('lists the partitions, expires before a date, and leaves a database a running server holds alone', async function () {
    const listed = await run(['partitions']);
    expect(listed.code).to.equal(0);
    expect(listed.out).to.include(partitionName(partitionStart(new Date())));
    expect(listed.out).to.include('archive_p_default');
    expect((await run(['partition'])).out).to.include('partitioned already');
    expect((await run(['reindex'])).out).to.include('keyed by integer already');
    expect((await run(['expire', '--before', '2020-01-01'])).out).to.match(/^dropped 0 partition\(s\), deleted 0 more/);
    expect(await failure(run(['expire']))).to.match(/--before/);
    expect(listed.out).to.not.include('archive_p201901');
    // Before a bulk load of older history: its quarters made, up to today's.
    const older = await run(['partitions', '--from', '2019-02-03']);
    expect(older.code).to.equal(0);
    for (const q of ['archive_p201901', 'archive_p201904', 'archive_p202310']) expect(older.out).to.include(q);
    expect(await failure(run(['partitions', '--from', 'someday']))).to.match(/--from takes a DATE/);
    // Older history loaded in SQL without its quarters first: its rows moved into them, and said so.
    // (Straight into the database: opening the stores would migrate, and a start moves so few itself.)
    const raw = await openPglite(join(dir, 'pglite'));
    await raw.query(`INSERT INTO archive (archive, stanza_id, stamp, from_jid, body, stanza)
      VALUES ('${ROOM}', 'x1', '2015-03-01', '${ROOM}/a', 'x', '<message/>'), ('${ROOM}', 'x2', '2015-03-02', '${ROOM}/a', 'y', '<message/>')`);
    await raw.close();
    const moved = await run(['partitions']);
    expect(moved.out).to.include('moved 2 message(s) from the default partition into 1 quarter(s)');
    expect(moved.out).to.match(/archive_p201501\t.*\n/);
    // Another live process's pid in the data directory: a server holds it.
    await mkdir(dir, { recursive: true });
    await writeFile(pidPath(dir), String(process.ppid));
    expect(await failure(run(['partitions']))).to.match(/stop it first/);
  });
});
