// Rooms stored before the split into features are read the same: option keys, and idSalt, locked,
// nicks and hats kept in the record's config.
import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { sharedKit, roomJid, conditionOf, settle, SERVICE, type RoomKit } from './kit.js';

describe('room records', () => {
  let kit: RoomKit;
  before(async function () { this.timeout(60000); kit = await sharedKit(); });

  it('reads a stored room: options, occupant-id salt, reserved nicks and hats', async () => {
    await kit.server.stores.rooms.put({
      service: SERVICE, name: 'stored', persistent: true, createdAt: new Date('2026-01-01T00:00:00Z'),
      subject: { text: 'Old news', nick: 'boss', stamp: new Date('2026-01-02T00:00:00Z') },
      affiliations: { 'rec-boss@localhost': 'owner', 'rec-mem@localhost': 'member' },
      config: {
        name: 'Stored room', persistent: true, membersOnly: true, moderated: false, whois: 'moderators', idSalt: 'salty',
        locked: false, nicks: { 'rec-mem@localhost': 'Mem' }, hats: { 'rec-mem@localhost': [{ uri: 'urn:x:h', title: 'H' }] },
        unknownKey: 42,
      },
    });
    const stranger = await kit.client('rec-stranger@localhost');
    expect(conditionOf(await stranger.join('stored', 'x'))).to.equal('registration-required');
    const member = await kit.client('rec-mem@localhost');
    const self = await member.join('stored', 'Mem');
    const expected = createHash('sha256').update('salty').update('\0').update('rec-mem@localhost').digest('base64');
    expect(self.getChild('occupant-id', 'urn:xmpp:occupant-id:0')!.attrs.id).to.equal(expected);
    expect(self.getChild('hats', 'urn:xmpp:hats:0')!.getChild('hat')!.attrs.uri).to.equal('urn:x:h');
    await settle(50);
    expect(member.inbox.find((el) => el.getChild('subject'))!.getChildText('subject')).to.equal('Old news');

    // Saved back with the same keys.
    const room = kit.service.loadedRoom('stored')!;
    room.save();
    await settle(100);
    const again = (await kit.server.stores.rooms.get(SERVICE, 'stored'))!;
    expect(again.config).to.include({ name: 'Stored room', membersOnly: true, idSalt: 'salty', locked: false });
    expect(again.config.nicks).to.deep.equal({ 'rec-mem@localhost': 'Mem' });
    expect(again.config.hats).to.deep.equal({ 'rec-mem@localhost': [{ uri: 'urn:x:h', title: 'H' }] });
    expect(again.persistent).to.equal(true);
    expect(roomJid('stored')).to.equal(room.jid);
  });
});
