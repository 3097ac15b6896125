import { expect } from 'chai';
import { Element } from '../../../protocol/xml.js';
import { sharedKit, createRoom, roomJid, conditionOf, type RoomKit } from '../kit.js';

describe('room feature: self-ping', () => {
  let kit: RoomKit;
  before(async function () { this.timeout(60000); kit = await sharedKit(); });

  it('answers an occupant\'s ping to its own occupant JID itself, and not-acceptable to a non-occupant', async () => {
    const owner = await kit.client('sp-owner@localhost');
    await createRoom(owner, 'sp1');
    const pong = await owner.iq('get', `${roomJid('sp1')}/owner`, new Element('ping', { xmlns: 'urn:xmpp:ping' }));
    expect(pong.attrs.type).to.equal('result');
    expect(pong.attrs.from).to.equal(`${roomJid('sp1')}/owner`);
    const outsider = await kit.client('sp-outsider@localhost');
    expect(conditionOf(await outsider.iq('get', `${roomJid('sp1')}/owner`, new Element('ping', { xmlns: 'urn:xmpp:ping' })))).to.equal('not-acceptable');
  });
});
