// Search inside a room and across the rooms of a MUC service (the MAM query sent to the service's
// JID, docs/persistent-chat.md "Search"), over real sockets to a real server: our fields
// (urn:x-perch:search:0) beside XEP-0431's, newest first, XEP-0059 paging across rooms, and what
// never leaks: disabled rooms, rooms the user may not read and categories with history off give no
// message, no count and no room name; a cursor from another user's rooms is unknown. Then a plain
// (ungoverned) service's rules, and a real client (slixmpp) paging through a search.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { startServer, login, iq, iqError, xml, REPO_ROOT, IN_CI, type RunningServer, type LoggedIn, type XmppElement } from './harness.js';
import { PchatCli, SERVICE, bare, roomJid, join, post } from './pchat-kit.js';

const NS = {
  mam: 'urn:xmpp:mam:2',
  rsm: 'http://jabber.org/protocol/rsm',
  data: 'jabber:x:data',
  forward: 'urn:xmpp:forward:0',
  sid: 'urn:xmpp:sid:0',
  discoInfo: 'http://jabber.org/protocol/disco#info',
  fulltext: 'urn:xmpp:fulltext:0',
  search: 'urn:x-perch:search:0',
  owner: 'http://jabber.org/protocol/muc#owner',
  roomconfig: 'http://jabber.org/protocol/muc#roomconfig',
};
const F = (name: string) => `{${NS.search}}${name}`;
const FULLTEXT = `{${NS.fulltext}}fulltext`;
type Fields = Record<string, string | string[]>;

function form(type: string, formType: string, fields: Fields): XmppElement {
  return xml('x', { xmlns: NS.data, type },
    xml('field', { var: 'FORM_TYPE', type: 'hidden' }, xml('value', {}, formType)),
    ...Object.entries(fields).map(([name, v]) => xml('field', { var: name }, ...(Array.isArray(v) ? v : [v]).map((value) => xml('value', {}, value)))));
}

interface Rsm { max?: number; after?: string; before?: string }
interface Page { rooms: string[]; nicks: string[]; bodies: string[]; ids: string[]; stanzaIdBy: string[]; first?: string; last?: string; count?: number; complete: boolean; raw: string }

let counter = 0;
function query(queryid: string, fields: Fields, rsm?: Rsm): XmppElement {
  return xml('query', { xmlns: NS.mam, queryid },
    Object.keys(fields).length ? form('submit', NS.mam, fields) : null,
    rsm ? xml('set', { xmlns: NS.rsm },
      rsm.max !== undefined ? xml('max', {}, String(rsm.max)) : null,
      rsm.after !== undefined ? xml('after', {}, rsm.after) : null,
      rsm.before !== undefined ? xml('before', {}, rsm.before) : null) : null);
}

/** One MAM query to `to` (a room or the service): the results in order, the fin's paging, and all the XML received for it. */
async function search(c: LoggedIn, to: string, fields: Fields = {}, rsm?: Rsm): Promise<Page> {
  const queryid = `s${++counter}`;
  const reply = await iq(c, 'set', query(queryid, fields, rsm), to);
  const fin = reply.getChild('fin', NS.mam)!;
  const results = c.received.filter((el) => el.is('message') && el.getChild('result', NS.mam)?.attrs.queryid === queryid);
  for (const r of results) expect(r.attrs.from).to.equal(to);
  const messages = results.map((r) => r.getChild('result', NS.mam)!.getChild('forwarded', NS.forward)!.getChild('message')!);
  const set = fin.getChild('set', NS.rsm);
  const count = set?.getChildText('count');
  return {
    rooms: messages.map((m) => (m.attrs.from as string).split('/')[0]!),
    nicks: messages.map((m) => (m.attrs.from as string).split('/')[1] ?? ''),
    bodies: messages.map((m) => m.getChildText('body') ?? ''),
    ids: results.map((r) => r.getChild('result', NS.mam)!.attrs.id as string),
    stanzaIdBy: messages.map((m) => m.getChild('stanza-id', NS.sid)?.attrs.by as string),
    ...(set?.getChild('first') ? { first: set.getChildText('first')! } : {}),
    ...(set?.getChild('last') ? { last: set.getChildText('last')! } : {}),
    ...(count !== null && count !== undefined ? { count: Number(count) } : {}),
    complete: fin.attrs.complete === 'true',
    raw: [...results, reply].map((e) => e.toString()).join('\n'),
  };
}
const searchError = (c: LoggedIn, to: string, fields: Fields = {}, rsm?: Rsm) => iqError(c, 'set', query(`s${++counter}`, fields, rsm), to);

async function formVars(c: LoggedIn, to: string): Promise<Map<string, XmppElement>> {
  const r = await iq(c, 'get', xml('query', { xmlns: NS.mam }), to);
  const x = r.getChild('query', NS.mam)!.getChild('x', NS.data)!;
  return new Map(x.getChildren('field').map((f: XmppElement) => [f.attrs.var as string, f]));
}

async function features(c: LoggedIn, to: string): Promise<string[]> {
  const r = await iq(c, 'get', xml('query', { xmlns: NS.discoInfo }), to);
  return r.getChild('query', NS.discoInfo)!.getChildren('feature').map((f: XmppElement) => f.attrs.var as string);
}

describe('conformance: search in a room and across rooms', function () {
  this.timeout(60000);

  describe('a governed service', () => {
    let server: RunningServer;
    let cli: PchatCli;
    const clients: LoggedIn[] = [];
    let alice: LoggedIn; // reads open rooms only
    let bob: LoggedIn; // member of every room, posts everywhere
    let carol: LoggedIn; // manager of pub-a: sees real JIDs there
    /** Rooms (localpart) and what bob said in each, oldest first. */
    const said: [string, string][] = [
      ['pub-a', 'zebra crossing ahead'],
      ['closed-x', 'zebra closed secret plan'],
      ['pub-b', 'Zebra stripes in the other category'],
      ['secret-x', 'zebra in the secret room'],
      ['nohist-x', 'zebra where history is off'],
      ['disabled-x', 'zebra before the room was disabled'],
      ['pub-a', 'the release plan for zebra'],
      ['pub-a', 'plan the release party'],
      ['pub-b', 'release notes'],
    ];
    const hidden = ['closed-x', 'secret-x', 'nohist-x', 'disabled-x'];

    before(async function () {
      this.timeout(120000);
      server = await startServer({ users: { alice: 'pw', bob: 'pw', carol: 'pw' } });
      cli = new PchatCli({ dataDir: server.dataDir });
      await cli.categoryAdd('main', { allowed: ['domain:localhost'] });
      await cli.categoryAdd('side', { allowed: ['domain:localhost'] });
      await cli.categoryAdd('quiet', { allowed: ['domain:localhost'], chatHistory: false });
      await cli.roomAdd('pub-a', { category: 'main', privacy: 'open', managers: [bare('carol')] });
      await cli.roomAdd('pub-b', { category: 'side', privacy: 'open' });
      await cli.roomAdd('closed-x', { category: 'main', privacy: 'closed', members: [bare('bob')] });
      await cli.roomAdd('secret-x', { category: 'main', privacy: 'secret', members: [bare('bob')] });
      await cli.roomAdd('nohist-x', { category: 'quiet', privacy: 'open' });
      await cli.roomAdd('disabled-x', { category: 'main', privacy: 'open' });
      [alice, bob, carol] = await Promise.all(['alice', 'bob', 'carol'].map((u) => login(server.ports.c2s, u, 'pw')));
      clients.push(alice, bob, carol);
      for (const room of new Set(said.map(([r]) => r))) expect(await join(bob, roomJid(room), 'bobby'), room).to.equal('ok');
      for (const [room, body] of said) expect(await post(bob, roomJid(room), body), body).to.equal('ok');
      await cli.roomDisable('disabled-x');
    });
    after(async () => {
      await Promise.all(clients.map((c) => c.stop()));
      await server?.stop();
    });

    it('advertises MAM and our fields on the service and in rooms', async () => {
      expect(await features(alice, SERVICE)).to.include.members([NS.mam, NS.fulltext, NS.search]);
      expect(await features(alice, roomJid('pub-a'))).to.include.members([NS.mam, NS.fulltext, NS.search]);
      const across = await formVars(alice, SERVICE);
      expect([...across.keys()]).to.include.members(['FORM_TYPE', 'start', 'end', FULLTEXT, F('text'), F('match'), F('case-sensitive'), F('authors'), F('category'), F('rooms')]);
      expect([...across.keys()]).to.not.include('with');
      expect(across.get(F('match'))!.getChildren('option').map((o: XmppElement) => o.getChildText('value'))).to.deep.equal(['all', 'any', 'exact']);
      const inRoom = await formVars(alice, roomJid('pub-a'));
      expect([...inRoom.keys()]).to.include.members(['with', FULLTEXT, F('text'), F('match'), F('case-sensitive'), F('authors')]);
      expect([...inRoom.keys()]).to.not.include(F('category'));
    });

    it('searches every readable room, newest first; each result names its room', async () => {
      const p = await search(alice, SERVICE, { [F('text')]: 'zebra' });
      expect(p.bodies).to.deep.equal(['the release plan for zebra', 'Zebra stripes in the other category', 'zebra crossing ahead']);
      expect(p.rooms).to.deep.equal([roomJid('pub-a'), roomJid('pub-b'), roomJid('pub-a')]);
      expect(p.nicks).to.deep.equal(['bobby', 'bobby', 'bobby']);
      expect(p.stanzaIdBy).to.deep.equal(p.rooms);
      expect(p.count).to.equal(3);
      expect(p.complete).to.equal(true);
      // XEP-0431's field works across rooms too.
      expect((await search(alice, SERVICE, { [FULLTEXT]: 'zebra' })).count).to.equal(3);
    });

    it('never leaks a message, a count or a room name of rooms the user may not read', async () => {
      for (const fields of [{ [F('text')]: 'zebra' }, {}, { [F('rooms')]: hidden.map(roomJid) }, { [F('category')]: 'quiet' }, { [F('authors')]: ['bobby'] }]) {
        const p = await search(alice, SERVICE, fields, { max: 100 });
        for (const name of hidden) expect(p.raw, `${JSON.stringify(fields)} names ${name}`).to.not.include(name);
        expect(p.bodies.filter((b) => /secret|closed|history is off|disabled/.test(b))).to.deep.equal([]);
      }
      // The count is over readable rooms only: alice reads 5 messages (3 in pub-a, 2 in pub-b).
      expect((await search(alice, SERVICE, {})).count).to.equal(5);
      expect((await search(alice, SERVICE, { [F('rooms')]: [roomJid('secret-x')] })).count).to.equal(0);
      expect((await search(alice, SERVICE, { [F('category')]: 'quiet' })).count).to.equal(0);
      // bob reads closed and secret rooms, not the disabled one nor the category without history.
      const b = await search(bob, SERVICE, { [F('text')]: 'zebra' });
      expect(b.rooms).to.have.members([roomJid('pub-a'), roomJid('pub-a'), roomJid('pub-b'), roomJid('closed-x'), roomJid('secret-x')]);
      // A cursor naming bob's secret room is unknown to alice, as a made-up one is.
      const secretId = b.ids[b.rooms.indexOf(roomJid('secret-x'))]!;
      expect(await searchError(alice, SERVICE, { [F('text')]: 'zebra' }, { max: 1, after: secretId })).to.equal('item-not-found');
      expect(await searchError(alice, SERVICE, { [F('text')]: 'zebra' }, { max: 1, after: 'bm90IGEgY3Vyc29y' })).to.equal('item-not-found');
    });

    it('answers a room search on a room the user may not see as for a room that does not exist', async () => {
      const missing = await searchError(alice, roomJid('no-such-room'), { [F('text')]: 'zebra' });
      expect(missing).to.equal('item-not-found');
      expect(await searchError(alice, roomJid('secret-x'), { [F('text')]: 'zebra' })).to.equal(missing);
      expect(await searchError(alice, roomJid('disabled-x'), { [F('text')]: 'zebra' })).to.equal(missing);
    });

    it('limits to a category and to rooms', async () => {
      expect((await search(alice, SERVICE, { [F('text')]: 'zebra', [F('category')]: 'SIDE' })).rooms).to.deep.equal([roomJid('pub-b')]);
      expect((await search(alice, SERVICE, { [F('category')]: 'main' })).rooms).to.deep.equal([roomJid('pub-a'), roomJid('pub-a'), roomJid('pub-a')]);
      expect((await search(alice, SERVICE, { [F('rooms')]: [roomJid('pub-b')] })).bodies).to.deep.equal(['release notes', 'Zebra stripes in the other category']);
    });

    it('matches all, any, the exact text, case-sensitive, a date window, in a room and across rooms', async () => {
      const room = roomJid('pub-a');
      expect((await search(alice, room, { [F('text')]: 'release plan' })).bodies).to.deep.equal(['plan the release party', 'the release plan for zebra']);
      expect((await search(alice, room, { [F('text')]: 'release plan', [F('match')]: 'exact' })).bodies).to.deep.equal(['the release plan for zebra']);
      expect((await search(alice, room, { [F('text')]: 'party crossing', [F('match')]: 'any' })).bodies).to.deep.equal(['plan the release party', 'zebra crossing ahead']);
      expect((await search(alice, SERVICE, { [F('text')]: 'Zebra', [F('case-sensitive')]: '1' })).bodies).to.deep.equal(['Zebra stripes in the other category']);
      expect((await search(alice, SERVICE, { [F('text')]: 'release', [F('match')]: 'any' })).bodies).to.deep.equal(['release notes', 'plan the release party', 'the release plan for zebra']);
      expect((await search(alice, SERVICE, { [F('text')]: 'zebra', start: '2000-01-01T00:00:00Z', end: '2000-01-02T00:00:00Z' })).count).to.equal(0);
      expect((await search(alice, SERVICE, { [F('text')]: 'zebra', start: '2000-01-01T00:00:00Z' })).count).to.equal(3);
      expect(await searchError(alice, SERVICE, { [F('text')]: 'zebra', [F('match')]: 'some' })).to.equal('bad-request');
      expect(await searchError(alice, SERVICE, { [F('text')]: 'zebra', [F('case-sensitive')]: 'maybe' })).to.equal('bad-request');
      expect(await searchError(alice, room, { [F('category')]: 'main' })).to.equal('feature-not-implemented');
      expect(await searchError(alice, SERVICE, { with: bare('bob') })).to.equal('feature-not-implemented');
    });

    it('finds authors by real JID only for who may see it, else by nick', async () => {
      const room = roomJid('pub-a');
      const byNick = await search(alice, room, { [F('authors')]: 'bobby' });
      expect(byNick.bodies).to.deep.equal(['plan the release party', 'the release plan for zebra', 'zebra crossing ahead']);
      expect((await search(alice, room, { [F('authors')]: bare('bob') })).count).to.equal(0);
      expect((await search(carol, room, { [F('authors')]: bare('bob') })).count).to.equal(3);
      // Across rooms: carol sees real JIDs in pub-a (she manages it), not in pub-b.
      expect((await search(carol, SERVICE, { [F('authors')]: bare('bob') })).rooms).to.deep.equal([room, room, room]);
      expect((await search(alice, SERVICE, { [F('authors')]: ['nobody', 'bobby'] })).count).to.equal(5);
    });

    it('pages across rooms with XEP-0059, forwards and backwards', async () => {
      const all = await search(alice, SERVICE, {}, { max: 10 });
      expect(all.count).to.equal(5);
      const seen: string[] = [];
      let after: string | undefined;
      for (let n = 0; n < 3; n++) {
        const p = await search(alice, SERVICE, {}, { max: 2, ...(after ? { after } : {}) });
        expect(p.count).to.equal(5);
        seen.push(...p.bodies);
        after = p.last;
        expect(p.complete).to.equal(n === 2);
      }
      expect(seen).to.deep.equal(all.bodies);
      const last = await search(alice, SERVICE, {}, { max: 2, before: '' });
      expect(last.bodies).to.deep.equal(all.bodies.slice(3));
      const before = await search(alice, SERVICE, {}, { max: 2, before: last.first! });
      expect(before.bodies).to.deep.equal(all.bodies.slice(1, 3));
    });
  });

  describe('a plain service', () => {
    let server: RunningServer;
    const clients: LoggedIn[] = [];

    before(async function () {
      this.timeout(60000);
      server = await startServer({ users: { owner: 'pw', reader: 'pw', member: 'pw' } });
    });
    after(async () => {
      await Promise.all(clients.map((c) => c.stop()));
      await server?.stop();
    });

    it('searches persistent open rooms and those where the user is a member; never members-only, password or banned ones', async () => {
      const [owner, reader, member] = await Promise.all(['owner', 'reader', 'member'].map((u) => login(server.ports.c2s, u, 'pw')));
      clients.push(owner, reader, member);
      const make = async (local: string, config: Fields, body: string) => {
        const room = roomJid(local);
        expect(await join(owner, room, 'boss')).to.equal('ok');
        await iq(owner, 'set', xml('query', { xmlns: NS.owner }, form('submit', NS.roomconfig, { 'muc#roomconfig_persistentroom': '1', ...config })), room);
        expect(await post(owner, room, body)).to.equal('ok');
        return room;
      };
      const open = await make('plain-open', {}, 'kiwi open');
      await make('plain-members', { 'muc#roomconfig_membersonly': '1' }, 'kiwi members');
      await make('plain-password', { 'muc#roomconfig_passwordprotectedroom': '1', 'muc#roomconfig_roomsecret': 's3' }, 'kiwi password');
      const mine = await make('plain-mine', { 'muc#roomconfig_membersonly': '1', 'muc#roomconfig_publicroom': '0' }, 'kiwi mine');
      const banned = await make('plain-banned', {}, 'kiwi banned');
      const setAff = (room: string, jid: string, affiliation: string) =>
        iq(owner, 'set', xml('query', { xmlns: 'http://jabber.org/protocol/muc#admin' }, xml('item', { jid, affiliation })), room);
      await setAff(mine, bare('member'), 'member');
      await setAff(banned, bare('reader'), 'outcast');

      const r = await search(reader, SERVICE, { [F('text')]: 'kiwi' });
      expect(r.bodies).to.deep.equal(['kiwi open']);
      expect(r.count).to.equal(1);
      for (const name of ['plain-members', 'plain-password', 'plain-mine', 'plain-banned']) expect(r.raw).to.not.include(name);
      const m = await search(member, SERVICE, { [F('text')]: 'kiwi' });
      expect(m.bodies).to.deep.equal(['kiwi banned', 'kiwi mine', 'kiwi open']);
      expect(m.rooms).to.deep.equal([banned, mine, open]);
      // The owner sees real JIDs in its rooms: authors by JID; the reader does not (nick only).
      expect((await search(owner, SERVICE, { [F('authors')]: bare('owner') })).count).to.equal(5);
      expect((await search(reader, SERVICE, { [F('authors')]: bare('owner') })).count).to.equal(0);
      expect((await search(reader, SERVICE, { [F('authors')]: 'boss' })).count).to.equal(1);
      expect((await search(reader, open, { [F('text')]: 'KIWI', [F('case-sensitive')]: 'true' })).count).to.equal(0);
    });
  });

  describe('a real client (slixmpp)', () => {
    const PYTHON = '/usr/bin/python3';
    const SCRIPT = path.join(REPO_ROOT, 'conformance', 'clients', 'slixmpp_search.py');
    let server: RunningServer;

    before(async function () {
      this.timeout(60000);
      const ok = existsSync(PYTHON) && await new Promise<boolean>((resolve) => spawn(PYTHON, ['-c', 'import slixmpp']).once('close', (code) => resolve(code === 0)));
      if (!ok) {
        const msg = 'slixmpp_search: /usr/bin/python3 with slixmpp (python3-slixmpp) is missing';
        if (IN_CI) throw new Error(msg);
        console.warn(`    skipping: ${msg}`);
        this.skip();
      }
      server = await startServer({ users: { sam: 'pw', poster: 'pw' } });
      const cli = new PchatCli({ dataDir: server.dataDir });
      await cli.categoryAdd('slix', { allowed: ['domain:localhost'] });
      await cli.roomAdd('slix-one', { category: 'slix', privacy: 'open' });
      await cli.roomAdd('slix-two', { category: 'slix', privacy: 'open' });
      await cli.roomAdd('slix-closed', { category: 'slix', privacy: 'closed', members: [bare('poster')] });
      const poster = await login(server.ports.c2s, 'poster', 'pw');
      for (const room of ['slix-one', 'slix-two', 'slix-closed']) expect(await join(poster, roomJid(room), 'poster')).to.equal('ok');
      for (const [room, body] of [['slix-one', 'apple one'], ['slix-two', 'apple two'], ['slix-closed', 'apple closed'], ['slix-one', 'apple three'], ['slix-two', 'pear']]) {
        expect(await post(poster, roomJid(room!), body!)).to.equal('ok');
      }
      await poster.stop();
    });
    after(async () => {
      await server?.stop();
    });

    it('pages through a search across rooms', async () => {
      const child = spawn(PYTHON, [SCRIPT, '127.0.0.1', String(server.ports.c2s), bare('sam'), 'pw', SERVICE, 'apple'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      const guard = setTimeout(() => child.kill('SIGKILL'), 40000);
      const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
      clearTimeout(guard);
      expect(code, `slixmpp_search exited ${code}:\n${stderr}`).to.equal(0);
      const lines = stdout.split('\n').filter((l) => l.startsWith('RESULT ')).map((l) => l.slice(7));
      expect(lines).to.deep.equal([
        `${roomJid('slix-one')} apple three`,
        `${roomJid('slix-two')} apple two`,
        `${roomJid('slix-one')} apple one`,
        'done count=3 pages=2',
      ]);
    });
  });
});
