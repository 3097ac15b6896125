import { expect } from 'chai';
import { Element } from '../../../protocol/xml.js';
import { sharedKit, createRoom, roomJid, settle, SERVICE, type RoomKit } from '../kit.js';

describe('room feature: persistent', () => {
  let kit: RoomKit;
  before(async function () { this.timeout(60000); kit = await sharedKit(); });

  it('keeps a persistent room when it empties, and lets a temporary one go', async () => {
    const owner = await kit.client('ps-owner@localhost');
    await createRoom(owner, 'ps-kept', { 'muc#roomconfig_persistentroom': '1' });
    await createRoom(owner, 'ps-gone', {});
    for (const room of ['ps-kept', 'ps-gone']) owner.send(new Element('presence', { to: `${roomJid(room)}/owner`, type: 'unavailable' }));
    await settle(300);
    expect((await kit.server.stores.rooms.get(SERVICE, 'ps-kept'))?.persistent).to.equal(true);
    expect(await kit.server.stores.rooms.get(SERVICE, 'ps-gone')).to.equal(null);
  });
});
