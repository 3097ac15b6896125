import { expect } from 'chai';
import { sharedKit, createRoom, say, heard, settle, conditionOf, type RoomKit } from '../kit.js';

describe('room feature: flood-limit', () => {
  let kit: RoomKit;
  before(async function () { this.timeout(60000); kit = await sharedKit(); });

  it('refuses messages beyond the burst with resource-constraint (wait)', async () => {
    const owner = await kit.client('fl-owner@localhost');
    await createRoom(owner, 'fl1');
    // The kit's burst is 5.
    for (let i = 0; i < 8; i++) say(owner, 'fl1', `m${i}`);
    await heard(owner, 'm4');
    await settle(50);
    const refused = owner.inbox.filter((el) => el.name === 'message' && el.attrs.type === 'error');
    expect(refused.length).to.be.at.least(2);
    expect(conditionOf(refused[0]!)).to.equal('resource-constraint');
    expect(refused[0]!.getChild('error')!.attrs.type).to.equal('wait');
  });
});
