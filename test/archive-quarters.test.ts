// The quarters ahead are made while the server runs (src/modules/archive-quarters.ts), not only at
// start: a server up past the quarters made at its start would write into the default partition.
import { expect } from 'chai';
import { startUnitServer } from './unit-server.js';
import { keepQuartersAhead } from '../src/modules/archive-quarters.js';
import { partitionName, partitionStart } from '../storage/archive-partitions.js';
import { createLogger } from '../src/log.js';
import type { Server } from '../src/context.js';

/** The module's warnings at a check after `change`, on a server whose check before it warned of nothing. */
async function warningsAfter(change: (server: Server) => Promise<void>): Promise<Record<string, unknown>[]> {
  const { server, stop } = await startUnitServer('perch-quarters-');
  try {
    const lines: Record<string, unknown>[] = [];
    const log = createLogger('info', {}, (l) => lines.push(JSON.parse(l) as Record<string, unknown>));
    const watched: Server = Object.assign(Object.create(server) as Server, { log });
    await keepQuartersAhead(watched);
    expect(lines.filter((l) => l.level === 'warn')).to.deep.equal([]);
    await change(server);
    await keepQuartersAhead(watched);
    return lines.filter((l) => l.level === 'warn');
  } finally {
    await stop();
  }
}

describe('archive quarters made ahead while running', () => {
  it('makes again a coming quarter that is missing, and leaves the others as they are', async function () {
    this.timeout(30000);
    const { server, stop } = await startUnitServer('perch-quarters-');
    try {
      const db = server.stores.db;
      const farthest = partitionName(partitionStart(new Date(), 2));
      const exists = async (name: string) => (await db.query(`SELECT to_regclass($1) IS NOT NULL AS x`, [name]))[0]!.x;
      expect(await exists(farthest)).to.equal(true);
      // What a server started two quarters ago sees now: the quarter after its last one not made yet.
      await db.query(`DROP TABLE ${farthest}`);
      expect(await exists(farthest)).to.equal(false);
      await keepQuartersAhead(server);
      expect(await exists(farthest)).to.equal(true);
      expect(await exists(partitionName(partitionStart(new Date())))).to.equal(true);
    } finally {
      await stop();
    }
  });

  it('warns, with their count and the command that moves them, of messages waiting in the default partition', async function () {
    this.timeout(30000);
    const warned = await warningsAfter(async (server) => {
      // A message stamped past the quarters made ahead (an import from a clock years fast): no quarter holds it.
      const stamp = new Date(partitionStart(new Date(), 5).getTime() + 86_400_000);
      await server.stores.db.query(`INSERT INTO archive (archive, stanza_id, stamp, from_jid, body, stanza) VALUES ('a@example.com', 'far', $1, 'b@example.com', 'x', '<message/>')`, [stamp.toISOString()]);
    });
    expect(warned).to.have.length(1);
    expect(warned[0]!.msg).to.match(/default partition.*perch archive partitions/);
    expect(warned[0]!.messages).to.equal(1);
  });

  it('warns of indexes still led by the JID (an archive too large to key at migration 16), naming perch archive reindex', async function () {
    this.timeout(30000);
    const warned = await warningsAfter(async (server) => {
      // The (akey, id) index as migration 16 leaves a large archive's: on the JID.
      await server.stores.db.query('DROP INDEX archive_archive_id');
      await server.stores.db.query('CREATE INDEX archive_archive_id ON archive (archive, id)');
    });
    expect(warned).to.have.length(1);
    expect(warned[0]!.msg).to.match(/led by each archive's JID.*perch archive reindex/);
  });
});
