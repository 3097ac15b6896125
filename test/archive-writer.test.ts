// The group commit (src/archive-writer.ts) on the embedded database: entries queued in one turn share
// one statement, and an entry the database refuses (its stanza id already stored in that archive, as
// when a very old resend slips past a room's memory) fails alone: the others of its batch commit.
import { expect } from 'chai';
import { openPglite } from '../storage/db-pglite.js';
import { migrate } from '../storage/migrations.js';
import { createSqlStores } from '../storage/sql-stores.js';
import { ArchiveWriter } from '../src/archive-writer.js';
import type { ArchiveEntry, DataStores, Db } from '../storage/types.js';

function entry(stanzaId: string, body: string): ArchiveEntry {
  return {
    archive: 'r@conference.localhost', stanzaId, stamp: new Date(), fromJid: 'r@conference.localhost/ann', realJid: 'ann@localhost',
    body, stanza: `<message type='groupchat'><body>${body}</body></message>`,
  };
}

describe('archive writer (group commit)', () => {
  let db: Db;
  let stores: DataStores;
  before(async () => {
    db = await openPglite(null);
    await migrate(db);
    stores = createSqlStores(db);
  });
  after(async () => { await db.close(); });

  it('writes what is queued in one turn as one batch', async () => {
    const writer = new ArchiveWriter(stores.archive);
    await Promise.all([writer.append(entry('b1', 'one')), writer.append(entry('b2', 'two')), writer.append(entry('b3', 'three'))]);
    expect(writer.batches).to.equal(1);
    expect(writer.written).to.equal(3);
  });

  it('refuses only the entry whose stanza id is already stored; the rest of its batch commits', async () => {
    const writer = new ArchiveWriter(stores.archive);
    await writer.append(entry('d1', 'first'));
    const results = await Promise.allSettled([
      writer.append(entry('d2', 'before')),
      writer.append(entry('d1', 'again')),
      writer.append(entry('d3', 'after')),
    ]);
    expect(results.map((r) => r.status)).to.deep.equal(['fulfilled', 'rejected', 'fulfilled']);
    const rows = await db.query<{ stanza_id: string; body: string }>(
      "SELECT stanza_id, body FROM archive WHERE archive = 'r@conference.localhost' AND stanza_id IN ('d1', 'd2', 'd3') ORDER BY id");
    expect(rows.map((r) => `${r.stanza_id}:${r.body}`)).to.deep.equal(['d1:first', 'd2:before', 'd3:after']);
  });
});
