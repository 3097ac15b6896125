import { expect } from 'chai';
import { sharedKit, createRoom, conditionOf, type RoomKit } from '../kit.js';

describe('room feature: max-users', () => {
  let kit: RoomKit;
  before(async function () { this.timeout(60000); kit = await sharedKit(); });

  it('turns newcomers away from a full room (service-unavailable)', async () => {
    const owner = await kit.client('mx-owner@localhost');
    await createRoom(owner, 'mx1', { 'muc#roomconfig_maxusers': '10' });
    for (let i = 1; i < 10; i++) await (await kit.client(`mx-u${i}@localhost`)).join('mx1', `u${i}`);
    const late = await kit.client('mx-late@localhost');
    expect(conditionOf(await late.join('mx1', 'late'))).to.equal('service-unavailable');
  });
});
