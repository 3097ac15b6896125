import { expect } from 'chai';
import { Element } from '../../../protocol/xml.js';
import { sharedKit, createRoom, roomJid, type RoomKit } from '../kit.js';

function invite(room: string, to: string): Element {
  const m = new Element('message', { to: roomJid(room) });
  m.c('x', { xmlns: 'http://jabber.org/protocol/muc#user' }).c('invite', { to }).c('reason').t('join us');
  return m;
}

describe('room feature: invitations', () => {
  let kit: RoomKit;
  before(async function () { this.timeout(60000); kit = await sharedKit(); });

  it('sends the invitation from the room, naming the inviter by occupant JID, and relays a decline', async () => {
    const owner = await kit.client('iv-owner@localhost');
    await createRoom(owner, 'iv1', { 'muc#roomconfig_passwordprotectedroom': '1', 'muc#roomconfig_roomsecret': 'pw' });
    const friend = await kit.client('iv-friend@localhost');
    owner.send(invite('iv1', 'iv-friend@localhost'));
    const got = await friend.next((el) => el.name === 'message' && el.attrs.from === roomJid('iv1'));
    const x = got.getChild('x', 'http://jabber.org/protocol/muc#user')!;
    expect(x.getChild('invite')!.attrs.from).to.equal(`${roomJid('iv1')}/owner`);
    expect(x.getChildText('password')).to.equal('pw');
    expect(got.getChild('x', 'jabber:x:conference')!.attrs.jid).to.equal(roomJid('iv1'));

    const decline = new Element('message', { to: roomJid('iv1') });
    decline.c('x', { xmlns: 'http://jabber.org/protocol/muc#user' }).c('decline', { to: `${roomJid('iv1')}/owner` });
    friend.send(decline);
    const back = await owner.next((el) => el.name === 'message' && el.getChild('x', 'http://jabber.org/protocol/muc#user')?.getChild('decline') !== undefined);
    expect(back.getChild('x', 'http://jabber.org/protocol/muc#user')!.getChild('decline')!.attrs.from).to.equal('iv-friend@localhost');
  });

  it('makes the invitee a member of a members-only room', async () => {
    const owner = await kit.client('iv2-owner@localhost');
    await createRoom(owner, 'iv2', { 'muc#roomconfig_membersonly': '1' });
    owner.send(invite('iv2', 'iv2-friend@localhost'));
    const friend = await kit.client('iv2-friend@localhost');
    await owner.next((el) => el.name === 'message' && el.getChild('x', 'http://jabber.org/protocol/muc#user')?.getChild('item')?.attrs.affiliation === 'member');
    expect(kit.service.loadedRoom('iv2')!.affiliations.get('iv2-friend@localhost')).to.equal('member');
    expect((await friend.join('iv2', 'friend')).attrs.type).to.equal(undefined);
  });
});
