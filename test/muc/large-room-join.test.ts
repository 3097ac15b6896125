// A join to a large room does work that does not grow with the room: above the participant update limit
// nobody's presence is shown to the newcomer, and deciding that once per occupant made a join O(n) and
// filling a room of 16,000 O(n²) (bench/sizing.mjs).
import { expect } from 'chai';
import { governedKit, seedSettings, settle, statusesOf, type RoomKit } from './kit.js';

describe('large room: the cost of a join', () => {
  let kit: RoomKit;
  before(async function () { this.timeout(60000); kit = await governedKit(); });
  after(async () => { await seedSettings(kit, { participantUpdateLimit: 75 }); });

  it('asks whose presence is shown a fixed number of times per join, not once per occupant', async () => {
    await kit.server.stores.rooms.put({
      service: 'conference.localhost', name: 'lj-room', config: { persistent: true, public: true }, affiliations: {}, subject: null, createdAt: new Date(), persistent: true,
    });
    await seedSettings(kit, { participantUpdateLimit: 5 });
    let asked = 0;
    // Ahead of every other answer (large-room's included), answering nothing: it only counts.
    kit.service.hooks.on('presence/broadcast', () => { asked++; return undefined; }, 1000);
    const perJoin: number[] = [];
    for (let i = 1; i <= 60; i++) {
      const c = await kit.client(`lj-${i}@localhost`);
      const before = asked;
      const self = await c.join('lj-room', `u${i}`);
      perJoin.push(asked - before);
      expect(statusesOf(self)).to.include(110);
      if (i > 6) expect(c.inbox.filter((el) => el.name === 'presence' && !statusesOf(el).includes(110))).to.deep.equal([]);
    }
    await settle(20);
    // Before: the 60th join asked about each of the 59 others (and the occupant's own role).
    expect(Math.max(...perJoin.slice(10))).to.be.at.most(5);
    expect(perJoin[59]).to.equal(perJoin[20]);
  });
});
