// The quarters ahead are made while the server runs (src/modules/archive-quarters.ts), not only at
// start: a server up past the quarters made at its start would write into the default partition.
import { expect } from 'chai';
import { startUnitServer } from './unit-server.js';
import { keepQuartersAhead } from '../src/modules/archive-quarters.js';
import { partitionName, partitionStart } from '../storage/archive-partitions.js';

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
});
