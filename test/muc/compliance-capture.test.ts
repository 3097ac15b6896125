// Compliance capture in rooms (src/compliance/capture.ts) on the in-process room kit: with capture on,
// every join, leave, post, history read and search leaves its record, committed before the action is
// seen; a record that cannot be written fails the action (a leave is only logged and counted); with
// capture off nothing is written and nothing waits.
import { expect } from 'chai';
import { Element } from '../../protocol/xml.js';
import { DEFAULT_COMPLIANCE_CONFIG, type ArchiveEntry, type ComplianceEvent, type ComplianceRecord } from '../../storage/types.js';
import { changeComplianceConfig } from '../../src/compliance/state.js';
import {
  startRoomKit, seedCategory, seedRoom, say, heard, settle, roomJid, conditionOf, SERVICE, type RoomKit,
} from './kit.js';

const MUC_USER = 'http://jabber.org/protocol/muc#user';

async function records(kit: RoomKit): Promise<ComplianceRecord[]> {
  return kit.server.stores.compliance.read(0, Number.MAX_SAFE_INTEGER, 10_000);
}

/** Records written since `after` (an id), by kind and room. */
async function since(kit: RoomKit, after: number): Promise<ComplianceRecord[]> {
  return (await records(kit)).filter((r) => r.id > after);
}

async function lastId(kit: RoomKit): Promise<number> {
  const all = await records(kit);
  return all.length > 0 ? all[all.length - 1]!.id : 0;
}

function mamQuery(fields: Record<string, string> = {}, max?: number): Element {
  const q = new Element('query', { xmlns: 'urn:xmpp:mam:2', queryid: 'q1' });
  const x = q.c('x', { xmlns: 'jabber:x:data', type: 'submit' });
  x.c('field', { var: 'FORM_TYPE', type: 'hidden' }).c('value').t('urn:xmpp:mam:2');
  for (const [k, v] of Object.entries(fields)) x.c('field', { var: k }).c('value').t(v);
  if (max !== undefined) q.c('set', { xmlns: 'http://jabber.org/protocol/rsm' }).c('max').t(String(max));
  return q;
}

/** Makes the archive's group commit fail while `failing` says so (the statement carries both tables). */
function breakWrites(kit: RoomKit, failing: (entries: ArchiveEntry[], compliance: ComplianceEvent[] | undefined) => boolean): () => void {
  const store = kit.server.stores.archive;
  const original = store.write.bind(store);
  store.write = (entries, compliance) => failing(entries, compliance) ? Promise.reject(new Error('compliance_events is not writable')) : original(entries, compliance);
  return () => { store.write = original; };
}

let kit: RoomKit;
// Stopped with the run, as the shared kits are: stopping a server stops every MUC service of the process.
after(async () => { if (kit) await kit.stop(); });

describe('compliance capture in rooms', () => {
  before(async function () {
    this.timeout(60000);
    kit = await startRoomKit({ nodeId: 'kit-capture', messageBurst: 50, admins: ['cc-admin@localhost'] });
    await seedCategory(kit, { name: 'Cc On', allowed: ['domain:localhost'] });
    await seedCategory(kit, { name: 'Cc Off', allowed: ['domain:localhost'], chatHistory: false });
    for (const room of ['cc-off-test', 'cc-on', 'cc-nohist', 'cc-fail', 'cc-gone', 'cc-edit']) {
      await seedRoom(kit, { room, category: room === 'cc-nohist' ? 'Cc Off' : 'Cc On', privacy: 'open' });
    }
  });

  const enable = (enabled: boolean) => changeComplianceConfig(kit.server, { ...DEFAULT_COMPLIANCE_CONFIG, enabled });

  it('off: joins, posts, reads and leaves write nothing', async () => {
    await enable(false);
    const before = await lastId(kit);
    const ann = await kit.client('cc-ann@localhost', 'off');
    await ann.join('cc-off-test', 'ann');
    say(ann, 'cc-off-test', 'unrecorded');
    await heard(ann, 'unrecorded');
    await ann.iq('set', roomJid('cc-off-test'), mamQuery());
    ann.send(new Element('presence', { to: `${roomJid('cc-off-test')}/ann`, type: 'unavailable' }));
    await settle(100);
    expect(await since(kit, before)).to.deep.equal([]);
  });

  it('off: a post with nothing to write (history off) is delivered at once, with no commit to wait for', async () => {
    await enable(false);
    const ann = await kit.client('cc-ann@localhost', 'sync');
    await ann.join('cc-nohist', 'anns');
    const ben = await kit.client('cc-ben@localhost', 'sync');
    await ben.join('cc-nohist', 'bens');
    await settle(50);
    say(ann, 'cc-nohist', 'straight through');
    // Synchronously: no slot, no promise, no group commit on the way.
    expect(ben.inbox.some((el) => el.getChildText('body') === 'straight through')).to.equal(true);
  });

  it('on: JOIN once per user, CHAT with the stanza id, join history as BACKCHAT, PART when the last session leaves', async () => {
    await enable(true);
    const before = await lastId(kit);
    const ann = await kit.client('cc-ann@localhost', 'a1');
    const self = await ann.join('cc-on', 'ann');
    expect(self.attrs.type).to.equal(undefined);
    say(ann, 'cc-on', 'hello recorded');
    const msg = await heard(ann, 'hello recorded');
    const sid = msg.getChild('stanza-id', 'urn:xmpp:sid:0')!.attrs.id;
    // A second session of the same occupant is not a user entering.
    const ann2 = await kit.client('cc-ann@localhost', 'a2');
    await ann2.join('cc-on', 'ann');
    const ben = await kit.client('cc-ben@localhost', 'b');
    await ben.join('cc-on', 'ben');
    await heard(ben, 'hello recorded');
    for (const c of [ann, ann2]) c.send(new Element('presence', { to: `${roomJid('cc-on')}/ann`, type: 'unavailable' }));
    await settle(150);
    const got = (await since(kit, before)).map((r) => [r.kind, r.room, r.actor, r.nick, r.content, r.messageId]);
    expect(got).to.deep.equal([
      ['join', roomJid('cc-on'), 'cc-ann@localhost', 'ann', '', null],
      ['chat', roomJid('cc-on'), 'cc-ann@localhost', 'ann', 'hello recorded', sid],
      // ann2's session joined the present occupant: no JOIN, but it got join history.
      ['backchat', roomJid('cc-on'), 'cc-ann@localhost', 'ann', 'join history: 1 messages', null],
      ['join', roomJid('cc-on'), 'cc-ben@localhost', 'ben', '', null],
      ['backchat', roomJid('cc-on'), 'cc-ben@localhost', 'ben', 'join history: 1 messages', null],
      ['part', roomJid('cc-on'), 'cc-ann@localhost', 'ann', '', null],
    ]);
  });

  it('on: a correction and a retraction with fallback text are CHAT marked with what they change; a reaction is not recorded', async () => {
    await enable(true);
    const ann = await kit.client('cc-ann@localhost', 'ed');
    await ann.join('cc-edit', 'ann');
    const before = await lastId(kit);
    say(ann, 'cc-edit', 'first version', (m) => { m.attrs.id = 'ed-1'; });
    const sid = (await heard(ann, 'first version')).getChild('stanza-id', 'urn:xmpp:sid:0')!.attrs.id!;
    say(ann, 'cc-edit', 'second version', (m) => { m.c('replace', { xmlns: 'urn:xmpp:message-correct:0', id: 'ed-1' }); });
    await heard(ann, 'second version');
    const react = new Element('message', { to: roomJid('cc-edit'), type: 'groupchat' });
    react.c('reactions', { xmlns: 'urn:xmpp:reactions:0', id: sid }).c('reaction').t('👍');
    ann.send(react);
    await ann.next((el) => el.getChild('reactions', 'urn:xmpp:reactions:0') !== undefined);
    say(ann, 'cc-edit', 'This person attempted to retract a previous message', (m) => {
      m.c('retract', { xmlns: 'urn:xmpp:message-retract:1', id: sid });
      m.c('fallback', { xmlns: 'urn:xmpp:fallback:0', for: 'urn:xmpp:message-retract:1' });
    });
    await heard(ann, 'This person attempted to retract a previous message');
    await settle(100);
    const chat = (await since(kit, before)).filter((r) => r.kind === 'chat');
    expect(chat.map((r) => [r.content, r.detail])).to.deep.equal([
      ['first version', null],
      ['second version', { replaces: 'ed-1' }],
      ['This person attempted to retract a previous message', { retracts: sid }],
    ]);
  });

  it('on: a post in a category with history off is recorded, delivered, and still not archived', async () => {
    await enable(true);
    const before = await lastId(kit);
    const ann = await kit.client('cc-ann@localhost', 'nh');
    await ann.join('cc-nohist', 'ann');
    const ben = await kit.client('cc-ben@localhost', 'nh');
    await ben.join('cc-nohist', 'ben');
    say(ann, 'cc-nohist', 'kept for compliance only');
    const live = await heard(ben, 'kept for compliance only');
    expect(live.getChild('stanza-id', 'urn:xmpp:sid:0')).to.equal(undefined);
    await settle(50);
    expect(await kit.server.stores.archive.lastN(roomJid('cc-nohist'), 10)).to.deep.equal([]);
    const chat = (await since(kit, before)).filter((r) => r.kind === 'chat');
    expect(chat.map((r) => [r.room, r.actor, r.content])).to.deep.equal([[roomJid('cc-nohist'), 'cc-ann@localhost', 'kept for compliance only']]);
    expect(chat[0]!.messageId).to.be.a('string');
  });

  it('on: a room MAM query is BACKCHAT, one with full text or search fields is SEARCH, the service search is SEARCH without a room', async () => {
    await enable(true);
    const ann = await kit.client('cc-ann@localhost', 'mam');
    await ann.join('cc-on', 'ann');
    const before = await lastId(kit);
    const read = await ann.iq('set', roomJid('cc-on'), mamQuery({}, 5));
    expect(read.attrs.type).to.equal('result');
    const ft = await ann.iq('set', roomJid('cc-on'), mamQuery({ '{urn:xmpp:fulltext:0}fulltext': 'hello' }));
    expect(ft.attrs.type).to.equal('result');
    const ours = await ann.iq('set', roomJid('cc-on'), mamQuery({ '{urn:x-perch:search:0}text': 'recorded' }));
    expect(ours.attrs.type).to.equal('result');
    const across = await ann.iq('set', SERVICE, mamQuery({ '{urn:x-perch:search:0}text': 'hello' }));
    expect(across.attrs.type).to.equal('result');
    const got = (await since(kit, before)).filter((r) => r.kind === 'backchat' || r.kind === 'search');
    expect(got.map((r) => [r.kind, r.room, r.actor, r.content])).to.deep.equal([
      ['backchat', roomJid('cc-on'), 'cc-ann@localhost', 'archive query: 1 messages'],
      ['search', roomJid('cc-on'), 'cc-ann@localhost', 'hello'],
      ['search', roomJid('cc-on'), 'cc-ann@localhost', 'recorded'],
      ['search', null, 'cc-ann@localhost', 'hello'],
    ]);
    expect(got[0]!.nick).to.equal('ann');
    expect(got[0]!.detail).to.include({ page: 5, results: 1, queryid: 'q1' });
    expect((got[1]!.detail as { fields: Record<string, string[]> }).fields).to.deep.equal({ '{urn:xmpp:fulltext:0}fulltext': ['hello'] });
    expect(got[3]!.detail).to.include({ service: SERVICE, page: 50 });
  });

  it('on: a room destroyed with people in it records each occupant leaving', async () => {
    await enable(true);
    const owner = await kit.client('cc-own@localhost', 'd');
    await owner.join('cc-gone', 'own');
    const admin = await kit.client('cc-admin@localhost', 'd');
    const ben = await kit.client('cc-ben@localhost', 'd');
    await ben.join('cc-gone', 'ben');
    const before = await lastId(kit);
    const q = new Element('query', { xmlns: 'http://jabber.org/protocol/muc#owner' });
    q.c('destroy').c('reason').t('done');
    const answer = await admin.iq('set', roomJid('cc-gone'), q);
    expect(answer.attrs.type).to.equal('result');
    await settle(100);
    const parts = (await since(kit, before)).filter((r) => r.kind === 'part').map((r) => [r.room, r.actor, r.nick]);
    expect(parts).to.have.deep.members([[roomJid('cc-gone'), 'cc-own@localhost', 'own'], [roomJid('cc-gone'), 'cc-ben@localhost', 'ben']]);
  });

  it('a join whose record fails is refused with internal-server-error; nobody saw it and it is not in the room', async () => {
    await enable(true);
    const ann = await kit.client('cc-ann@localhost', 'f');
    await ann.join('cc-fail', 'ann');
    ann.clear();
    const restore = breakWrites(kit, (_e, c) => c?.some((r) => r.kind === 'join') === true);
    const ben = await kit.client('cc-ben@localhost', 'f');
    let answer: Element;
    try {
      answer = await ben.join('cc-fail', 'ben');
    } finally {
      restore();
    }
    expect(conditionOf(answer)).to.equal('internal-server-error');
    await settle(50);
    expect(ann.inbox.filter((el) => el.name === 'presence')).to.deep.equal([]);
    const room = kit.service.loadedRoom('cc-fail')!;
    expect(room.occupants.has('ben')).to.equal(false);
    expect(room.byRealJid.has(ben.full)).to.equal(false);
    // The room went on: a later join works.
    const again = await ben.join('cc-fail', 'ben');
    expect(again.attrs.type).to.equal(undefined);
  });

  it('a post whose record fails: the sender gets internal-server-error, nobody gets it, nothing is archived', async () => {
    await enable(true);
    const ann = await kit.client('cc-ann@localhost', 'p');
    await ann.join('cc-fail', 'annp');
    const ben = await kit.client('cc-ben@localhost', 'p');
    await ben.join('cc-fail', 'benp');
    ben.clear();
    const restore = breakWrites(kit, (_e, c) => c?.some((r) => r.kind === 'chat') === true);
    try {
      say(ann, 'cc-fail', 'must not pass');
      const err = await ann.next((el) => el.name === 'message' && el.attrs.type === 'error');
      expect(conditionOf(err)).to.equal('internal-server-error');
    } finally {
      restore();
    }
    await settle(50);
    expect(ben.inbox.filter((el) => el.name === 'message')).to.deep.equal([]);
    expect((await kit.server.stores.archive.lastN(roomJid('cc-fail'), 10)).map((e) => e.body)).to.not.include('must not pass');
  });

  it('an archive read whose record fails gets internal-server-error and no result; join history is withheld, the join stands', async () => {
    await enable(true);
    const ann = await kit.client('cc-ann@localhost', 'r');
    await ann.join('cc-fail', 'annr');
    say(ann, 'cc-fail', 'history line');
    await heard(ann, 'history line');
    ann.clear();
    const restore = breakWrites(kit, (_e, c) => c?.some((r) => r.kind === 'backchat') === true);
    const cid = await kit.client('cc-cid@localhost', 'r');
    try {
      const fin = await ann.iq('set', roomJid('cc-fail'), mamQuery());
      expect(conditionOf(fin)).to.equal('internal-server-error');
      expect(ann.inbox.filter((el) => el.name === 'message')).to.deep.equal([]);
      const self = await cid.join('cc-fail', 'cid');
      expect(self.attrs.type).to.equal(undefined);
      await settle(50);
      expect(cid.inbox.filter((el) => el.name === 'message' && el.getChildText('body'))).to.deep.equal([]);
    } finally {
      restore();
    }
  });

  it('a leave whose record fails still happens, and is logged and counted', async () => {
    await enable(true);
    const ann = await kit.client('cc-ann@localhost', 'l');
    await ann.join('cc-fail', 'annl');
    const restore = breakWrites(kit, (_e, c) => c?.some((r) => r.kind === 'part') === true);
    try {
      ann.send(new Element('presence', { to: `${roomJid('cc-fail')}/annl`, type: 'unavailable' }));
      const gone = await ann.next((el) => el.name === 'presence' && el.attrs.type === 'unavailable');
      expect(gone.getChild('x', MUC_USER)).to.not.equal(undefined);
      await settle(50);
    } finally {
      restore();
    }
    expect(kit.service.loadedRoom('cc-fail')!.occupants.has('annl')).to.equal(false);
    const metrics = await kit.server.metrics.registry.getSingleMetricAsString('perch_compliance_capture_failures_total');
    expect(metrics).to.match(/kind="part"} [1-9]/);
  });
});
