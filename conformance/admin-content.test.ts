// Content administration against a real server process over real sockets: room clear and
// remove-messages through the CLI (the server's admin socket) and as XEP-0050 commands on the MUC
// service, seen by live occupants (XEP-0425 notices, join history) and by archive readers (XEP-0313);
// the room list's new filters; and the users eligible for a category or a room, groups nested, org
// units and a domain expanded.
import { expect } from 'chai';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer, login, iq, xml, perch, expectOk, randomName, useTestDatabase, type RunningServer, type LoggedIn, type XmppElement } from './harness.js';
import { NS, SERVICE, adhoc, adhocNode, commandNodes, enter, jsonOf, outcome, post, roomJid } from './pchat-kit.js';

const RETRACT = 'urn:xmpp:message-retract:1';
const MODERATE = 'urn:xmpp:message-moderate:1';
const REPLACED = 'urn:x-perch:moderation:0';
const REDIS_URL = process.env.CONFORMANCE_REDIS_URL ?? 'redis://127.0.0.1:6379';
const DEFAULT_REPLACEMENT = 'This message was replaced by the Persistent Chat administrator.';

let seq = 0;

/** Every message of a room's archive (XEP-0313), oldest first: [stanza-id, forwarded message]. */
async function archiveOf(c: LoggedIn, room: string): Promise<[string, XmppElement][]> {
  const queryid = `q${++seq}`;
  const at = c.received.length;
  await iq(c, 'set', xml('query', { xmlns: NS.mam, queryid }, xml('set', { xmlns: NS.rsm }, xml('max', {}, '50'))), room);
  return c.received.slice(at)
    .map((el) => el.getChild('result', NS.mam))
    .filter((r): r is XmppElement => r?.attrs.queryid === queryid)
    .map((r) => [r.attrs.id as string, r.getChild('forwarded', 'urn:xmpp:forward:0')!.getChild('message')!]);
}

/** The bodies of the join history a fresh session gets (delayed messages before the subject). */
async function historyBodies(c: LoggedIn, room: string, nick: string): Promise<string[]> {
  const at = c.received.length;
  expect((await enter(c, room, nick, { history: 20 })).outcome).to.equal('ok');
  await c.waitFor((e) => e.is('message') && e.attrs.from?.startsWith(room) === true && e.getChild('subject') !== undefined, 8000);
  return c.received.slice(at)
    .filter((e) => e.is('message') && e.attrs.from?.startsWith(`${room}/`) && e.getChild('delay', NS.delay))
    .map((e) => e.getChildText('body') ?? '');
}

describe('conformance: content administration (clear, remove-messages, list filters, eligible principals)', function () {
  this.timeout(180000);
  let dataDir = '';
  let server: RunningServer;
  const clients: LoggedIn[] = [];
  let root: LoggedIn;
  let alice: LoggedIn;
  let bob: LoggedIn;
  const run = (...args: string[]) => perch(args, { dataDir });

  before(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'perch-content-'));
    server = await startServer({ dataDir, users: { root: 'pw', alice: 'pw', bob: 'pw', carol: 'pw' }, admins: ['root@localhost'] });
    root = await login(server.ports.c2s, 'root', 'pw');
    alice = await login(server.ports.c2s, 'alice', 'pw');
    bob = await login(server.ports.c2s, 'bob', 'pw');
    clients.push(root, alice, bob);
    expectOk(await run('category', 'add', 'Finance', '--allowed', 'domain:localhost'));
    expectOk(await run('room', 'add', 'desk', '--category', 'Finance', '--privacy', 'open', '--managers', 'alice@localhost'));
    expectOk(await run('room', 'add', 'quiet', '--category', 'Finance', '--invitations', 'off'));
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.stop()));
    await server?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true, maxRetries: 3 });
  });

  it('remove-messages: occupants get XEP-0425 notices, MAM keeps tombstones and replacements, counts reported', async () => {
    const desk = roomJid('desk');
    expect((await enter(alice, desk, 'alice')).outcome).to.equal('ok');
    expect((await enter(bob, desk, 'bob')).outcome).to.equal('ok');
    for (const body of ['old secret one', 'keep me', 'old secret two', 'a private matter']) expect(await post(alice, desk, body)).to.equal('ok');
    const ids = new Map((await archiveOf(bob, desk)).map(([id, m]) => [m.getChildText('body'), id]));
    expect([...ids.keys()]).to.deep.equal(['old secret one', 'keep me', 'old secret two', 'a private matter']);

    // No filter, both modes, a bad date: refused, nothing changed (usage errors exit 2).
    const none = await run('room', 'remove-messages', 'desk');
    expect(none.code).to.equal(2);
    expect(none.stderr).to.match(/at least one filter .* room clear/);
    const both = await run('room', 'remove-messages', 'desk', '--filter', 'secret', '--remove', '--replace', 'x');
    expect([both.code, /exclude each other/.test(both.stderr)]).to.deep.equal([2, true]);
    const badDate = await run('room', 'remove-messages', 'desk', '--start', 'last week');
    expect([badDate.code, /not an XEP-0082 date/.test(badDate.stderr)]).to.deep.equal([2, true]);

    const dry = expectOk(await run('room', 'remove-messages', 'desk', '--filter', 'SECRET', '--dry-run'));
    expect(dry.stdout).to.match(/^2 message\(s\) of desk@conference.localhost match \(dry run: nothing changed\)$/m);
    expect(expectOk(await run('room', 'remove-messages', 'desk', '--filter', 'SECRET', '--case-sensitive', '--dry-run')).stdout).to.match(/^0 message/m);

    const removed = expectOk(await run('room', 'remove-messages', 'desk', '--author', 'alice@localhost', '--filter', 'secret', '--remove', '--json'));
    expect(jsonOf(removed)).to.deep.include({ matched: 2, changed: 2, mode: 'remove' });
    for (const body of ['old secret one', 'old secret two']) {
      const notice = await bob.waitFor((e) => e.is('message') && e.getChild('retract', RETRACT)?.attrs.id === ids.get(body), 8000);
      expect(notice.attrs.from).to.equal(desk);
      expect(notice.getChild('retract', RETRACT)!.getChild('moderated', MODERATE)?.attrs.by).to.equal(desk);
    }

    // The replacement through the ad-hoc command on the service, by an administrator.
    const replaced = await adhoc(root, SERVICE, 'room-remove-messages', { room: ['desk'], filter: ['private matter'], match: ['exact'] });
    expect(replaced.notes).to.deep.equal(['info: 1 message(s) of desk@conference.localhost matched, 1 replaced']);
    const notice = await bob.waitFor((e) => e.is('message') && e.getChild('retract', RETRACT)?.attrs.id === ids.get('a private matter'), 8000);
    expect(notice.getChildText('body')).to.equal(DEFAULT_REPLACEMENT);
    expect(notice.getChild('replaced', REPLACED)?.getChildText('body')).to.equal(DEFAULT_REPLACEMENT);
    // A room manager is no administrator here.
    expect(await outcome(adhoc(alice, SERVICE, 'room-remove-messages', { room: ['desk'], filter: ['keep'] }))).to.equal('forbidden');

    const archived = await archiveOf(bob, desk);
    expect(archived.map(([id]) => id)).to.deep.equal([...ids.values()]);
    const [one, keep, two, priv] = archived.map(([, m]) => m);
    for (const tomb of [one!, two!]) {
      expect(tomb.getChild('body')).to.equal(undefined);
      expect(tomb.getChild('retracted', RETRACT)?.getChild('moderated', MODERATE)?.attrs.by).to.equal(desk);
    }
    expect(keep!.getChildText('body')).to.equal('keep me');
    expect(priv!.getChildText('body')).to.equal(DEFAULT_REPLACEMENT);
    expect(priv!.getChild('replaced', REPLACED)?.getChild('moderated', MODERATE)?.attrs.by).to.equal(desk);
    // Join history shows what the archive now says.
    const carol = await login(server.ports.c2s, 'carol', 'pw');
    clients.push(carol);
    expect(await historyBodies(carol, desk, 'carol')).to.deep.equal(['keep me', DEFAULT_REPLACEMENT]);
  });

  it('room list: content size column, --content-larger and --invitations', async () => {
    const table = expectOk(await run('room', 'list')).stdout.trimEnd().split('\n');
    expect(table[0]).to.match(/^ROOM\s+NAME\s+CATEGORY\s+PRIVACY\s+TYPE\s+DISABLED\s+CONTENT\s+MEMBERS\s+MANAGERS\s+PRESENTERS$/);
    const rows = table.slice(1).map((l) => l.split(/\s{2,}/));
    expect(rows.map((r) => [r[0], r[6]])).to.deep.include(['quiet', '0 B']);
    expect(rows.find((r) => r[0] === 'desk')![6]).to.match(/^\d+(\.\d)? (B|KB)$/);
    const json = jsonOf(expectOk(await run('room', 'list', '--content-larger', '0.0001', '--json'))) as { room: string; contentBytes: number }[];
    expect(json.map((r) => r.room)).to.deep.equal(['desk']);
    expect(json[0]!.contentBytes).to.be.greaterThan(500);
    expect((jsonOf(expectOk(await run('room', 'list', '--content-larger', '1', '--json'))) as unknown[])).to.deep.equal([]);
    expect((jsonOf(expectOk(await run('room', 'list', '--invitations', 'off', '--json'))) as { room: string }[]).map((r) => r.room)).to.deep.equal(['quiet']);
    expect((await run('room', 'list', '--content-larger', 'big')).code).to.equal(2);
  });

  it('clear: live occupants\' join history and the archive lose what is on or before the date', async () => {
    const desk = roomJid('desk');
    const bad = await run('room', 'clear', 'desk', '--before', '31/12/2099');
    expect([bad.code, /not an XEP-0082 date/.test(bad.stderr)]).to.deep.equal([2, true]);
    expect((await run('room', 'clear', 'desk')).code).to.equal(2);
    expect(await outcome(adhoc(alice, SERVICE, 'room-clear', { room: ['desk'], before: ['2099-12-31'] }))).to.equal('forbidden');
    // Nothing is that old: nothing goes.
    expect(expectOk(await run('room', 'clear', 'desk', '--before', '2001-01-01')).stdout).to.match(/^0 message\(s\) of desk@conference.localhost on or before 2001-01-01T23:59:59.999Z deleted$/m);
    expect((await archiveOf(bob, desk)).length).to.equal(4);
    const tomorrow = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
    const r = await adhoc(root, SERVICE, 'room-clear', { room: ['desk'], before: [tomorrow] });
    expect(r.notes).to.deep.equal([`info: 4 message(s) of desk@conference.localhost on or before ${tomorrow}T23:59:59.999Z deleted`]);
    expect(await archiveOf(bob, desk)).to.deep.equal([]);
    const late = await login(server.ports.c2s, 'carol', 'pw', { resource: 'late' });
    clients.push(late);
    expect(await historyBodies(late, desk, 'carol-late')).to.deep.equal([]);
    expect(await post(alice, desk, 'a new start')).to.equal('ok');
    const later = await login(server.ports.c2s, 'carol', 'pw', { resource: 'later' });
    clients.push(later);
    expect(await historyBodies(later, desk, 'carol-later')).to.deep.equal(['a new start']);
  });

  it('eligible principals: nested groups, org units and a domain expanded, denied left out, filtered; by CLI and ad-hoc', async () => {
    expectOk(await run('group', 'add', 'inner', '--members', 'dana@localhost'));
    expectOk(await run('group', 'add', 'outer', '--members', 'group:inner,erin@localhost,gus@localhost'));
    expectOk(await run('ou', 'add', '/corp/emea'));
    expectOk(await run('user', 'set', 'frank', '--ou', '/corp/emea'));
    expectOk(await run('category', 'add', 'Traders', '--allowed', 'group:outer,ou:/corp', '--denied', 'gus@localhost'));
    expectOk(await run('room', 'add', 'stage', '--category', 'Traders', '--type', 'auditorium', '--members', 'group:inner,frank@localhost', '--presenters', 'frank@localhost', '--managers', 'frank@localhost'));

    const cat = jsonOf(expectOk(await run('principal', 'eligible', '--category', 'Traders', '--json'))) as { users: { jid: string; via: string[] }[] };
    expect(cat.users).to.deep.equal([
      { jid: 'dana@localhost', via: ['group:outer'] }, { jid: 'erin@localhost', via: ['group:outer'] }, { jid: 'frank@localhost', via: ['ou:/corp'] },
    ]);
    const text = expectOk(await run('principal', 'eligible', '--room', 'stage')).stdout.trimEnd().split('\n');
    expect(text).to.deep.equal(['USER             VIA', 'dana@localhost   group:inner', 'frank@localhost  frank@localhost', '2 user(s) eligible for room stage@conference.localhost']);
    expect(expectOk(await run('principal', 'eligible', '--room', 'stage', '--presenters')).stdout).to.match(/^frank@localhost\s+frank@localhost$/m);
    const notAuditorium = await run('principal', 'eligible', '--room', 'desk', '--presenters');
    expect([notAuditorium.code, /no auditorium/.test(notAuditorium.stderr)]).to.deep.equal([2, true]);
    expect((await run('principal', 'eligible')).code).to.equal(2);
    expect((await run('principal', 'eligible', '--category', 'Traders', '--room', 'stage')).code).to.equal(2);

    // The domain: every account of it (and the users the directory places), with the filter and limit.
    const domain = jsonOf(expectOk(await run('principal', 'eligible', '--room', 'desk', '--filter', '*O*@*', '--json'))) as { users: { jid: string; via: string[] }[] };
    expect(domain.users.map((u) => u.jid)).to.deep.equal(['bob@localhost', 'carol@localhost', 'root@localhost']);
    expect(domain.users.every((u) => u.via.join() === 'domain:localhost')).to.equal(true);
    const limited = jsonOf(expectOk(await run('principal', 'eligible', '--room', 'desk', '--limit', '2', '--json'))) as { users: unknown[]; truncated: boolean };
    expect([limited.users.length, limited.truncated]).to.deep.equal([2, true]);

    // Discovery: administrators see the three commands; other accounts only the listing of eligible users.
    const nodes = async (c: LoggedIn) => commandNodes(c, SERVICE);
    expect(await nodes(root)).to.include.members(['room-clear', 'room-remove-messages', 'principal-eligible'].map(adhocNode));
    const mine = await nodes(alice);
    expect(mine).to.include(adhocNode('principal-eligible'));
    expect(mine).to.not.include.members(['room-clear', 'room-remove-messages'].map(adhocNode));

    // Ad-hoc on the service: an administrator for a category; a manager for their own room only.
    const byAdmin = await adhoc(root, SERVICE, 'principal-eligible', { category: ['Traders'], filter: ['*a*@*'] });
    expect(byAdmin.fields.get('users')!.slice(1).map((l) => l.split(/\s+/))).to.deep.equal([['dana@localhost', 'group:outer'], ['frank@localhost', 'ou:/corp']]);
    expect(byAdmin.notes).to.deep.equal(['info: 2 user(s) eligible for category Traders']);
    const manager = await adhoc(alice, SERVICE, 'principal-eligible', { room: ['desk'], filter: ['alice@*'] });
    expect(manager.fields.get('users')!.slice(1).map((l) => l.split(/\s+/))).to.deep.equal([['alice@localhost', 'domain:localhost']]);
    // Outside its category's scope, stage does not exist for alice (answered as missing); bob sees desk but does not manage it.
    expect(await outcome(adhoc(alice, SERVICE, 'principal-eligible', { room: ['stage'] }))).to.equal('item-not-found');
    expect(await outcome(adhoc(bob, SERVICE, 'principal-eligible', { room: ['desk'] }))).to.equal('forbidden');
    expect(await outcome(adhoc(alice, SERVICE, 'principal-eligible', { category: ['Traders'] }))).to.equal('forbidden');
  });

  describe('on two nodes (PostgreSQL + Redis): the CLI on node a, the room held by node b', () => {
    const db = useTestDatabase('perch_content_');
    let nodeA: RunningServer;
    let nodeB: RunningServer;
    const two: LoggedIn[] = [];
    before(async function () {
      this.timeout(90000);
      const users = { root: 'pw', hana: 'pw', ivo: 'pw' };
      nodeA = await startServer({ databaseUrl: db.url, redisUrl: REDIS_URL, nodeId: randomName('content-a-'), users, admins: ['root@localhost'] });
      nodeB = await startServer({ databaseUrl: db.url, redisUrl: REDIS_URL, nodeId: randomName('content-b-'), users, skipUserCreation: true, admins: ['root@localhost'] });
    });
    after(async function () {
      this.timeout(60000);
      await Promise.all(two.map((c) => c.stop()));
      await Promise.all([nodeA?.stop(), nodeB?.stop()]);
    });

    it('remove-messages and clear reach the occupants and the join history of the node holding the room', async () => {
      const onA = (...args: string[]) => perch(args, { dataDir: nodeA.dataDir, databaseUrl: db.url });
      expectOk(await onA('category', 'add', 'Remote', '--allowed', 'domain:localhost'));
      expectOk(await onA('room', 'add', 'far', '--category', 'Remote', '--privacy', 'open'));
      const hana = await login(nodeB.ports.c2s, 'hana', 'pw');
      const ivo = await login(nodeB.ports.c2s, 'ivo', 'pw');
      two.push(hana, ivo);
      const far = roomJid('far');
      expect((await enter(hana, far, 'hana')).outcome).to.equal('ok');
      expect((await enter(ivo, far, 'ivo')).outcome).to.equal('ok');
      for (const body of ['first', 'leaked password hunter2', 'last']) expect(await post(hana, far, body)).to.equal('ok');
      const leaked = (await archiveOf(ivo, far)).find(([, m]) => m.getChildText('body')?.includes('hunter2'))![0];

      expect(jsonOf(expectOk(await onA('room', 'remove-messages', 'far', '--filter', 'hunter2', '--remove', '--json')))).to.deep.include({ matched: 1, changed: 1 });
      const notice = await ivo.waitFor((e) => e.is('message') && e.getChild('retract', RETRACT)?.attrs.id === leaked, 8000);
      expect(notice.attrs.from).to.equal(far);
      const late = await login(nodeB.ports.c2s, 'ivo', 'pw', { resource: 'late' });
      two.push(late);
      expect(await historyBodies(late, far, 'ivo-late')).to.deep.equal(['first', 'last']);

      const tomorrow = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
      expect(expectOk(await onA('room', 'clear', 'far', '--before', tomorrow)).stdout).to.match(/^3 message\(s\) of far@conference.localhost on or before/m);
      const later = await login(nodeB.ports.c2s, 'ivo', 'pw', { resource: 'later' });
      two.push(later);
      expect(await historyBodies(later, far, 'ivo-later')).to.deep.equal([]);
    });
  });
});
