import { expect } from 'chai';
import { Element } from '../../../protocol/xml.js';
import { sharedKit, createRoom, say, heard, settle, roomJid, SERVICE, type RoomKit } from '../kit.js';

describe('room feature: history', () => {
  let kit: RoomKit;
  before(async function () { this.timeout(60000); kit = await sharedKit(); });

  it('sends a joiner the recent messages, oldest first, delayed by the room, limited by maxstanzas', async () => {
    const owner = await kit.client('hi-owner@localhost');
    await createRoom(owner, 'hi1');
    for (const body of ['one', 'two', 'three']) say(owner, 'hi1', body);
    await heard(owner, 'three');
    const guest = await kit.client('hi-guest@localhost');
    await guest.join('hi1', 'guest');
    await settle(50);
    const history = guest.inbox.filter((el) => el.name === 'message' && el.getChildText('body'));
    expect(history.map((m) => m.getChildText('body'))).to.deep.equal(['one', 'two', 'three']);
    expect(history[0]!.getChild('delay', 'urn:xmpp:delay')!.attrs.from).to.equal(roomJid('hi1'));

    const late = await kit.client('hi-late@localhost');
    const p = new Element('presence', { to: `${roomJid('hi1')}/late` });
    p.c('x', { xmlns: 'http://jabber.org/protocol/muc' }).c('history', { maxstanzas: '1' });
    late.send(p);
    await late.next((el) => el.name === 'message' && el.getChild('subject') !== undefined);
    expect(late.inbox.filter((el) => el.name === 'message' && el.getChildText('body')).map((m) => m.getChildText('body'))).to.deep.equal(['three']);
  });

  it('fills its cache from the archive when a room is loaded again', async () => {
    const owner = await kit.client('hi2-owner@localhost');
    await createRoom(owner, 'hi2', { 'muc#roomconfig_persistentroom': '1' });
    say(owner, 'hi2', 'kept');
    await heard(owner, 'kept');
    owner.send(new Element('presence', { to: `${roomJid('hi2')}/owner`, type: 'unavailable' }));
    await settle(100);
    // Unload it as the service does after idling, then join again.
    const service = kit.service as unknown as { rooms: Map<string, unknown>; unload(room: unknown, forget: boolean): void };
    service.unload(kit.service.loadedRoom('hi2'), false);
    await settle(100);
    expect(kit.service.loadedRoom('hi2')).to.equal(undefined);
    expect(await kit.server.stores.rooms.get(SERVICE, 'hi2')).to.not.equal(null);
    const guest = await kit.client('hi2-guest@localhost');
    await guest.join('hi2', 'guest');
    await heard(guest, 'kept');
  });
});
