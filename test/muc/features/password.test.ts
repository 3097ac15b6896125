import { expect } from 'chai';
import { sharedKit, createRoom, submitConfig, conditionOf, statusesOf, type RoomKit } from '../kit.js';

describe('room feature: password', () => {
  let kit: RoomKit;
  before(async function () { this.timeout(60000); kit = await sharedKit(); });

  it('asks for the password (not-authorized) and admits with it', async () => {
    const owner = await kit.client('pw-owner@localhost');
    await createRoom(owner, 'pw1', { 'muc#roomconfig_passwordprotectedroom': '1', 'muc#roomconfig_roomsecret': 'sesame' });
    const guest = await kit.client('pw-guest@localhost');
    expect(conditionOf(await guest.join('pw1', 'guest'))).to.equal('not-authorized');
    expect(conditionOf(await guest.join('pw1', 'guest', { password: 'wrong' }))).to.equal('not-authorized');
    expect(statusesOf(await guest.join('pw1', 'guest', { password: 'sesame' }))).to.include(110);
  });

  it('refuses protection without a password (not-acceptable)', async () => {
    const owner = await kit.client('pw2-owner@localhost');
    await owner.join('pw2', 'owner');
    let refusal = '';
    try { await submitConfig(owner, 'pw2', { 'muc#roomconfig_passwordprotectedroom': '1' }); } catch (e) { refusal = (e as Error).message; }
    expect(refusal).to.contain('not-acceptable');
  });
});
