// The admission step (events.ts, MucService): async work before a room sees a stanza, in the room's
// order. A sender whose directory entries load slowly holds later stanzas for the room behind its own.
import { expect } from 'chai';
import { Element } from '../../protocol/xml.js';
import { governedKit, seedCategory, seedRoom, say, heard, statusesOf, roomJid, type RoomKit } from './kit.js';

describe('room admission', () => {
  let kit: RoomKit;
  before(async function () {
    this.timeout(60000);
    kit = await governedKit();
    await seedCategory(kit, { name: 'Ad Cat', allowed: ['domain:localhost'] });
    await seedRoom(kit, { room: 'ad-room', category: 'Ad Cat', privacy: 'open' });
  });

  it('a slow subject load does not reorder the room: later stanzas wait behind the join', async () => {
    const ann = await kit.client('ad-ann@localhost');
    await ann.join('ad-room', 'ann');
    ann.clear();
    const store = kit.server.stores.directory;
    const original = store.userEntries.bind(store);
    store.userEntries = async (users) => {
      if (users.includes('ad-slow@localhost')) await new Promise((r) => setTimeout(r, 300));
      return original(users);
    };
    try {
      const slow = await kit.client('ad-slow@localhost');
      const joined = slow.join('ad-room', 'slow');
      say(slow, 'ad-room', 'slow speaks');
      say(ann, 'ad-room', 'ann speaks after');
      expect(statusesOf(await joined)).to.include(110);
      // Sent right after the join: refused as from a non-occupant if it overtook the join.
      await heard(slow, 'slow speaks');
      await heard(ann, 'ann speaks after');
    } finally {
      store.userEntries = original;
    }
  });

  it('keeps the order ann saw: the join, then the slow sender\'s message, then ann\'s', async () => {
    const ann = await kit.client('ad-ann2@localhost');
    await ann.join('ad-room', 'ann2');
    ann.clear();
    const store = kit.server.stores.directory;
    const original = store.userEntries.bind(store);
    store.userEntries = async (users) => {
      if (users.includes('ad-slow2@localhost')) await new Promise((r) => setTimeout(r, 300));
      return original(users);
    };
    try {
      const slow = await kit.client('ad-slow2@localhost');
      slow.send(new Element('presence', { to: `${roomJid('ad-room')}/slow2` }).append(new Element('x', { xmlns: 'http://jabber.org/protocol/muc' })));
      say(slow, 'ad-room', 'first words');
      say(ann, 'ad-room', 'reply');
      await heard(ann, 'reply');
    } finally {
      store.userEntries = original;
    }
    const seen = ann.inbox.map((el) => (el.name === 'presence' ? `presence ${el.attrs.from?.split('/')[1]}` : `message ${el.getChildText('body') ?? ''}`));
    // heard() took 'reply' out of the inbox: what is left came before it.
    expect(seen.filter((s) => s !== 'presence ann2')).to.deep.equal(['presence slow2', 'message first words']);
  });
});
