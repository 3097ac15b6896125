import { expect } from 'chai';
import { Element } from '../../../protocol/xml.js';
import {
  sharedKit, governedKit, seedCategory, seedRoom, createRoom, say, heard, roomJid, conditionOf, settle, submitConfig, type RoomKit, type FakeClient,
} from '../kit.js';

const SID = 'urn:xmpp:sid:0';
const REACTIONS = 'urn:xmpp:reactions:0';
const CORRECT = 'urn:xmpp:message-correct:0';
const RETRACT = 'urn:xmpp:message-retract:1';
const REPLY = 'urn:xmpp:reply:0';

function stanzaIdOf(el: Element): string {
  return el.getChild('stanza-id', SID)!.attrs.id!;
}

/** Sends a bodyless groupchat message with one child, without a store hint. */
function send(client: FakeClient, room: string, child: Element, id?: string): void {
  const m = new Element('message', { to: roomJid(room), type: 'groupchat' });
  if (id) m.attrs.id = id;
  m.append(child);
  client.send(m);
}

function reaction(id: string, emoji: string): Element {
  const r = new Element('reactions', { xmlns: REACTIONS, id });
  r.c('reaction').t(emoji);
  return r;
}

function errorFor(client: FakeClient): Promise<Element> {
  return client.next((el) => el.name === 'message' && el.attrs.type === 'error');
}

async function archived(kit: RoomKit, room: string): Promise<{ stanzaId: string; stanza: string; retracted: boolean }[]> {
  return (await kit.server.stores.archive.query(roomJid(room), { limit: 100 })).entries;
}

describe('room feature: interactions', () => {
  let kit: RoomKit;
  before(async function () { this.timeout(60000); kit = await sharedKit(); });

  it('archives a reaction sent without a store hint, with a stanza id, and gives it to joiners as history', async () => {
    const owner = await kit.client('ia-owner@localhost');
    await createRoom(owner, 'ia1');
    const guest = await kit.client('ia-guest@localhost');
    await guest.join('ia1', 'guest');
    say(owner, 'ia1', 'lunch?');
    const id = stanzaIdOf(await heard(guest, 'lunch?'));
    send(guest, 'ia1', reaction(id, '👍'));
    const live = await owner.next((el) => el.getChild('reactions', REACTIONS) !== undefined);
    expect(live.getChild('stanza-id', SID)).to.not.equal(undefined);
    const rows = await archived(kit, 'ia1');
    expect(rows.map((r) => r.stanzaId)).to.deep.equal([id, stanzaIdOf(live)]);
    expect(rows[1]!.stanza).to.contain(`<reactions`).and.contain('👍');
    const late = await kit.client('ia-late@localhost');
    const p = new Element('presence', { to: `${roomJid('ia1')}/late` });
    p.c('x', { xmlns: 'http://jabber.org/protocol/muc' }).c('history', { maxstanzas: '1' });
    late.send(p);
    const history = await late.next((el) => el.name === 'message' && el.getChild('delay', 'urn:xmpp:delay') !== undefined);
    expect(history.getChild('reactions', REACTIONS)?.attrs.id).to.equal(id);
  });

  it('keeps a reply\'s reference in the archive', async () => {
    const owner = await kit.client('ib-owner@localhost');
    await createRoom(owner, 'ib1');
    say(owner, 'ib1', 'question');
    const id = stanzaIdOf(await heard(owner, 'question'));
    say(owner, 'ib1', 'answer', (m) => { m.c('reply', { xmlns: REPLY, to: `${roomJid('ib1')}/owner`, id }); });
    await heard(owner, 'answer');
    const rows = await archived(kit, 'ib1');
    expect(rows[1]!.stanza).to.contain(`id='${id}'`).and.contain(REPLY);
  });

  it('takes a correction from the author only, and only where the room allows it', async () => {
    const owner = await kit.client('ic-owner@localhost');
    await createRoom(owner, 'ic1');
    const guest = await kit.client('ic-guest@localhost');
    await guest.join('ic1', 'guest');
    say(guest, 'ic1', 'teh plan', (m) => { m.attrs.id = 'orig-1'; });
    await heard(owner, 'teh plan');
    // Another occupant may not correct it.
    say(owner, 'ic1', 'hijacked', (m) => { m.c('replace', { xmlns: CORRECT, id: 'orig-1' }); });
    expect(conditionOf(await errorFor(owner))).to.equal('forbidden');
    say(guest, 'ic1', 'nothing', (m) => { m.c('replace', { xmlns: CORRECT, id: 'no-such' }); });
    expect(conditionOf(await errorFor(guest))).to.equal('item-not-found');
    say(guest, 'ic1', 'the plan', (m) => { m.c('replace', { xmlns: CORRECT, id: 'orig-1' }); });
    const fixed = await heard(owner, 'the plan');
    expect(fixed.getChild('replace', CORRECT)?.attrs.id).to.equal('orig-1');
    expect((await archived(kit, 'ic1')).length).to.equal(2);
    // The room forbids editing posted messages.
    await submitConfig(owner, 'ic1', { 'x-perch#allow-corrections': '0' });
    say(guest, 'ic1', 'the plan!', (m) => { m.c('replace', { xmlns: CORRECT, id: 'orig-1' }); });
    const refused = await errorFor(guest);
    expect(conditionOf(refused)).to.equal('not-allowed');
    expect(refused.getChild('error')!.getChildText('text')).to.contain('correcting');
  });

  it('retracts a message for its author: tombstoned with its reactions and corrections; replies and the retraction stay', async () => {
    const owner = await kit.client('id-owner@localhost');
    await createRoom(owner, 'id1');
    const guest = await kit.client('id-guest@localhost');
    await guest.join('id1', 'guest');
    say(guest, 'id1', 'secret', (m) => { m.attrs.id = 'g-1'; });
    const id = stanzaIdOf(await heard(owner, 'secret'));
    send(owner, 'id1', reaction(id, '😮'));
    say(guest, 'id1', 'secret!', (m) => { m.c('replace', { xmlns: CORRECT, id: 'g-1' }); });
    say(owner, 'id1', 'what?', (m) => { m.c('reply', { xmlns: REPLY, id }); });
    await heard(guest, 'what?');
    // Not its author: forbidden.
    send(owner, 'id1', new Element('retract', { xmlns: RETRACT, id }));
    expect(conditionOf(await errorFor(owner))).to.equal('forbidden');
    send(guest, 'id1', new Element('retract', { xmlns: RETRACT, id }));
    const notice = await owner.next((el) => el.getChild('retract', RETRACT) !== undefined);
    expect(notice.getChild('stanza-id', SID)).to.not.equal(undefined);
    await settle(200);
    const rows = await archived(kit, 'id1');
    expect(rows).to.have.length(5);
    const [orig, react, corr, reply, retraction] = rows;
    expect(orig!.retracted).to.equal(true);
    expect(orig!.stanza).to.contain('retracted').and.not.contain('secret');
    expect(react!.retracted).to.equal(true);
    expect(react!.stanza).to.not.contain('😮');
    expect(corr!.retracted).to.equal(true);
    expect(corr!.stanza).to.not.contain('secret');
    expect(reply!.retracted).to.equal(false);
    expect(retraction!.stanza).to.contain(`<retract`).and.contain(id);
    // A joiner gets neither the message nor what pointed at it.
    const late = await kit.client('id-late@localhost');
    await late.join('id1', 'late');
    await settle(50);
    const got = late.inbox.filter((el) => el.name === 'message');
    expect(got.some((el) => el.getChild('reactions', REACTIONS) || /secret/.test(el.getChildText('body') ?? ''))).to.equal(false);
    expect(got.some((el) => el.getChild('retract', RETRACT))).to.equal(true);
    // Retracting it again: it is gone.
    send(guest, 'id1', new Element('retract', { xmlns: RETRACT, id }));
    expect(conditionOf(await errorFor(guest))).to.equal('item-not-found');
  });

  it('refuses retractions where the room does not allow them, and forged moderations', async () => {
    const owner = await kit.client('ie-owner@localhost');
    await createRoom(owner, 'ie1', { 'x-perch#allow-retractions': '0' });
    say(owner, 'ie1', 'stays');
    const id = stanzaIdOf(await heard(owner, 'stays'));
    send(owner, 'ie1', new Element('retract', { xmlns: RETRACT, id }));
    expect(conditionOf(await errorFor(owner))).to.equal('not-allowed');
    await submitConfig(owner, 'ie1', { 'x-perch#allow-retractions': '1' });
    const forged = new Element('retract', { xmlns: RETRACT, id });
    forged.c('moderated', { xmlns: 'urn:xmpp:message-moderate:1', by: roomJid('ie1') });
    send(owner, 'ie1', forged);
    expect(conditionOf(await errorFor(owner))).to.equal('forbidden');
  });

  it('takes a version 0 retraction (fastened) from the author', async () => {
    const owner = await kit.client('ii-owner@localhost');
    await createRoom(owner, 'ii1');
    say(owner, 'ii1', 'old client');
    const id = stanzaIdOf(await heard(owner, 'old client'));
    const apply = new Element('apply-to', { xmlns: 'urn:xmpp:fasten:0', id });
    apply.c('retract', { xmlns: 'urn:xmpp:message-retract:0' });
    send(owner, 'ii1', apply);
    await owner.next((el) => el.getChild('apply-to', 'urn:xmpp:fasten:0') !== undefined);
    await settle(200);
    const rows = await archived(kit, 'ii1');
    expect(rows.map((r) => r.retracted)).to.deep.equal([true, false]);
  });

  it('a moderated message takes its reactions with it', async () => {
    const owner = await kit.client('if-owner@localhost');
    await createRoom(owner, 'if1');
    const guest = await kit.client('if-guest@localhost');
    await guest.join('if1', 'guest');
    say(guest, 'if1', 'spam');
    const id = stanzaIdOf(await heard(owner, 'spam'));
    send(owner, 'if1', reaction(id, '🚫'));
    await owner.next((el) => el.getChild('reactions', REACTIONS) !== undefined);
    const m = new Element('moderate', { xmlns: 'urn:xmpp:message-moderate:1', id });
    m.c('retract', { xmlns: RETRACT });
    expect((await owner.iq('set', roomJid('if1'), m)).attrs.type).to.equal('result');
    await settle(200);
    const rows = await archived(kit, 'if1');
    expect(rows.map((r) => r.retracted)).to.deep.equal([true, true]);
    expect(rows[1]!.stanza).to.not.contain('🚫');
  });

  it('knows the authors of archived messages after a reload, and reads older ones from the archive', async () => {
    const owner = await kit.client('ih-owner@localhost');
    await createRoom(owner, 'ih1', { 'muc#roomconfig_persistentroom': '1' });
    const guest = await kit.client('ih-guest@localhost');
    await guest.join('ih1', 'guest');
    say(guest, 'ih1', 'before the reload', (m) => { m.attrs.id = 'h-1'; });
    await heard(owner, 'before the reload');
    for (const c of [owner, guest]) c.send(new Element('presence', { to: `${roomJid('ih1')}/x`, type: 'unavailable' }));
    await settle(100);
    const service = kit.service as unknown as { unload(room: unknown, forget: boolean): void };
    service.unload(kit.service.loadedRoom('ih1'), false);
    await settle(100);
    await owner.join('ih1', 'owner');
    await guest.join('ih1', 'guest');
    say(owner, 'ih1', 'not yours', (m) => { m.c('replace', { xmlns: CORRECT, id: 'h-1' }); });
    expect(conditionOf(await errorFor(owner))).to.equal('forbidden');
    say(guest, 'ih1', 'after the reload', (m) => { m.c('replace', { xmlns: CORRECT, id: 'h-1' }); });
    await heard(owner, 'after the reload');
    // A message the room does not remember (as one beyond its window): read from the archive.
    await kit.server.stores.archive.append([{
      archive: roomJid('ih1'), stanzaId: 'old-1', stamp: new Date(), fromJid: `${roomJid('ih1')}/guest`, realJid: 'ih-guest@localhost',
      body: 'long ago', stanza: `<message from='${roomJid('ih1')}/guest' type='groupchat' id='o-1'><body>long ago</body></message>`,
    }]);
    send(owner, 'ih1', new Element('retract', { xmlns: RETRACT, id: 'old-1' }));
    expect(conditionOf(await errorFor(owner))).to.equal('forbidden');
    send(guest, 'ih1', new Element('retract', { xmlns: RETRACT, id: 'old-1' }));
    await owner.next((el) => el.getChild('retract', RETRACT)?.attrs.id === 'old-1');
    await settle(200);
    expect((await kit.server.stores.archive.get(roomJid('ih1'), 'old-1'))!.retracted).to.equal(true);
  });

  it('advertises retraction and correction as the room allows them', async () => {
    const owner = await kit.client('ig-owner@localhost');
    await createRoom(owner, 'ig1', { 'x-perch#allow-corrections': '0' });
    const info = await owner.iq('get', roomJid('ig1'), new Element('query', { xmlns: 'http://jabber.org/protocol/disco#info' }));
    const features = info.getChild('query')!.getChildren('feature').map((f) => f.attrs.var);
    expect(features).to.include(RETRACT).and.not.include(CORRECT);
  });
});

describe('room feature: interactions in persistent-chat categories', () => {
  let kit: RoomKit;
  before(async function () {
    this.timeout(60000);
    kit = await governedKit();
    await seedCategory(kit, { name: 'Ix Frozen', allowed: ['domain:localhost'], editing: false });
    await seedCategory(kit, { name: 'Ix Unlogged', allowed: ['domain:localhost'], chatHistory: false });
    await seedRoom(kit, { room: 'ix-frozen', category: 'Ix Frozen', privacy: 'open' });
    await seedRoom(kit, { room: 'ix-unlogged', category: 'Ix Unlogged', privacy: 'open' });
  });

  it('a category with editing off refuses corrections and retractions in its rooms; reactions pass', async () => {
    const ann = await kit.client('ix-ann@localhost');
    await ann.join('ix-frozen', 'ann');
    say(ann, 'ix-frozen', 'as posted', (m) => { m.attrs.id = 'fz-1'; });
    const id = stanzaIdOf(await heard(ann, 'as posted'));
    say(ann, 'ix-frozen', 'as edited', (m) => { m.c('replace', { xmlns: CORRECT, id: 'fz-1' }); });
    const refused = await errorFor(ann);
    expect(conditionOf(refused)).to.equal('not-allowed');
    expect(refused.getChild('error')!.getChildText('text')).to.contain('category');
    send(ann, 'ix-frozen', new Element('retract', { xmlns: RETRACT, id }));
    expect(conditionOf(await errorFor(ann))).to.equal('not-allowed');
    send(ann, 'ix-frozen', reaction(id, '✅'));
    await ann.next((el) => el.getChild('reactions', REACTIONS) !== undefined);
    const info = await ann.iq('get', roomJid('ix-frozen'), new Element('query', { xmlns: 'http://jabber.org/protocol/disco#info' }));
    const features = info.getChild('query')!.getChildren('feature').map((f) => f.attrs.var);
    expect(features).to.not.include(RETRACT).and.not.include(CORRECT);
  });

  it('a category with history off: interactions are delivered, not archived; the author may still correct', async () => {
    const ann = await kit.client('ix-ann@localhost', 'u');
    await ann.join('ix-unlogged', 'ann');
    const ben = await kit.client('ix-ben@localhost', 'u');
    await ben.join('ix-unlogged', 'ben');
    say(ann, 'ix-unlogged', 'unlogged', (m) => { m.attrs.id = 'ul-1'; });
    await heard(ben, 'unlogged');
    say(ann, 'ix-unlogged', 'unlogged, fixed', (m) => { m.c('replace', { xmlns: CORRECT, id: 'ul-1' }); });
    const fixed = await heard(ben, 'unlogged, fixed');
    expect(fixed.getChild('stanza-id', SID)).to.equal(undefined);
    send(ben, 'ix-unlogged', reaction('ul-1', '👀'));
    await ann.next((el) => el.getChild('reactions', REACTIONS) !== undefined);
    await settle(50);
    expect(await kit.server.stores.archive.lastN(roomJid('ix-unlogged'), 10)).to.deep.equal([]);
  });
});
