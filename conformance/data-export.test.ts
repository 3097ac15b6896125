// Export and import between two real servers: server A (PGlite) filled over XMPP and the admin CLI,
// `perch export` through its admin socket, `perch import` into an empty running server B (PostgreSQL), then the same
// queries against both (logins, rosters, vCards, disco items, MAM pages, offline messages, the
// persistent-chat model through the CLI). Also: dry runs change nothing, a conflict overwrites,
// levels, scopes and dates select, a corrupt file is refused with its line and changes nothing.
import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { gunzipSync, gzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer, login, iq, iqError, xml, perch, expectOk, useTestDatabase, type RunningServer, type LoggedIn, type XmppElement } from './harness.js';
import { NS, SERVICE, join, post, listedRooms, jsonOf, adhoc, outcome } from './pchat-kit.js';

const USERS = { alice: 'pw-alice', bob: 'pw-bob', carol: 'pw-carol' };
const DESK = `desk@${SERVICE}`;
const COURT = `court@${SERVICE}`;

let queries = 0;
/** A whole archive, oldest first: stanza ids and bodies. */
async function archive(c: LoggedIn, room: string | undefined): Promise<{ ids: string[]; bodies: string[]; count: number }> {
  const queryid = `dq${++queries}`;
  const reply = await iq(c, 'set', xml('query', { xmlns: NS.mam, queryid }, xml('set', { xmlns: NS.rsm }, xml('max', {}, '100'))), room);
  const results = c.received.filter((el) => el.is('message') && el.getChild('result', NS.mam)?.attrs.queryid === queryid);
  const set = reply.getChild('fin', NS.mam)!.getChild('set', NS.rsm)!;
  return {
    ids: results.map((r) => r.getChild('result', NS.mam)!.attrs.id as string),
    bodies: results.map((r) => r.getChild('result', NS.mam)!.getChild('forwarded', 'urn:xmpp:forward:0')!.getChild('message')!.getChildText('body') ?? ''),
    count: Number(set.getChildText('count')),
  };
}

/** The room's XEP-0045 owner configuration form, var → values (hidden FORM_TYPE included). */
async function ownerConfig(c: LoggedIn, room: string): Promise<Record<string, string[]>> {
  const r = await iq(c, 'get', xml('query', { xmlns: NS.owner }), room);
  const x = r.getChild('query', NS.owner)!.getChild('x', NS.data)!;
  return Object.fromEntries(x.getChildren('field').map((f: XmppElement) => [f.attrs.var, f.getChildren('value').map((v: XmppElement) => v.text())]));
}

async function roster(c: LoggedIn): Promise<string[]> {
  const r = await iq(c, 'get', xml('query', { xmlns: 'jabber:iq:roster' }));
  return r.getChild('query', 'jabber:iq:roster')!.getChildren('item')
    .map((i: XmppElement) => `${i.attrs.jid} ${i.attrs.name ?? ''} ${i.attrs.subscription} ${i.getChildren('group').map((g: XmppElement) => g.text()).join(',')}`).sort();
}

const PUBSUB_NS = 'http://jabber.org/protocol/pubsub';
const BOOKMARKS = 'urn:xmpp:bookmarks:1';
const AVATAR_DATA = 'urn:xmpp:avatar:data';
const AVATAR_METADATA = 'urn:xmpp:avatar:metadata';
/** A 1×1 PNG: the avatar published on A. */
const AVATAR_PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==', 'base64');
const AVATAR_ID = createHash('sha1').update(AVATAR_PNG).digest('hex');

/** Publishes one item on the account's own PEP node, with publish-options when given (XEP-0060 §7.1.5). */
async function publish(c: LoggedIn, node: string, id: string, payload: XmppElement, options: Record<string, string> = {}): Promise<void> {
  const children = [xml('publish', { node }, xml('item', { id }, payload))];
  if (Object.keys(options).length) {
    children.push(xml('publish-options', {}, xml('x', { xmlns: NS.data, type: 'submit' },
      xml('field', { var: 'FORM_TYPE', type: 'hidden' }, xml('value', {}, 'http://jabber.org/protocol/pubsub#publish-options')),
      ...Object.entries(options).map(([k, v]) => xml('field', { var: k }, xml('value', {}, v))))));
  }
  await iq(c, 'set', xml('pubsub', { xmlns: PUBSUB_NS }, ...children));
}

/** A PEP node's items as the service answers them: id → payload XML. */
async function pepItems(c: LoggedIn, owner: string, node: string): Promise<[string, string][]> {
  const r = await iq(c, 'get', xml('pubsub', { xmlns: PUBSUB_NS }, xml('items', { node })), owner);
  return r.getChild('pubsub', PUBSUB_NS)!.getChild('items')!.getChildren('item')
    .map((i: XmppElement) => [i.attrs.id as string, i.children.filter((x: unknown) => typeof x !== 'string').map(String).join('')]);
}

async function vcard(c: LoggedIn): Promise<string | null> {
  const r = await iq(c, 'get', xml('vCard', { xmlns: 'vcard-temp' }));
  return r.getChild('vCard', 'vcard-temp')?.getChildText('FN') ?? null;
}

describe('conformance: export and import between servers (PGlite to PostgreSQL)', function () {
  this.timeout(240000);
  // A on its embedded PGlite directory, B on a PostgreSQL database of its own: the move the format is for.
  const db = useTestDatabase('perch_export_');
  let a: RunningServer;
  let b: RunningServer;
  let files: string;
  const clients: LoggedIn[] = [];
  const onA = (...args: string[]) => perch(args, { dataDir: a.dataDir });
  const onB = (...args: string[]) => perch(args, { dataDir: b.dataDir, databaseUrl: db.url });
  const connect = async (s: RunningServer, user: keyof typeof USERS) => {
    const c = await login(s.ports.c2s, user, USERS[user]);
    clients.push(c);
    return c;
  };
  const exported = () => path.join(files, 'a.jsonl.gz');
  /** The CLI's view of the persistent-chat model and the directory. */
  const model = async (run: (...args: string[]) => ReturnType<typeof perch>) => ({
    categories: jsonOf(expectOk(await run('category', 'list', '--json'))),
    rooms: jsonOf(expectOk(await run('room', 'list', '--json'))),
    desk: jsonOf(expectOk(await run('room', 'show', 'desk', '--json'))),
    groups: jsonOf(expectOk(await run('group', 'list', '--json'))),
    units: jsonOf(expectOk(await run('ou', 'list', '--json'))),
    users: jsonOf(expectOk(await run('user', 'list', '--json'))),
  });

  before(async () => {
    files = await mkdtemp(path.join(tmpdir(), 'perch-export-files-'));
    a = await startServer({ users: USERS, admins: ['alice@localhost'] });
    b = await startServer({ databaseUrl: db.url });
    expectOk(await onA('ou', 'add', '/corp'));
    expectOk(await onA('user', 'set', 'alice@localhost', '--ou', '/corp'));
    expectOk(await onA('group', 'add', 'traders', '--members', 'bob@localhost', '--description', 'the desk'));
    expectOk(await onA('category', 'add', 'Finance', '--allowed', 'domain:localhost', '--creators', 'alice@localhost'));
    expectOk(await onA('category', 'add', 'Legal', '--allowed', 'domain:localhost'));
    expectOk(await onA('room', 'add', 'desk', '--category', 'Finance', '--members', 'alice@localhost,group:traders', '--managers', 'alice@localhost', '--description', 'trading'));
    expectOk(await onA('room', 'add', 'court', '--category', 'Legal', '--members', 'alice@localhost'));
    const alice = await connect(a, 'alice');
    const bob = await connect(a, 'bob');
    await iq(alice, 'set', xml('query', { xmlns: 'jabber:iq:roster' }, xml('item', { jid: 'bob@localhost', name: 'Bob' }, xml('group', {}, 'Desk'))));
    await iq(alice, 'set', xml('vCard', { xmlns: 'vcard-temp' }, xml('FN', {}, 'Alice A.')));
    expect(await join(alice, DESK, 'alice')).to.equal('ok');
    expect(await join(bob, DESK, 'bob')).to.equal('ok');
    expect(await join(alice, COURT, 'alice')).to.equal('ok');
    // XEP-0402 bookmarks (the followed rooms, joined at sign-in) and an XEP-0084 avatar, over PEP.
    const privateNode = { 'pubsub#persist_items': 'true', 'pubsub#access_model': 'whitelist', 'pubsub#max_items': 'max' };
    await publish(alice, BOOKMARKS, DESK, xml('conference', { xmlns: BOOKMARKS, name: 'The desk', autojoin: 'true' }, xml('nick', {}, 'alice')), privateNode);
    await publish(alice, BOOKMARKS, COURT, xml('conference', { xmlns: BOOKMARKS, name: 'Court', autojoin: 'false' }), privateNode);
    await publish(alice, AVATAR_DATA, AVATAR_ID, xml('data', { xmlns: AVATAR_DATA }, AVATAR_PNG.toString('base64')));
    await publish(alice, AVATAR_METADATA, AVATAR_ID, xml('metadata', { xmlns: AVATAR_METADATA },
      xml('info', { id: AVATAR_ID, bytes: String(AVATAR_PNG.length), type: 'image/png', width: '1', height: '1' })));
    for (let i = 1; i <= 3; i++) expect(await post(i % 2 ? alice : bob, DESK, `desk message ${i}`)).to.equal('ok');
    for (let i = 1; i <= 2; i++) expect(await post(alice, COURT, `court message ${i}`)).to.equal('ok');
    await alice.xmpp.send(xml('message', { to: 'carol@localhost', type: 'chat', id: 'off1' }, xml('body', {}, 'while you were away')));
    // The offline message is stored before the export reads it.
    await new Promise((r) => setTimeout(r, 500));
    await Promise.all(clients.splice(0).map((c) => c.stop()));
  });
  after(async () => {
    await Promise.all(clients.splice(0).map((c) => c.stop()));
    await a?.stop();
    await b?.stop();
    if (files) await rm(files, { recursive: true, force: true });
  });

  it('exports through the running server, with progress lines on stderr and none with --json', async () => {
    const r = expectOk(await onA('export', exported()));
    expect(r.stdout).to.match(/exported \d+ records \(level all\)/);
    expect(r.stderr).to.match(/^users \d+ records/m);
    const again = expectOk(await onA('export', path.join(files, 'json.jsonl.gz'), '--json'));
    expect(again.stderr).to.equal('');
    const out = jsonOf(again) as { counts: Record<string, number> };
    expect(out.counts).to.include({ user: 3, category: 2, 'chat-room': 2, group: 1, 'org-unit': 1, 'user-org-unit': 1, offline: 1 });
    // Alice's PEP nodes: bookmarks (two rooms), avatar data and metadata.
    expect(out.counts['pubsub-node']).to.be.at.least(3);
    expect(out.counts['pubsub-item']).to.be.at.least(4);
    expect(out.counts.message).to.be.at.least(5);
    const text = gunzipSync(await readFile(exported())).toString('utf8');
    expect(text).to.not.include('pw-alice');
  });

  it('a dry run on the empty server reports what would be created and changes nothing', async () => {
    const r = expectOk(await onB('import', exported(), '--dry-run', '--json'));
    const out = jsonOf(r) as { dryRun: boolean; report: Record<string, { created: number; overwritten: number }> };
    expect(out.dryRun).to.equal(true);
    expect(out.report.user).to.deep.include({ created: 3, overwritten: 0 });
    expect(out.report['chat-room']).to.deep.include({ created: 2 });
    expect(out.report['pubsub-item']!.created).to.be.at.least(4);
    expect(jsonOf(expectOk(await onB('user', 'list', '--json')))).to.deep.equal([]);
    expect(jsonOf(expectOk(await onB('room', 'list', '--json')))).to.deep.equal([]);
  });

  it('imports into the running empty server: every query answers the same on both', async () => {
    const reportFile = path.join(files, 'report.json');
    const importedAt = Date.now();
    const r = expectOk(await onB('import', exported(), '--report', reportFile));
    expect(r.stdout).to.match(/^KIND\s+CREATED\s+OVERWRITTEN\s+UNCHANGED\s+SKIPPED/m);
    expect(r.stdout).to.match(/imported \d+ records/);
    const report = JSON.parse(await readFile(reportFile, 'utf8')) as { report: Record<string, { created: number }> };
    expect(report.report.user!.created).to.equal(3);

    expect(await model(onB)).to.deep.equal(await model(onA));
    // Logins with the same passwords; then the same answers from both servers.
    const [aliceA, aliceB] = [await connect(a, 'alice'), await connect(b, 'alice')];
    expect(await roster(aliceB)).to.deep.equal(await roster(aliceA));
    expect(await roster(aliceB)).to.have.length(1);
    expect(await vcard(aliceB)).to.equal('Alice A.');
    // Her bookmarks, with autojoin, and her avatar: read back over XMPP from B as from A.
    const bookmarks = await pepItems(aliceB, 'alice@localhost', BOOKMARKS);
    expect(bookmarks).to.deep.equal(await pepItems(aliceA, 'alice@localhost', BOOKMARKS));
    expect(bookmarks.map(([id]) => id)).to.deep.equal([DESK, COURT]);
    expect(bookmarks[0]![1]).to.match(/autojoin=["']true["']/).and.to.include('<nick>alice</nick>');
    const avatar = await pepItems(aliceB, 'alice@localhost', AVATAR_DATA);
    expect(avatar).to.have.length(1);
    expect(avatar[0]![0]).to.equal(AVATAR_ID);
    expect(avatar[0]![1]).to.include(AVATAR_PNG.toString('base64'));
    const metadata = await pepItems(aliceB, 'alice@localhost', AVATAR_METADATA);
    expect(metadata).to.deep.equal(await pepItems(aliceA, 'alice@localhost', AVATAR_METADATA));
    // The node configuration came along: bookmarks stay private (whitelist), so bob is refused.
    const bobB = await connect(b, 'bob');
    expect(await iqError(bobB, 'get', xml('pubsub', { xmlns: PUBSUB_NS }, xml('items', { node: BOOKMARKS })), 'alice@localhost')).to.equal('not-allowed');
    // The live model of B followed the import: the governed rooms are listed and readable.
    expect((await listedRooms(aliceB)).sort()).to.deep.equal((await listedRooms(aliceA)).sort());
    expect(await listedRooms(aliceB)).to.include.members([DESK, COURT]);
    for (const room of [DESK, COURT]) {
      const [fromA, fromB] = [await archive(aliceA, room), await archive(aliceB, room)];
      expect(fromB).to.deep.equal(fromA);
    }
    expect((await archive(aliceB, DESK)).bodies).to.deep.equal(['desk message 1', 'desk message 2', 'desk message 3']);
    // Her personal archive (whatever the archiving policy put in it) and the rooms' XEP-0045 configuration.
    expect(await archive(aliceB, undefined)).to.deep.equal(await archive(aliceA, undefined));
    expect(await ownerConfig(aliceB, DESK)).to.deep.equal(await ownerConfig(aliceA, DESK));
    expect(Object.keys(await ownerConfig(aliceB, DESK))).to.include('muc#roomconfig_roomname');
    expect(await join(aliceB, DESK, 'alice')).to.equal('ok');
    const carol = await connect(b, 'carol');
    await carol.xmpp.send(xml('presence'));
    const offline = await carol.waitFor((e) => e.is('message') && e.getChildText('body') === 'while you were away', 8000);
    expect(offline.attrs.from).to.match(/^alice@localhost/);
    // Queued with its original time, not the import's.
    expect(Date.parse(offline.getChild('delay', 'urn:xmpp:delay')!.attrs.stamp as string)).to.be.below(importedAt);
  });

  it('a second import overwrites what changed since and leaves the rest unchanged', async () => {
    expectOk(await onB('room', 'set', 'desk', '--description', 'changed on B'));
    const out = jsonOf(expectOk(await onB('import', exported(), '--json'))) as { report: Record<string, { created: number; overwritten: number; unchanged: number }> };
    expect(out.report['chat-room']).to.deep.equal({ created: 0, overwritten: 1, unchanged: 1, skipped: 0 });
    expect(out.report.user).to.deep.include({ created: 0, overwritten: 0, unchanged: 3 });
    expect(out.report.message!.created).to.equal(0);
    expect(out.report['pubsub-item']).to.deep.include({ created: 0, overwritten: 0 });
    expect((jsonOf(expectOk(await onB('room', 'show', 'desk', '--json'))) as { description: string }).description).to.equal('trading');
  });

  it('selects by level, category scope and date', async () => {
    const legal = jsonOf(expectOk(await onA('export', path.join(files, 'legal.jsonl.gz'), '--level', 'content', '--scope', 'Legal', '--json'))) as { counts: Record<string, number> };
    expect(Object.keys(legal.counts)).to.deep.equal(['message']);
    const text = gunzipSync(await readFile(path.join(files, 'legal.jsonl.gz'))).toString('utf8');
    const archives = new Set(text.trim().split('\n').slice(1, -1).map((l) => (JSON.parse(l) as { archive: string }).archive));
    expect([...archives]).to.deep.equal([COURT]);
    const rooms = jsonOf(expectOk(await onA('export', path.join(files, 'rooms.jsonl.gz'), '--level', 'rooms', '--scope', 'finance', '--json'))) as { counts: Record<string, number> };
    expect(rooms.counts).to.deep.equal({ 'chat-room': 1, 'muc-room': 1 });
    const none = jsonOf(expectOk(await onA('export', path.join(files, 'later.jsonl.gz'), '--level', 'content', '--since', '2999-01-01', '--json'))) as { counts: Record<string, number> };
    expect(none.counts).to.deep.equal({});
    const users = jsonOf(expectOk(await onA('export', path.join(files, 'users.jsonl.gz'), '--level', 'users', '--json'))) as { counts: Record<string, number> };
    expect(users.counts).to.include({ user: 3, 'roster-item': 1, offline: 1 });
    expect(users.counts['pubsub-node']).to.be.at.least(3);
    expect(users.counts).to.not.have.any.keys('category', 'chat-room', 'group');
    const bad = await onA('export', path.join(files, 'x.jsonl.gz'), '--since', 'yesterday-ish');
    expect(bad.code).to.equal(2);
    expect(bad.stderr).to.include('--since');
  });

  it('offers the same operations as ad-hoc commands, to admins only', async () => {
    const [alice, bob] = [await connect(a, 'alice'), await connect(a, 'bob')];
    const file = path.join(files, 'adhoc.jsonl.gz');
    const r = await adhoc(alice, 'localhost', 'data-export', { file: [file], level: ['categories'] });
    expect(r.status).to.equal('completed');
    expect(r.notes.join('\n')).to.match(/exported \d+ records \(level categories\)/);
    const kinds = new Set(gunzipSync(await readFile(file)).toString('utf8').trim().split('\n').slice(1, -1).map((l) => (JSON.parse(l) as { type: string }).type));
    expect([...kinds].sort()).to.deep.equal(['category', 'settings']);
    const dry = await adhoc(alice, 'localhost', 'data-import', { file: [file], 'dry-run': ['true'] });
    expect(dry.notes.join('\n')).to.include('nothing was changed');
    expect(dry.fields.get('report')!.join('\n')).to.match(/category\s+0\s+0\s+2\s+0/);
    expect(await outcome(adhoc(bob, 'localhost', 'data-export', { file: [file] }))).to.equal('forbidden');
    expect(await outcome(adhoc(alice, 'localhost', 'data-export', { file: ['relative.jsonl.gz'] }))).to.equal('bad-request');
  });

  it('imports into a data directory no server holds, the CLI drawing the progress itself', async () => {
    const dataDir = path.join(files, 'stopped');
    await mkdir(dataDir, { mode: 0o700 });
    const r = expectOk(await perch(['import', exported()], { dataDir }));
    expect(r.stderr).to.match(/^checking\s+100% [\d.]+ KiB\/[\d.]+ KiB/m);
    expect(r.stdout).to.match(/imported \d+ records/);
    expect(jsonOf(expectOk(await perch(['user', 'list', '--json'], { dataDir })))).to.deep.equal(jsonOf(expectOk(await onA('user', 'list', '--json'))));
    expect(jsonOf(expectOk(await perch(['room', 'show', 'desk', '--json'], { dataDir })))).to.deep.equal(jsonOf(expectOk(await onA('room', 'show', 'desk', '--json'))));
  });

  it('refuses a corrupt file with its line number and changes nothing', async () => {
    const lines = gunzipSync(await readFile(exported())).toString('utf8').trim().split('\n');
    const user = JSON.parse(lines[1]!) as Record<string, unknown>;
    const corrupt = [lines[0]!, JSON.stringify({ ...user, username: 'zed' }), ...lines.slice(1)];
    corrupt[5] = '{"type":"user-data","username":';
    const file = path.join(files, 'corrupt.jsonl.gz');
    await writeFile(file, gzipSync(corrupt.join('\n') + '\n'));
    const r = await onB('import', file);
    expect(r.code).to.equal(2);
    expect(r.stderr).to.match(/line 6: not JSON/);
    expect(r.stderr).to.include('nothing was imported');
    expect(jsonOf(expectOk(await onB('user', 'list', '--json')))).to.not.include('zed@localhost');
    // An XML file is read as XEP-0227: its own checks answer (no such host), and its flags only apply to it.
    const xmlFile = path.join(files, 'other.xml');
    await writeFile(xmlFile, '<?xml version="1.0"?><server-data xmlns="urn:xmpp:pie:0"/>');
    const x = await onB('import', xmlFile);
    expect(x.code).to.equal(1);
    expect(x.stderr).to.match(/no accounts of host localhost/);
    const wrongFlag = await onB('import', file, '--host', 'example.org');
    expect(wrongFlag.code).to.equal(2);
    expect(wrongFlag.stderr).to.include('--host does not apply to a perch file');
    const text = path.join(files, 'notes.txt');
    await writeFile(text, 'hello');
    const unknown = await onB('import', text);
    expect(unknown.code).to.equal(2);
    expect(unknown.stderr).to.match(/unknown file format/);
  });
});
