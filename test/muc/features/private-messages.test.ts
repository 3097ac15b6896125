import { expect } from 'chai';
import { Element } from '../../../protocol/xml.js';
import { sharedKit, createRoom, roomJid, conditionOf, type RoomKit } from '../kit.js';

describe('room feature: private-messages', () => {
  let kit: RoomKit;
  before(async function () { this.timeout(60000); kit = await sharedKit(); });

  it('relays private messages, unless the room allows none (forbidden)', async () => {
    const owner = await kit.client('pm-owner@localhost');
    await createRoom(owner, 'pm1');
    const guest = await kit.client('pm-guest@localhost');
    await guest.join('pm1', 'guest');
    guest.send(new Element('message', { to: `${roomJid('pm1')}/owner`, type: 'chat' }).append(new Element('body').t('psst')));
    const got = await owner.next((el) => el.name === 'message' && el.getChildText('body') === 'psst');
    expect(got.attrs.from).to.equal(`${roomJid('pm1')}/guest`);

    const { submitConfig } = await import('../kit.js');
    await submitConfig(owner, 'pm1', { 'muc#roomconfig_allowpm': 'none' });
    guest.send(new Element('message', { to: `${roomJid('pm1')}/owner`, type: 'chat' }).append(new Element('body').t('again')));
    const refused = await guest.next((el) => el.name === 'message' && el.attrs.type === 'error');
    expect(conditionOf(refused)).to.equal('forbidden');
  });
});
