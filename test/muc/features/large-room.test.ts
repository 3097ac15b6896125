// Large rooms: above the service's participant update limit no join/leave presence is broadcast and a
// newcomer gets only its own presence; back to normal below 80 % of the limit.
import { expect } from 'chai';
import { Element } from '../../../protocol/xml.js';
import { governedKit, seedSettings, roomJid, settle, statusesOf, type RoomKit, type FakeClient } from '../kit.js';

describe('room feature: large rooms', () => {
  let kit: RoomKit;
  before(async function () { this.timeout(60000); kit = await governedKit(); });
  after(async () => { await seedSettings(kit, { participantUpdateLimit: 75 }); });

  it('stops broadcasting presence above the limit and resumes below 80 % of it', async () => {
    // A plain room on the governed service (created before categories or by an admin): the limit is the service's.
    await kit.server.stores.rooms.put({
      service: 'conference.localhost', name: 'lg-room', config: { persistent: true, public: true }, affiliations: {}, subject: null, createdAt: new Date(), persistent: true,
    });
    await seedSettings(kit, { participantUpdateLimit: 5 });
    const clients: FakeClient[] = [];
    for (let i = 1; i <= 5; i++) {
      const c = await kit.client(`lg-${i}@localhost`);
      const self = await c.join('lg-room', `u${i}`);
      expect(statusesOf(self)).to.include(110);
      clients.push(c);
    }
    await settle(50);
    // At the limit (5): still normal; the fifth got the four others.
    const fifth = clients[4]!;
    expect(fifth.inbox.filter((el) => el.name === 'presence' && !statusesOf(el).includes(110)).length).to.equal(4);
    const first = clients[0]!;
    first.clear();
    // The sixth is above it: nobody hears of it, and it hears of nobody.
    const sixth = await kit.client('lg-6@localhost');
    await sixth.join('lg-room', 'u6');
    await settle(50);
    expect(sixth.inbox.filter((el) => el.name === 'presence' && !statusesOf(el).includes(110))).to.deep.equal([]);
    expect(first.inbox.filter((el) => el.name === 'presence')).to.deep.equal([]);
    // Down to 4 (not below 80 % of 5 = 4): leaves are still silent.
    for (const c of [sixth, clients[4]!]) c.send(new Element('presence', { to: `${roomJid('lg-room')}/x`, type: 'unavailable' }));
    await settle(50);
    expect(first.inbox.filter((el) => el.name === 'presence')).to.deep.equal([]);
    // Down to 3 (< 4): normal again; the next leave is broadcast.
    clients[3]!.send(new Element('presence', { to: `${roomJid('lg-room')}/x`, type: 'unavailable' }));
    await settle(50);
    first.clear();
    clients[2]!.send(new Element('presence', { to: `${roomJid('lg-room')}/x`, type: 'unavailable' }));
    const left = await first.next((el) => el.name === 'presence' && el.attrs.type === 'unavailable');
    expect(left.attrs.from).to.equal(`${roomJid('lg-room')}/u3`);
    const back = await kit.client('lg-7@localhost');
    await back.join('lg-room', 'u7');
    await settle(50);
    expect(back.inbox.filter((el) => el.name === 'presence' && !statusesOf(el).includes(110)).map((el) => el.attrs.from)).to.have.members([`${roomJid('lg-room')}/u1`, `${roomJid('lg-room')}/u2`]);
  });
});
