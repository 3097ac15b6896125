// Content administration on a real server core (PGlite) with fake client sessions: clearing a room's
// archive (batches, progress, join history of live rooms), removing and replacing messages (tombstones,
// XEP-0425 notices to occupants, searches), room list filters on invitations and content size, and the
// users eligible for a category or a room (groups nested, org units, domains, denials).
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { Element } from '../../protocol/xml.js';
import { NS } from '../../protocol/namespaces.js';
import { NS_ADMIN_REPLACED } from '../../protocol/moderation.js';
import { chatModel } from '../../src/pchat/module.js';
import { ChatOpError, createCategory, createRoom as createChatRoom, listRooms, type ChatActor, type ChatOpContext } from '../../src/pchat/operations.js';
import { addOrgUnit, createGroup, setUserOrgUnit } from '../../src/pchat/directory-ops.js';
import {
  CLEAR_BATCH, DEFAULT_REPLACEMENT, clearRoom, eligiblePrincipals, parseAdminDate, removeMessages,
} from '../../src/pchat/content-ops.js';
import type { ArchiveEntry } from '../../storage/types.js';
import { SERVICE, createRoom, heard, roomJid, say, settle, startRoomKit, type FakeClient, type RoomKit } from '../muc/kit.js';

const LOCAL: ChatActor = { kind: 'local' };
const ADMIN: ChatActor = { kind: 'account', bare: 'root@localhost' };
const as = (bare: string): ChatActor => ({ kind: 'account', bare });

async function refused(p: Promise<unknown>, condition: string, text: RegExp): Promise<void> {
  try {
    await p;
  } catch (e) {
    expect(e, String(e)).to.be.instanceOf(ChatOpError);
    expect((e as ChatOpError).condition, (e as ChatOpError).message).to.equal(condition);
    expect((e as ChatOpError).message).to.match(text);
    return;
  }
  throw new Error(`expected a ${condition} refusal`);
}

const stanzaIdOf = (m: Element) => m.getChild('stanza-id', NS.sid)?.attrs.id ?? m.getChildren('stanza-id').find((s) => s.attrs.by)?.attrs.id;

/** The join history a new occupant gets: the bodies, oldest first. */
async function historyOf(kit: RoomKit, room: string, bare: string): Promise<string[]> {
  const c = await kit.client(bare, `h${Math.random().toString(36).slice(2, 8)}`);
  const subject = c.next((el) => el.name === 'message' && el.getChild('subject') !== undefined);
  await c.join(room, `reader-${Math.random().toString(36).slice(2, 8)}`);
  await subject;
  return c.inbox.filter((el) => el.name === 'message' && el.getChild('delay', 'urn:xmpp:delay') !== undefined).map((el) => el.getChildText('body') ?? '');
}

describe('content administration', function () {
  this.timeout(60000);
  let kit: RoomKit;
  let ctx: ChatOpContext;
  let owner: FakeClient;

  before(async () => {
    kit = await startRoomKit({ admins: ['root@localhost'] });
    const server = kit.server;
    ctx = {
      stores: server.stores, model: chatModel(server), domain: server.domain, services: [SERVICE],
      isAdmin: (b) => server.isAdmin(b), route: (s: Element) => server.router.route(s),
    };
    owner = await kit.client('owner@localhost');
  });
  after(async () => kit?.stop());

  describe('dates', () => {
    it('read XEP-0082 dates (a bare date ends or starts its day, UTC) and date-times, and refuse others', async () => {
      expect(parseAdminDate('2026-03-31', 'end', '--before').toISOString()).to.equal('2026-03-31T23:59:59.999Z');
      expect(parseAdminDate('2026-03-31', 'start', '--start').toISOString()).to.equal('2026-03-31T00:00:00.000Z');
      expect(parseAdminDate('2026-03-31T12:00:00+02:00', 'end', '--before').toISOString()).to.equal('2026-03-31T10:00:00.000Z');
      for (const bad of ['31/03/2026', '2026-02-30', 'yesterday', '2026-03-31T25:00:00Z']) {
        expect(() => parseAdminDate(bad, 'end', '--before')).to.throw(ChatOpError, /--before: .* is not an XEP-0082 date/);
      }
    });
  });

  describe('clear', () => {
    it('deletes what is on or before the date, oldest first in batches with progress, and live join history follows', async () => {
      await createRoom(owner, 'clearing');
      const jid = roomJid('clearing');
      // Old content written straight to the archive, beyond one batch.
      const old: ArchiveEntry[] = Array.from({ length: CLEAR_BATCH + 1500 }, (_, n) => ({
        archive: jid, stanzaId: `old-${n}`, stamp: new Date(Date.UTC(2020, 0, 1) + n * 1000), fromJid: `${jid}/old`,
        realJid: 'old@localhost', body: `old ${n}`, stanza: `<message type='groupchat'><body>old ${n}</body></message>`,
      }));
      for (let i = 0; i < old.length; i += 2000) await kit.server.stores.archive.append(old.slice(i, i + 2000));
      say(owner, 'clearing', 'fresh one');
      await heard(owner, 'fresh one');
      say(owner, 'clearing', 'fresh two');
      await heard(owner, 'fresh two');
      await settle();
      const progress: { phase: string; done: number; total?: number }[] = [];
      const r = await clearRoom(ctx, LOCAL, null, 'clearing', parseAdminDate('2020-12-31', 'end', '--before'), (p) => progress.push(p));
      expect(r.removed).to.equal(old.length);
      expect(progress.map((p) => p.done)).to.deep.equal([0, CLEAR_BATCH, old.length]);
      expect(progress.every((p) => p.phase === 'clear')).to.equal(true);
      expect((await kit.server.stores.archive.query(jid, { limit: 10 })).entries.map((e) => e.body)).to.deep.equal(['fresh one', 'fresh two']);
      expect(await historyOf(kit, 'clearing', 'reader1@localhost')).to.deep.equal(['fresh one', 'fresh two']);

      // Everything up to now: the live room's join history empties too.
      const all = await clearRoom(ctx, ADMIN, null, `clearing@${SERVICE}`, new Date());
      expect(all.removed).to.equal(2);
      expect((await kit.server.stores.archive.query(jid, { limit: 10 })).entries).to.deep.equal([]);
      await settle();
      expect(await historyOf(kit, 'clearing', 'reader2@localhost')).to.deep.equal([]);
      // New messages are history again.
      say(owner, 'clearing', 'after the clear');
      await heard(owner, 'after the clear');
      await settle();
      expect(await historyOf(kit, 'clearing', 'reader3@localhost')).to.deep.equal(['after the clear']);
    });

    it('is for administrators, on rooms that exist', async () => {
      await refused(clearRoom(ctx, as('owner@localhost'), null, 'clearing', new Date()), 'forbidden', /only administrators clear room content/);
      await refused(clearRoom(ctx, LOCAL, null, 'nowhere', new Date()), 'item-not-found', /no room nowhere@conference.localhost/);
    });
  });

  describe('remove-messages', () => {
    let ids: Record<string, string>;
    let occupant: FakeClient;

    before(async () => {
      await createRoom(owner, 'moderated-by-admin');
      occupant = await kit.client('olive@localhost');
      await occupant.join('moderated-by-admin', 'olive');
      const author = await kit.client('mallory@localhost');
      await author.join('moderated-by-admin', 'mallory');
      ids = {};
      for (const [who, text] of [[author, 'the secret plan'], [owner, 'a Secret meeting'], [author, 'lunch at noon'], [author, 'secret again']] as const) {
        say(who, 'moderated-by-admin', text);
        ids[text] = stanzaIdOf(await heard(occupant, text))!;
      }
      await settle();
    });

    it('refuses a run without filters, a bad author, and non-administrators', async () => {
      await refused(removeMessages(ctx, LOCAL, null, 'moderated-by-admin', {}), 'bad-request', /at least one filter .* room clear/);
      await refused(removeMessages(ctx, LOCAL, null, 'moderated-by-admin', { authors: ['room@conference.localhost/nick'] }), 'bad-request', /bare JID/);
      await refused(removeMessages(ctx, as('olive@localhost'), null, 'moderated-by-admin', { authors: ['mallory@localhost'] }), 'forbidden', /only administrators/);
    });

    it('counts without changing in a dry run', async () => {
      const r = await removeMessages(ctx, LOCAL, null, 'moderated-by-admin', { match: { text: 'secret', mode: 'all', caseSensitive: false } }, { dryRun: true });
      expect(r).to.deep.include({ matched: 3, changed: 0, dryRun: true });
      const cs = await removeMessages(ctx, LOCAL, null, 'moderated-by-admin', { match: { text: 'secret', mode: 'all', caseSensitive: true } }, { dryRun: true });
      expect(cs.matched).to.equal(2);
    });

    it('removes what author and keywords match: tombstones in the archive, XEP-0425 notices to occupants', async () => {
      occupant.clear();
      const r = await removeMessages(ctx, ADMIN, null, 'moderated-by-admin', { authors: ['mallory@localhost'], match: { text: 'secret', mode: 'all', caseSensitive: false } });
      expect(r).to.deep.include({ matched: 2, changed: 2, mode: 'remove' });
      for (const text of ['the secret plan', 'secret again']) {
        const notice = await occupant.next((el) => el.getChild('retract', NS.retract)?.attrs.id === ids[text]);
        expect(notice.attrs.from).to.equal(roomJid('moderated-by-admin'));
        expect(notice.getChild('retract', NS.retract)!.getChild('moderated', NS.moderate)?.attrs.by).to.equal(roomJid('moderated-by-admin'));
        const kept = await kit.server.stores.archive.get(roomJid('moderated-by-admin'), ids[text]!);
        expect(kept?.retracted).to.equal(true);
        expect(kept?.body).to.equal(null);
        expect(kept?.stanza).to.not.include('secret');
        expect(kept?.stanza).to.include(`<retracted xmlns='${NS.retract}'`);
      }
      // The owner's message matched the words but not the author.
      expect((await kit.server.stores.archive.get(roomJid('moderated-by-admin'), ids['a Secret meeting']!))?.body).to.equal('a Secret meeting');
      await settle();
      expect(await historyOf(kit, 'moderated-by-admin', 'reader4@localhost')).to.deep.equal(['a Secret meeting', 'lunch at noon']);
      // Already removed: not matched again.
      expect((await removeMessages(ctx, LOCAL, null, 'moderated-by-admin', { authors: ['mallory@localhost'] }, { dryRun: true })).matched).to.equal(1);
    });

    it('replaces: the body becomes the text, marked; searches find the replacement, occupants and join history see it', async () => {
      occupant.clear();
      const r = await removeMessages(ctx, LOCAL, null, 'moderated-by-admin', { match: { text: 'meeting', mode: 'exact', caseSensitive: false } }, { replacement: DEFAULT_REPLACEMENT });
      expect(r).to.deep.include({ matched: 1, changed: 1, mode: 'replace' });
      const id = ids['a Secret meeting']!;
      const notice = await occupant.next((el) => el.getChild('retract', NS.retract)?.attrs.id === id);
      expect(notice.getChildText('body')).to.equal(DEFAULT_REPLACEMENT);
      expect(notice.getChild('replaced', NS_ADMIN_REPLACED)?.getChildText('body')).to.equal(DEFAULT_REPLACEMENT);
      const kept = (await kit.server.stores.archive.get(roomJid('moderated-by-admin'), id))!;
      expect([kept.retracted, kept.body]).to.deep.equal([false, DEFAULT_REPLACEMENT]);
      expect(kept.stanza).to.include(`<replaced xmlns='${NS_ADMIN_REPLACED}'`);
      expect(kept.stanza).to.not.include('Secret');
      const search = async (text: string) => (await kit.server.stores.archive.query(roomJid('moderated-by-admin'), { match: { text, mode: 'all', caseSensitive: false }, limit: 10 })).entries.map((e) => e.stanzaId);
      expect(await search('meeting')).to.deep.equal([]);
      expect(await search('Persistent Chat administrator')).to.deep.equal([id]);
      await settle();
      expect(await historyOf(kit, 'moderated-by-admin', 'reader5@localhost')).to.deep.equal([DEFAULT_REPLACEMENT, 'lunch at noon']);
    });

    it('filters by time window', async () => {
      const future = new Date(Date.now() + 3_600_000);
      expect((await removeMessages(ctx, LOCAL, null, 'moderated-by-admin', { start: future }, { dryRun: true })).matched).to.equal(0);
      expect((await removeMessages(ctx, LOCAL, null, 'moderated-by-admin', { end: future }, { dryRun: true })).matched).to.equal(2);
      await refused(removeMessages(ctx, LOCAL, null, 'moderated-by-admin', { start: future, end: new Date(0) }), 'bad-request', /--start is after --end/);
    });
  });

  describe('governed rooms', () => {
    before(async () => {
      await createGroup(ctx, LOCAL, 'desk', { members: { replace: ['dana@localhost'] } });
      await createGroup(ctx, LOCAL, 'floor', { members: { replace: ['group:desk', 'fred@localhost', 'tom@localhost'] } });
      await createGroup(ctx, LOCAL, 'blocked', { members: { replace: ['tom@localhost'] } });
      await addOrgUnit(ctx, LOCAL, '/corp');
      await addOrgUnit(ctx, LOCAL, '/corp/emea');
      await setUserOrgUnit(ctx, LOCAL, 'emma@localhost', '/corp/emea');
      await setUserOrgUnit(ctx, LOCAL, 'carl@localhost', '/corp');
      for (const u of ['zoe', 'zack']) await kit.server.stores.users.create(u, creds());
      await createCategory(ctx, LOCAL, null, { name: 'Trading', allowed: { replace: ['group:floor', 'ou:/corp', 'zoe@localhost'] }, denied: { replace: ['group:blocked'] } });
      await createCategory(ctx, LOCAL, null, { name: 'Everyone', allowed: { replace: ['domain:localhost'] }, denied: { replace: ['zack@localhost'] } });
      await createChatRoom(ctx, LOCAL, null, 'desk-talk', { category: 'Trading', members: { replace: ['group:desk', 'ou:/corp/emea'] }, managers: { replace: ['emma@localhost'] } });
      await createChatRoom(ctx, LOCAL, null, 'floor-open', { category: 'Trading', privacy: 'open', invitations: 'off' });
      await createChatRoom(ctx, LOCAL, null, 'stage', { category: 'Trading', type: 'auditorium', members: { replace: ['group:floor'] }, presenters: { replace: ['fred@localhost'] } });
      await createChatRoom(ctx, LOCAL, null, 'all-hands', { category: 'Everyone' });
    });

    it('eligible for a category: its scope, nested groups and units below expanded, denied left out, with the entries', async () => {
      const r = await eligiblePrincipals(ctx, LOCAL, null, { category: 'Trading' });
      expect(r.users).to.deep.equal([
        { jid: 'carl@localhost', via: ['ou:/corp'] },
        { jid: 'dana@localhost', via: ['group:floor'] },
        { jid: 'emma@localhost', via: ['ou:/corp'] },
        { jid: 'fred@localhost', via: ['group:floor'] },
        { jid: 'zoe@localhost', via: ['zoe@localhost'] },
      ]);
      expect(r.of).to.equal('category Trading');
      const filtered = await eligiblePrincipals(ctx, LOCAL, null, { category: 'trading', filter: '*A*@localhost' });
      expect(filtered.users.map((u) => u.jid)).to.deep.equal(['carl@localhost', 'dana@localhost', 'emma@localhost']);
      const limited = await eligiblePrincipals(ctx, LOCAL, null, { category: 'Trading', limit: 2 });
      expect([limited.users.map((u) => u.jid), limited.truncated]).to.deep.equal([['carl@localhost', 'dana@localhost'], true]);
    });

    it('eligible for a room: its members, or the scope when open; a domain is every account of it', async () => {
      expect((await eligiblePrincipals(ctx, LOCAL, null, { room: 'desk-talk' })).users).to.deep.equal([
        { jid: 'dana@localhost', via: ['group:desk'] }, { jid: 'emma@localhost', via: ['ou:/corp/emea'] },
      ]);
      expect((await eligiblePrincipals(ctx, LOCAL, null, { room: 'floor-open' })).users.map((u) => u.jid))
        .to.deep.equal(['carl@localhost', 'dana@localhost', 'emma@localhost', 'fred@localhost', 'zoe@localhost']);
      const everyone = (await eligiblePrincipals(ctx, LOCAL, null, { room: 'all-hands' })).users;
      expect(everyone.map((u) => u.jid)).to.include.members(['zoe@localhost', 'dana@localhost', 'carl@localhost', 'tom@localhost']);
      expect(everyone.map((u) => u.jid)).to.not.include('zack@localhost');
      expect(everyone.every((u) => u.via.length === 1 && u.via[0] === 'domain:localhost')).to.equal(true);
      expect((await eligiblePrincipals(ctx, LOCAL, null, { room: 'stage', presenters: true })).users).to.deep.equal([{ jid: 'fred@localhost', via: ['fred@localhost'] }]);
    });

    it('eligible: one of category or room; presenters of auditoriums; managers for their rooms only', async () => {
      await refused(eligiblePrincipals(ctx, LOCAL, null, {}), 'bad-request', /exactly one/);
      await refused(eligiblePrincipals(ctx, LOCAL, null, { category: 'Trading', room: 'desk-talk' }), 'bad-request', /exactly one/);
      await refused(eligiblePrincipals(ctx, LOCAL, null, { room: 'desk-talk', presenters: true }), 'bad-request', /no auditorium/);
      expect((await eligiblePrincipals(ctx, as('emma@localhost'), null, { room: 'desk-talk' })).users).to.have.length(2);
      await refused(eligiblePrincipals(ctx, as('emma@localhost'), null, { room: 'stage' }), 'forbidden', /you do not manage/);
      await refused(eligiblePrincipals(ctx, as('emma@localhost'), null, { category: 'Trading' }), 'forbidden', /only administrators/);
    });

    it('room list filters on invitations and content size', async () => {
      expect((await listRooms(ctx, LOCAL, null, { invitations: 'off' })).map((r) => r.room)).to.deep.equal(['floor-open']);
      const jid = `desk-talk@${SERVICE}`;
      await kit.server.stores.archive.append([{ archive: jid, stanzaId: 'big', stamp: new Date(), fromJid: `${jid}/x`, realJid: 'dana@localhost', body: 'x', stanza: `<message><body>${'x'.repeat(3000)}</body></message>` }]);
      expect((await listRooms(ctx, LOCAL, null, { contentLargerThan: 2000 })).map((r) => r.room)).to.deep.equal(['desk-talk']);
      expect((await listRooms(ctx, LOCAL, null, { contentLargerThan: 0 })).map((r) => r.room)).to.deep.equal(['desk-talk']);
      expect(await listRooms(ctx, LOCAL, null, { contentLargerThan: 1e6 })).to.deep.equal([]);
    });

    it('clear works on a governed room', async () => {
      expect((await clearRoom(ctx, LOCAL, null, 'desk-talk', new Date())).removed).to.equal(1);
    });
  });
});

function creds() {
  const scram = () => ({ salt: randomBytes(8), iterations: 4096, storedKey: randomBytes(20), serverKey: randomBytes(20) });
  return { sha1: scram(), sha256: scram() };
}
