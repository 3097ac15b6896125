import { expect } from 'chai';
import { sharedKit, createRoom, settle, type RoomKit } from '../kit.js';

describe('room feature: presence-broadcast', () => {
  let kit: RoomKit;
  before(async function () { this.timeout(60000); kit = await sharedKit(); });

  it('broadcasts only the presence of the configured roles', async () => {
    const owner = await kit.client('pb-owner@localhost');
    await createRoom(owner, 'pb1', { 'muc#roomconfig_presencebroadcast': ['moderator'] });
    const guest = await kit.client('pb-guest@localhost');
    await guest.join('pb1', 'guest');
    await settle(50);
    expect(owner.inbox.filter((el) => el.name === 'presence' && el.attrs.from?.endsWith('/guest'))).to.have.length(0);
    // The guest still sees the moderator.
    expect(guest.inbox.some((el) => el.name === 'presence' && el.attrs.from?.endsWith('/owner'))).to.equal(true);
  });
});
