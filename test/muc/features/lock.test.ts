import { expect } from 'chai';
import { sharedKit, submitConfig, conditionOf, statusesOf, type RoomKit } from '../kit.js';

describe('room feature: lock', () => {
  let kit: RoomKit;
  before(async function () { this.timeout(60000); kit = await sharedKit(); });

  it('keeps a new room locked (item-not-found) until the owner configures it', async () => {
    const owner = await kit.client('lk-owner@localhost');
    expect(statusesOf(await owner.join('lk1', 'owner'))).to.include(201);
    const guest = await kit.client('lk-guest@localhost');
    expect(conditionOf(await guest.join('lk1', 'guest'))).to.equal('item-not-found');
    await submitConfig(owner, 'lk1', {});
    expect(statusesOf(await guest.join('lk1', 'guest'))).to.include(110);
  });

  it('does not lock a room created by a groupchat 1.0 join', async () => {
    const owner = await kit.client('lk2-owner@localhost');
    await owner.join('lk2', 'owner', { plain: true });
    const guest = await kit.client('lk2-guest@localhost');
    expect(statusesOf(await guest.join('lk2', 'guest'))).to.include(110);
  });
});
