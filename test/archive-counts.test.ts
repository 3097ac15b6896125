// The archive's size deltas folded by a running server (src/modules/archive-counts.ts, migration 15):
// within a couple of seconds of its writer's last batch, the sizes answering the same throughout.
import { expect } from 'chai';
import { startUnitServer } from './unit-server.js';
import { archiveWriter } from '../src/archive-writer.js';
import { COUNT_FOLD_MS } from '../src/modules/archive-counts.js';

describe('archive size deltas folded while running', () => {
  it('folds what its archive writer wrote within two seconds, and the sizes stay the same', async function () {
    this.timeout(30000);
    const { server, stop } = await startUnitServer('perch-counts-');
    try {
      const db = server.stores.db;
      const deltas = async () => Number((await db.query<{ n: unknown }>('SELECT count(*) AS n FROM archive_count_delta'))[0]!.n);
      const writer = archiveWriter(server);
      for (let i = 0; i < 30; i++) {
        await writer.append({
          archive: 'room@conference.localhost', stanzaId: `c${i}`, stamp: new Date(), fromJid: 'room@conference.localhost/a',
          realJid: 'a@localhost', body: `message ${i}`, stanza: `<message type="groupchat"><body>message ${i}</body></message>`,
        });
      }
      const sizes = await server.stores.archive.sizes(['room@conference.localhost']);
      expect(sizes.get('room@conference.localhost')?.messages).to.equal(30);
      const deadline = Date.now() + 2 * COUNT_FOLD_MS + 500;
      while ((await deltas()) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(await deltas()).to.equal(0);
      expect(await server.stores.archive.sizes(['room@conference.localhost'])).to.deep.equal(sizes);
    } finally {
      await stop();
    }
  });
});
