// The archive's full-text configuration: 'simple' by default (words as written, any language), a
// stemming language on request, switched on an existing archive without losing what it holds.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { openPglite } from '../storage/db-pglite.js';
import { openPostgres } from '../storage/db-postgres.js';
import { migrate, setFulltextLanguage } from '../storage/migrations.js';
import { createSqlStores } from '../storage/sql-stores.js';
import type { Db } from '../storage/types.js';

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://root@127.0.0.1:5432/test';

async function postgresReachable(): Promise<string | null> {
  const c = new pg.Client({ connectionString: DATABASE_URL, connectionTimeoutMillis: 3000 });
  try {
    await c.connect();
    return null;
  } catch (e) {
    return (e as Error).message;
  } finally {
    await c.end().catch(() => {});
  }
}

const backends: { name: string; open(): Promise<{ db: Db; drop(): Promise<void> }> }[] = [
  { name: 'PGlite', open: async () => { const db = await openPglite(null); return { db, drop: async () => {} }; } },
  {
    name: 'PostgreSQL',
    open: async () => {
      const schema = `perch_fts_${randomBytes(4).toString('hex')}`;
      const db = await openPostgres(DATABASE_URL, { schema });
      return { db, drop: async () => { await db.query(`DROP SCHEMA ${schema} CASCADE`); } };
    },
  },
];

for (const backend of backends) {
  describe(`archive full-text language (${backend.name})`, function () {
    this.timeout(60000);
    let db: Db;
    let drop: () => Promise<void>;

    before(async function () {
      if (backend.name === 'PostgreSQL') {
        const why = await postgresReachable();
        if (why) {
          if (process.env.CI === 'true') throw new Error(`PostgreSQL is required in CI: ${why}`);
          this.skip();
        }
      }
      ({ db, drop } = await backend.open());
      await migrate(db);
    });
    after(async () => {
      await drop?.();
      await db?.close();
    });

    const entry = (id: string, body: string) => ({
      archive: 'room@conference.localhost', stanzaId: id, stamp: new Date(), fromJid: 'room@conference.localhost/n',
      realJid: 'n@localhost', body, stanza: `<message><body>${body}</body></message>`,
    });

    it('matches words as written with the default configuration, and stems after switching to english', async () => {
      let stores = createSqlStores(db);
      await stores.archive.append([entry('a', 'The runners were running late'), entry('b', 'nothing here')]);
      const q = (text: string) => stores.archive.query('room@conference.localhost', { fulltext: text, limit: 10 });
      expect((await q('run')).count).to.equal(0);
      expect((await q('running')).entries.map((e) => e.stanzaId)).to.deep.equal(['a']);

      const rebuilt: string[] = [];
      await setFulltextLanguage(db, 'english', (from, to) => rebuilt.push(`${from}->${to}`));
      expect(rebuilt).to.deep.equal(['simple->english']);
      stores = createSqlStores(db, { fulltextLanguage: 'english' });
      expect((await q('run')).entries.map((e) => e.stanzaId)).to.deep.equal(['a']);
      // New rows are indexed the same way; a second call with the same language changes nothing.
      await stores.archive.append([entry('c', 'she runs')]);
      await setFulltextLanguage(db, 'english', () => rebuilt.push('again'));
      expect(rebuilt).to.have.length(1);
      expect((await q('running')).entries.map((e) => e.stanzaId)).to.deep.equal(['c', 'a']);
      // The rebuilt index is keyed by the archive's key again, on every partition.
      const defs = await db.query<{ def: string }>(
        `SELECT pg_get_indexdef(i.indexrelid) AS def FROM pg_index i
          WHERE i.indrelid = to_regclass('archive') OR i.indrelid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = to_regclass('archive'))`);
      const gin = defs.map((d) => d.def).filter((d) => d.includes('USING gin'));
      expect(gin.length).to.be.greaterThan(1);
      for (const d of gin) expect(d).to.match(/USING gin \(akey, tsv\)/);
    });

    it('refuses a configuration PostgreSQL does not have', async () => {
      let err: Error | null = null;
      try {
        await setFulltextLanguage(db, 'klingon');
      } catch (e) {
        err = e as Error;
      }
      expect(err?.message).to.match(/no text search configuration named klingon/);
    });
  });
}
