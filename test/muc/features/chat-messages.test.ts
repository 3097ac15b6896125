// Stories and alerts pass through rooms and are archived as sent; bodies are at most 16,000
// characters, a story's 200,000.
import { expect } from 'chai';
import { Element } from '../../../protocol/xml.js';
import { sharedKit, createRoom, say, heard, settle, roomJid, conditionOf, type RoomKit } from '../kit.js';

const MSG = 'urn:x-perch:msg:0';

describe('room feature: chat messages (stories, alerts, body limits)', () => {
  let kit: RoomKit;
  before(async function () { this.timeout(60000); kit = await sharedKit(); });

  it('passes a story and an alert through and keeps them in the archive', async () => {
    const owner = await kit.client('cm-owner@localhost');
    await createRoom(owner, 'cm1');
    const guest = await kit.client('cm-guest@localhost');
    await guest.join('cm1', 'guest');
    say(owner, 'cm1', 'a long story', (m) => { m.c('story', { xmlns: MSG }).c('title').t('Quarterly'); });
    const story = await heard(guest, 'a long story');
    expect(story.getChild('story', MSG)!.getChildText('title')).to.equal('Quarterly');
    say(owner, 'cm1', 'fire drill', (m) => { m.c('alert', { xmlns: MSG }); });
    expect((await heard(guest, 'fire drill')).getChild('alert', MSG)).to.not.equal(undefined);
    await settle(50);
    const archived = await kit.server.stores.archive.lastN(roomJid('cm1'), 10);
    expect(archived.some((e) => e.stanza.includes('<title>Quarterly</title>'))).to.equal(true);
    expect(archived.some((e) => e.stanza.includes(`<alert xmlns='${MSG}'`) || e.stanza.includes(`<alert xmlns="${MSG}"`))).to.equal(true);
  });

  it('refuses a body over 16,000 characters (not-acceptable), and a story body over 200,000', async () => {
    const owner = await kit.client('cm2-owner@localhost');
    await createRoom(owner, 'cm2');
    say(owner, 'cm2', 'x'.repeat(16_000));
    await heard(owner, 'x'.repeat(16_000));
    say(owner, 'cm2', 'y'.repeat(16_001));
    const refused = await owner.next((el) => el.name === 'message' && el.attrs.type === 'error');
    expect(conditionOf(refused)).to.equal('not-acceptable');
    say(owner, 'cm2', 'z'.repeat(100_000), (m) => { m.c('story', { xmlns: MSG }).c('title').t('Long'); });
    await heard(owner, 'z'.repeat(100_000));
    say(owner, 'cm2', 'w'.repeat(200_001), (m) => { m.c('story', { xmlns: MSG }).c('title').t('Too long'); });
    expect(conditionOf(await owner.next((el) => el.name === 'message' && el.attrs.type === 'error'))).to.equal('not-acceptable');
  });

  it('announces the message namespace in the room disco#info', async () => {
    const owner = await kit.client('cm3-owner@localhost');
    await createRoom(owner, 'cm3');
    const info = await owner.iq('get', roomJid('cm3'), new Element('query', { xmlns: 'http://jabber.org/protocol/disco#info' }));
    expect(info.getChild('query')!.getChildren('feature').map((f) => f.attrs.var)).to.include(MSG);
  });
});
