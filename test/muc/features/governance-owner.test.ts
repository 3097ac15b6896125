// The XEP-0045 owner and admin faces of governed rooms: the owner form shows the record, a manager's
// submission and affiliation edits are the model's operations (updateRoom), destroying is for
// administrators (deleteRoom), and a new room on a governed service is created in a category
// (createRoom) — an instant room only when the user may create in exactly one category.
import { expect } from 'chai';
import { Element } from '../../../protocol/xml.js';
import { chatModel } from '../../../src/pchat/module.js';
import {
  governedKit, seedCategory, seedRoom, seedGroup, roomJid, conditionOf, statusesOf, SERVICE, type RoomKit,
} from '../kit.js';

const OWNER = 'http://jabber.org/protocol/muc#owner';
const ADMIN = 'http://jabber.org/protocol/muc#admin';

function submit(fields: Record<string, string>): Element {
  const q = new Element('query', { xmlns: OWNER });
  const x = q.c('x', { xmlns: 'jabber:x:data', type: 'submit' });
  if (Object.keys(fields).length > 0) x.c('field', { var: 'FORM_TYPE' }).c('value').t('http://jabber.org/protocol/muc#roomconfig');
  for (const [k, v] of Object.entries(fields)) x.c('field', { var: k }).c('value').t(v);
  return q;
}

function affiliation(items: { jid?: string; principal?: string; affiliation: string }[]): Element {
  const q = new Element('query', { xmlns: ADMIN });
  for (const i of items) {
    const item = q.c('item', { affiliation: i.affiliation });
    if (i.jid) item.attrs.jid = i.jid;
    if (i.principal) item.c('principal', { xmlns: 'urn:x-perch:principal:0', key: i.principal });
  }
  return q;
}

function formField(answer: Element, name: string): Element | undefined {
  return answer.getChild('query')?.getChild('x', 'jabber:x:data')?.getChildren('field').find((f) => f.attrs.var === name);
}

const record = (kit: RoomKit, room: string) => chatModel(kit.server).forService(SERVICE)!.room(room);

describe('room feature: governance, owner and admin requests', () => {
  let kit: RoomKit;
  before(async function () {
    this.timeout(60000);
    kit = await governedKit();
    await seedGroup(kit, 'ow-team', ['ow-teamster@localhost']);
    await seedCategory(kit, { name: 'Ow Cat', allowed: ['domain:localhost'], creators: ['ow-maker@localhost', 'ow-two@localhost'] });
    await seedCategory(kit, { name: 'Ow Other', allowed: ['domain:localhost'], creators: ['ow-two@localhost'] });
    await seedRoom(kit, { room: 'ow-room', category: 'Ow Cat', name: 'Owned', members: ['ow-man@localhost', 'ow-mem@localhost'], managers: ['ow-man@localhost'] });
  });

  it('the owner form of a governed room shows the record and the categories', async () => {
    const man = await kit.client('ow-man@localhost');
    await man.join('ow-room', 'man');
    const form = await man.iq('get', roomJid('ow-room'), new Element('query', { xmlns: OWNER }));
    expect(form.attrs.type).to.equal('result');
    expect(formField(form, 'x-perch#category')!.getChildText('value')).to.equal('Ow Cat');
    expect(formField(form, 'x-perch#privacy')!.getChildText('value')).to.equal('closed');
    expect(formField(form, 'x-perch#privacy')!.getChildren('option').map((o) => o.getChildText('value'))).to.deep.equal(['open', 'closed', 'secret']);
    expect(formField(form, 'x-perch#type')!.getChildText('value')).to.equal('normal');
    expect(formField(form, 'x-perch#invitations')!.getChildText('value')).to.equal('inherit');
    expect(formField(form, 'x-perch#addin')).to.not.equal(undefined);
    expect(formField(form, 'muc#roomconfig_roomname')!.getChildText('value')).to.equal('Owned');
    const mem = await kit.client('ow-mem@localhost');
    expect(conditionOf(await mem.iq('get', roomJid('ow-room'), new Element('query', { xmlns: OWNER })))).to.equal('forbidden');
  });

  it('refuses outcast (denial is the category\'s) and admin affiliations, and destroying by a manager', async () => {
    const man = await kit.client('ow-man@localhost', 'refuse');
    expect(conditionOf(await man.iq('set', roomJid('ow-room'), affiliation([{ jid: 'ow-x@localhost', affiliation: 'outcast' }])))).to.equal('not-allowed');
    expect(conditionOf(await man.iq('set', roomJid('ow-room'), affiliation([{ jid: 'ow-x@localhost', affiliation: 'admin' }])))).to.equal('not-allowed');
    const destroy = new Element('query', { xmlns: OWNER });
    destroy.c('destroy').c('reason').t('bye');
    const refused = await man.iq('set', roomJid('ow-room'), destroy);
    expect(conditionOf(refused)).to.equal('forbidden');
    expect(refused.getChild('error')!.getChildText('text', 'urn:ietf:params:xml:ns:xmpp-stanzas')).to.equal('only administrators delete rooms');
    expect(record(kit, 'ow-room')).to.not.equal(undefined);
  });

  it('a manager\'s owner form changes the record through the operation; occupants hear of it (104)', async () => {
    const man = await kit.client('ow-man@localhost', 'form');
    await man.join('ow-room', 'man2');
    man.clear();
    const answer = await man.iq('set', roomJid('ow-room'), submit({ 'x-perch#privacy': 'open', 'muc#roomconfig_roomname': 'Owned and open' }));
    expect(answer.attrs.type, conditionOf(answer)).to.equal('result');
    expect(record(kit, 'ow-room')!.privacy).to.equal('open');
    expect(record(kit, 'ow-room')!.name).to.equal('Owned and open');
    await man.next((el) => el.name === 'message' && statusesOf(el).includes(104));
    const mem = await kit.client('ow-mem@localhost', 'form');
    expect(conditionOf(await mem.iq('set', roomJid('ow-room'), submit({ 'x-perch#privacy': 'secret' })))).to.equal('forbidden');
    expect(record(kit, 'ow-room')!.privacy).to.equal('open');
  });

  it('a manager\'s affiliation edits change members and managers (groups through principal items)', async () => {
    const man = await kit.client('ow-man@localhost', 'aff');
    const answer = await man.iq('set', roomJid('ow-room'), affiliation([
      { jid: 'ow-new@localhost', affiliation: 'member' }, { principal: 'group:ow-team', affiliation: 'member' }, { jid: 'ow-mem@localhost', affiliation: 'owner' },
    ]));
    expect(answer.attrs.type, answer.toString()).to.equal('result');
    expect(record(kit, 'ow-room')!.members).to.include.members(['ow-new@localhost', 'group:ow-team']);
    expect(record(kit, 'ow-room')!.managers).to.include('ow-mem@localhost');
    const outside = await man.iq('set', roomJid('ow-room'), affiliation([{ jid: 'ow-far@elsewhere.example', affiliation: 'member' }]));
    expect(conditionOf(outside)).to.equal('not-acceptable');
    expect(outside.getChild('error')!.getChildText('text', 'urn:ietf:params:xml:ns:xmpp-stanzas')).to.contain('ow-far@elsewhere.example');
    expect(record(kit, 'ow-room')!.members).to.not.include('ow-far@elsewhere.example');
    const removed = await man.iq('set', roomJid('ow-room'), affiliation([{ jid: 'ow-new@localhost', affiliation: 'none' }]));
    expect(removed.attrs.type).to.equal('result');
    expect(record(kit, 'ow-room')!.members).to.not.include('ow-new@localhost');
  });

  it('creating a room: the locked room\'s form lists the categories where the creator may create; submitting creates it there', async () => {
    const maker = await kit.client('ow-maker@localhost');
    expect(statusesOf(await maker.join('ow-made', 'maker'))).to.include(201);
    const form = await maker.iq('get', roomJid('ow-made'), new Element('query', { xmlns: OWNER }));
    const category = formField(form, 'x-perch#category')!;
    expect(category.getChildren('option').map((o) => o.getChildText('value'))).to.deep.equal(['Ow Cat']);
    expect(category.getChild('required')).to.not.equal(undefined);
    const answer = await maker.iq('set', roomJid('ow-made'), submit({ 'x-perch#category': 'Ow Cat', 'x-perch#privacy': 'secret' }));
    expect(answer.attrs.type, conditionOf(answer)).to.equal('result');
    const rec = record(kit, 'ow-made')!;
    expect(rec.category).to.equal('Ow Cat');
    expect(rec.privacy).to.equal('secret');
    expect(rec.managers).to.include('ow-maker@localhost');
    expect(rec.members).to.include('ow-maker@localhost');
    expect(kit.service.loadedRoom('ow-made')!.locked).to.equal(false);
  });

  it('an instant room goes to the only category the creator may create in; with several it asks to choose', async () => {
    const maker = await kit.client('ow-maker@localhost', 'instant');
    await maker.join('ow-instant', 'maker');
    const answer = await maker.iq('set', roomJid('ow-instant'), submit({}));
    expect(answer.attrs.type, conditionOf(answer)).to.equal('result');
    expect(record(kit, 'ow-instant')!.category).to.equal('Ow Cat');
    const two = await kit.client('ow-two@localhost');
    await two.join('ow-choose', 'two');
    const refused = await two.iq('set', roomJid('ow-choose'), submit({}));
    expect(conditionOf(refused)).to.equal('not-acceptable');
    expect(refused.getChild('error')!.getChildText('text', 'urn:ietf:params:xml:ns:xmpp-stanzas')).to.match(/choose a category/);
    expect(kit.service.loadedRoom('ow-choose')!.locked).to.equal(true);
  });

  it('an administrator destroys a governed room: the room and its record are gone', async () => {
    await seedRoom(kit, { room: 'ow-doomed', category: 'Ow Cat', privacy: 'open' });
    const guest = await kit.client('ow-guest@localhost');
    await guest.join('ow-doomed', 'guest');
    const admin = await kit.client('admin@localhost', 'destroy');
    const destroy = new Element('query', { xmlns: OWNER });
    destroy.c('destroy').c('reason').t('closing');
    const answer = await admin.iq('set', roomJid('ow-doomed'), destroy);
    expect(answer.attrs.type, conditionOf(answer)).to.equal('result');
    const out = await guest.next((el: Element) => el.name === 'presence' && el.attrs.type === 'unavailable');
    expect(out.getChild('x', 'http://jabber.org/protocol/muc#user')!.getChild('destroy')).to.not.equal(undefined);
    expect(record(kit, 'ow-doomed')).to.equal(undefined);
  });

  it('a manager disables the room through the owner form: everyone leaves (332)', async () => {
    await seedRoom(kit, { room: 'ow-dis', category: 'Ow Cat', privacy: 'open', managers: ['ow-man@localhost'] });
    const man = await kit.client('ow-man@localhost', 'dis');
    await man.join('ow-dis', 'man');
    const guest = await kit.client('ow-guest@localhost', 'dis');
    await guest.join('ow-dis', 'guest');
    const answer = await man.iq('set', roomJid('ow-dis'), submit({ 'x-perch#disabled': '1' }));
    expect(answer.attrs.type, conditionOf(answer)).to.equal('result');
    expect(record(kit, 'ow-dis')!.disabled).to.equal(true);
    const out = await guest.next((el) => el.name === 'presence' && el.attrs.type === 'unavailable' && statusesOf(el).includes(110));
    expect(statusesOf(out)).to.include(332);
  });

  it('a member a manager adds gets an XEP-0249 invitation from the room when the category sends them', async () => {
    await seedCategory(kit, { name: 'Ow Inv', allowed: ['domain:localhost'], invitations: true });
    await seedRoom(kit, { room: 'ow-inv', category: 'Ow Inv', members: ['ow-man@localhost'], managers: ['ow-man@localhost'] });
    const invitee = await kit.client('ow-invitee@localhost');
    const man = await kit.client('ow-man@localhost', 'inv');
    const answer = await man.iq('set', roomJid('ow-inv'), affiliation([{ jid: 'ow-invitee@localhost', affiliation: 'member' }]));
    expect(answer.attrs.type, answer.toString()).to.equal('result');
    const invite = await invitee.next((el) => el.name === 'message' && el.getChild('x', 'jabber:x:conference') !== undefined);
    expect(invite.attrs.from).to.equal(roomJid('ow-inv'));
    expect(invite.getChild('x', 'jabber:x:conference')!.attrs.jid).to.equal(roomJid('ow-inv'));
  });

  it('a manager\'s mediated invitation to a closed room makes the invitee a member, who may then join', async () => {
    await seedRoom(kit, { room: 'ow-med', category: 'Ow Cat', members: ['ow-man@localhost'], managers: ['ow-man@localhost'] });
    const man = await kit.client('ow-man@localhost', 'med');
    await man.join('ow-med', 'man');
    const friend = await kit.client('ow-friend@localhost');
    expect(conditionOf(await friend.join('ow-med', 'friend'))).to.equal('registration-required');
    const invite = new Element('message', { to: roomJid('ow-med') });
    invite.c('x', { xmlns: 'http://jabber.org/protocol/muc#user' }).c('invite', { to: 'ow-friend@localhost' });
    man.send(invite);
    const got = await friend.next((el) => el.name === 'message' && el.getChild('x', 'http://jabber.org/protocol/muc#user')?.getChild('invite') !== undefined);
    expect(got.attrs.from).to.equal(roomJid('ow-med'));
    expect(record(kit, 'ow-med')!.members).to.include('ow-friend@localhost');
    expect(statusesOf(await friend.join('ow-med', 'friend'))).to.include(110);
  });
});
