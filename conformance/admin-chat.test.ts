// The persistent-chat admin commands through their faces against a real server process: the CLI on
// the database (no server), the CLI through the running server's socket, and the ad-hoc commands on
// the MUC service's JID over a real client connection (admins, and a room's manager on their room).
import { expect } from 'chai';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  startServer, login, iq, xml, perch, expectOk, type RunningServer, type LoggedIn, type XmppElement,
} from './harness.js';

const NS = {
  commands: 'http://jabber.org/protocol/commands',
  data: 'jabber:x:data',
  conference: 'jabber:x:conference',
  discoItems: 'http://jabber.org/protocol/disco#items',
};
const SERVICE = 'conference.localhost';
const node = (id: string) => `http://jabber.org/protocol/admin#${id}`;

function form(fields: Record<string, string[]>): XmppElement {
  return xml('x', { xmlns: NS.data, type: 'submit' },
    xml('field', { var: 'FORM_TYPE' }, xml('value', {}, 'http://jabber.org/protocol/admin')),
    ...Object.entries(fields).map(([k, vs]) => xml('field', { var: k }, ...vs.map((v) => xml('value', {}, v)))));
}

/** Runs an ad-hoc command in one step (the submitted form with the execute); the <iq/> answer. */
async function adhoc(c: LoggedIn, id: string, fields: Record<string, string[]>, to = SERVICE): Promise<XmppElement> {
  const answer = new Promise<XmppElement>((resolve) => {
    const at = c.received.length;
    const check = setInterval(() => {
      const found = c.received.slice(at).find((el) => el.is('iq') && el.attrs.id === reqId);
      if (found) { clearInterval(check); resolve(found); }
    }, 20);
  });
  const reqId = `cmd-${Math.random().toString(36).slice(2)}`;
  await c.xmpp.send(xml('iq', { type: 'set', to, id: reqId }, xml('command', { xmlns: NS.commands, node: node(id), action: 'execute' }, form(fields))));
  return answer;
}

const notes = (r: XmppElement): string[] => (r.getChild('command', NS.commands)?.getChildren('note') ?? []).map((n: XmppElement) => n.text());
const errorOf = (r: XmppElement): { condition: string; text: string } => {
  const e = r.getChild('error');
  const condition = e?.children.find((ch: unknown) => typeof ch === 'object' && (ch as XmppElement).attrs?.xmlns === 'urn:ietf:params:xml:ns:xmpp-stanzas' && (ch as XmppElement).name !== 'text') as XmppElement | undefined;
  return { condition: condition?.name ?? '', text: e?.getChildText('text', 'urn:ietf:params:xml:ns:xmpp-stanzas') ?? '' };
};

describe('conformance: persistent-chat administration (CLI and ad-hoc faces)', function () {
  this.timeout(180000);
  let template = '';
  const dirs: string[] = [];
  const servers: RunningServer[] = [];
  const clients: LoggedIn[] = [];

  before(async () => {
    template = await mkdtemp(path.join(tmpdir(), 'perch-chat-template-'));
    expectOk(await perch(['migrate'], { dataDir: template }));
  });
  after(async () => {
    if (template) await rm(template, { recursive: true, force: true, maxRetries: 3 });
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.stop()));
    await Promise.all(servers.splice(0).map((s) => s.stop()));
    await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true, maxRetries: 3 })));
  });
  async function ownDir(): Promise<string> {
    const d = await mkdtemp(path.join(tmpdir(), 'perch-chat-'));
    dirs.push(d);
    await cp(template, d, { recursive: true });
    return d;
  }

  it('manages categories, groups and rooms on the database when no server runs', async () => {
    const dataDir = await ownDir();
    const run = (...args: string[]) => perch(args, { dataDir });
    expectOk(await run('group', 'add', 'traders', '--members', 'tom@localhost', '--description', 'the desk'));
    expectOk(await run('category', 'add', 'Finance', '--allowed', 'domain:localhost', '--denied', 'group:traders', '--creators', 'alice@localhost', '--invitations'));
    const out = await run('room', 'add', 'desk', '--category', 'finance', '--members', 'alice@localhost,group:traders');
    expect(out.code, out.stderr).to.equal(1);
    expect(out.stderr).to.match(/perch: room-add: group:traders is outside the scope of category Finance/);
    const unknown = await run('room', 'add', 'desk', '--category', 'finance', '--members', 'group:nobody');
    expect(unknown.code).to.equal(1);
    expect(unknown.stderr).to.match(/principal not provisioned: group:nobody/);
    expectOk(await run('room', 'add', 'desk', '--category', 'finance', '--name', 'Trading Desk', '--members', 'alice@localhost,bob@localhost', '--managers', 'alice@localhost'));
    expectOk(await run('room', 'add', 'lobby', '--category', 'Finance', '--privacy', 'open'));
    expectOk(await run('room', 'set', 'desk', '--members', '-bob@localhost,+carol@localhost'));
    expectOk(await run('room', 'set', 'lobby', '--members', ''));

    const table = expectOk(await run('room', 'list')).stdout.trimEnd().split('\n');
    expect(table[0]).to.match(/^ROOM\s+NAME\s+CATEGORY\s+PRIVACY\s+TYPE\s+DISABLED\s+CONTENT\s+MEMBERS\s+MANAGERS\s+PRESENTERS$/);
    expect(table.slice(1).map((l) => l.split(/\s{2,}/))).to.deep.equal([
      ['desk', 'Trading Desk', 'Finance', 'closed', 'normal', 'no', '0 B', 'alice@localhost,carol@localhost', 'alice@localhost', '-'],
      ['lobby', 'lobby', 'Finance', 'open', 'normal', 'no', '0 B', '(inherit)', '-', '-'],
    ]);
    // The columns line up: every row's second column starts where the header's does.
    const col = table[0]!.indexOf('NAME');
    for (const l of table.slice(1)) expect(l[col - 1]).to.equal(' ');
    const json = JSON.parse(expectOk(await run('room', 'list', '--json')).stdout);
    expect(json.ok).to.equal(true);
    expect(json.output.map((r: { room: string; members: string[] | null }) => [r.room, r.members])).to.deep.equal([
      ['desk', ['alice@localhost', 'carol@localhost']], ['lobby', null],
    ]);
    // Stored for carol, though no server could send it.
    const cats = JSON.parse(expectOk(await run('category', 'list', '--json')).stdout).output;
    expect(cats.map((c: { name: string; invitations: boolean }) => [c.name, c.invitations])).to.deep.equal([['Finance', true]]);

    const del = await run('category', 'delete', 'Finance');
    expect(del.code).to.equal(1);
    expect(del.stderr).to.match(/still has rooms/);
  });

  it('gives help on each command and exits 2 on usage errors', async () => {
    const dataDir = await ownDir();
    for (const [noun, verbs] of Object.entries({ category: ['add', 'set', 'list', 'delete'], room: ['add', 'set', 'list', 'delete', 'disable', 'enable'], group: ['add', 'set', 'list', 'delete', 'show'], ou: ['add', 'list', 'delete'], addin: ['add', 'set', 'list', 'delete'], service: ['get', 'set'], policy: ['get', 'set'] })) {
      expect(expectOk(await perch([noun, '--help'], { dataDir })).stdout).to.match(new RegExp(`perch ${noun} ${verbs[0]}`));
      for (const v of verbs) expect(expectOk(await perch([noun, v, '--help'], { dataDir })).stdout, `${noun} ${v}`).to.match(/^Usage: perch /m);
    }
    expect(expectOk(await perch(['user', 'set', '--help'], { dataDir })).stdout).to.match(/--ou/);
    expect((await perch(['room', 'add'], { dataDir })).code).to.equal(2);
    expect((await perch(['room', 'set', 'x', '--colour', 'red'], { dataDir })).code).to.equal(2);
    expect((await perch(['room', 'frobnicate'], { dataDir })).code).to.equal(2);
  });

  it('acts through the running server: invitations reach members (offline ones when they come online)', async () => {
    const dataDir = await ownDir();
    const server = await startServer({ dataDir, users: { alice: 'pw', bob: 'pw' } });
    servers.push(server);
    const bob = await login(server.ports.c2s, 'bob', 'pw');
    clients.push(bob);
    expectOk(await perch(['category', 'add', 'Finance', '--allowed', 'domain:localhost', '--invitations', 'on'], { dataDir }));
    expectOk(await perch(['room', 'add', 'desk', '--category', 'Finance', '--members', 'alice@localhost'], { dataDir }));
    const set = expectOk(await perch(['room', 'set', 'desk', '--members', '+bob@localhost'], { dataDir }));
    expect(set.stdout).to.match(/1 new member\(s\) invited/);
    // bob has not sent presence yet: the invitation waits in offline storage for his first presence.
    await bob.xmpp.send(xml('presence'));
    const invite = await bob.waitFor((el) => el.is('message') && !!el.getChild('x', NS.conference));
    expect(invite.attrs.from).to.equal(`desk@${SERVICE}`);
    expect(invite.getChild('x', NS.conference)!.attrs.jid).to.equal(`desk@${SERVICE}`);
    const refused = await perch(['room', 'set', 'desk', '--members', '+bob@elsewhere.example'], { dataDir });
    expect(refused.code).to.equal(1);
    expect(refused.stderr).to.match(/bob@elsewhere.example is outside the scope of category Finance/);

    // The other nouns, through the socket.
    const run = (...args: string[]) => perch(args, { dataDir });
    expectOk(await run('group', 'add', 'traders', '--members', 'tom@localhost'));
    expectOk(await run('group', 'set', 'traders', '--members', '+alice@localhost,-tom@localhost'));
    expect(expectOk(await run('group', 'show', 'traders')).stdout).to.match(/^members:\s+alice@localhost$/m);
    expect(expectOk(await run('group', 'list')).stdout).to.match(/^traders\s+1\s*$/m);
    expectOk(await run('room', 'disable', 'desk'));
    expect(expectOk(await run('room', 'show', 'desk')).stdout).to.match(/^disabled:\s+yes$/m);
    expectOk(await run('room', 'enable', 'desk'));

    expectOk(await run('ou', 'add', '/corp/emea'));
    expectOk(await run('user', 'set', 'eve', '--ou', '/corp/emea'));
    expect(expectOk(await run('ou', 'list')).stdout).to.match(/^\/corp\/emea\s+1\s*$/m);
    const missing = await run('user', 'set', 'eve', '--ou', '/corp/apac');
    expect(missing.code).to.equal(1);
    expect(missing.stderr).to.match(/principal not provisioned: ou:\/corp\/apac/);

    expectOk(await run('addin', 'add', 'wiki', '--url', 'https://wiki.example/'));
    const bad = await run('addin', 'add', 'ftp', '--url', 'ftp://x');
    expect(bad.code).to.equal(1);
    expectOk(await run('room', 'set', 'desk', '--addin', 'wiki'));
    expect((await run('addin', 'delete', 'wiki')).code).to.equal(1);
    expect(expectOk(await run('addin', 'delete', 'wiki', '--force')).stdout).to.match(/removed from desk/);

    expectOk(await run('service', 'set', '--default-history', '50'));
    expect(expectOk(await run('service', 'get')).stdout).to.match(/^default-history:\s+50$/m);
    const range = await run('service', 'set', '--default-history', '501');
    expect(range.code).to.equal(1);
    expect(range.stderr).to.match(/from 1 to 500/);

    expectOk(await run('policy', 'set', 'group:traders', 'off'));
    expect(expectOk(await run('policy', 'get')).stdout).to.match(/^group\s+traders\s+off$/m);

    expectOk(await run('room', 'delete', 'desk', '--reason', 'closing the desk'));
    expect(JSON.parse(expectOk(await run('room', 'list', '--json')).stdout).output).to.deep.equal([]);
    expectOk(await run('category', 'delete', 'Finance'));
  });

  it('offers the commands on the MUC service JID: admins run them all, a manager only on their own room', async () => {
    const dataDir = await ownDir();
    const server = await startServer({ dataDir, users: { root: 'pw', alice: 'pw', bob: 'pw' }, admins: ['root@localhost'] });
    servers.push(server);
    const root = await login(server.ports.c2s, 'root', 'pw');
    const alice = await login(server.ports.c2s, 'alice', 'pw');
    const bob = await login(server.ports.c2s, 'bob', 'pw');
    clients.push(root, alice, bob);

    // The two-step way: the form, then the submission.
    const first = await iq(root, 'set', xml('command', { xmlns: NS.commands, node: node('category-add'), action: 'execute' }), SERVICE);
    const cmd = first.getChild('command', NS.commands)!;
    expect(cmd.attrs.status).to.equal('executing');
    const vars = cmd.getChild('x', NS.data)!.getChildren('field').map((f: XmppElement) => f.attrs.var);
    expect(vars).to.include.members(['name', 'allowed', 'denied', 'creators', 'invitations']);
    const done = await iq(root, 'set', xml('command', { xmlns: NS.commands, node: node('category-add'), sessionid: cmd.attrs.sessionid },
      form({ name: ['Finance'], allowed: ['domain:localhost'], creators: ['alice@localhost'] })), SERVICE);
    expect(done.getChild('command', NS.commands)!.attrs.status).to.equal('completed');
    expect(notes(done)).to.include('category Finance created');

    const created = await adhoc(alice, 'room-add', { room: ['desk'], category: ['Finance'] });
    expect(created.attrs.type, JSON.stringify(errorOf(created))).to.equal('result');
    expect(notes(created)).to.include(`desk@${SERVICE} created`);

    const members = await adhoc(alice, 'room-set', { room: ['desk'], members: ['+bob@localhost'] });
    expect(members.attrs.type).to.equal('result');
    const shown = members.getChild('command', NS.commands)!.getChild('x', NS.data)!.getChildren('field').find((f: XmppElement) => f.attrs.var === 'room')!;
    expect(shown.getChildren('value').map((v: XmppElement) => v.text())).to.include('members:      alice@localhost,bob@localhost');

    const outside = await adhoc(root, 'room-set', { room: ['desk'], members: ['+x@elsewhere.example'] });
    expect(errorOf(outside)).to.deep.equal({ condition: 'not-acceptable', text: 'x@elsewhere.example is outside the scope of category Finance (member: not allowed)' });

    const notManager = await adhoc(bob, 'room-set', { room: ['desk'], name: ['Mine'] });
    expect(errorOf(notManager).condition).to.equal('forbidden');
    expect(errorOf(notManager).text).to.match(/you do not manage desk@conference.localhost/);
    const notAdmin = await adhoc(alice, 'category-add', { name: ['Other'] });
    expect(errorOf(notAdmin).condition).to.equal('forbidden');

    // Each sees the commands they may run.
    const list = async (c: LoggedIn) => (await iq(c, 'get', xml('query', { xmlns: NS.discoItems, node: NS.commands }), SERVICE))
      .getChild('query', NS.discoItems)!.getChildren('item').map((i: XmppElement) => i.attrs.node as string);
    expect(await list(root)).to.include.members([node('category-add'), node('room-delete'), node('policy-set')]);
    const mine = await list(alice);
    expect(mine).to.include.members([node('room-set'), node('room-list'), node('room-disable')]);
    expect(mine).to.not.include.members([node('category-add'), node('room-delete'), node('room-enable')]);

    // The CLI sees what the ad-hoc face did.
    const rooms = JSON.parse(expectOk(await perch(['room', 'list', '--json'], { dataDir })).stdout).output;
    expect(rooms.map((r: { room: string; managers: string[] }) => [r.room, r.managers])).to.deep.equal([['desk', ['alice@localhost']]]);
  });
  it('runs every persistent-chat operation as an XEP-0050 command on the MUC service, with the effect the CLI then reads', async () => {
    const dataDir = await ownDir();
    const server = await startServer({ dataDir, users: { root: 'pw' }, admins: ['root@localhost'] });
    servers.push(server);
    const root = await login(server.ports.c2s, 'root', 'pw');
    clients.push(root);
    const cli = async (...args: string[]) => JSON.parse(expectOk(await perch([...args, '--json'], { dataDir })).stdout).output;
    const steps: [string, Record<string, string[]>][] = [
      ['group-add', { group: ['desks'], members: ['ann@localhost'] }],
      ['group-add', { group: ['traders'], members: ['tom@localhost,group:desks'] }],
      ['group-set', { group: ['traders'], description: ['the trading floor'], members: ['+tim@localhost'] }],
      ['group-show', { group: ['traders'] }],
      ['group-list', {}],
      ['ou-add', { path: ['/corp/emea'] }],
      ['ou-list', {}],
      ['user-set', { user: ['ann@localhost'], ou: ['/corp/emea'] }],
      ['category-add', { name: ['Finance'], allowed: ['group:traders,ou:/corp'], creators: ['tom@localhost'] }],
      ['category-set', { name: ['Finance'], description: ['money'], denied: ['+tim@localhost'] }],
      ['category-list', {}],
      ['addin-add', { name: ['wiki'], url: ['https://wiki.example/'] }],
      ['addin-set', { name: ['wiki'], url: ['https://wiki.example/v2'] }],
      ['addin-list', {}],
      ['room-add', { room: ['desk'], category: ['Finance'], members: ['group:desks'], type: ['auditorium'] }],
      ['room-set', { room: ['desk'], name: ['FX desk'], addin: ['wiki'], presenters: ['+ann@localhost'], managers: ['+tom@localhost'] }],
      ['room-show', { room: ['desk'] }],
      ['room-list', {}],
      ['room-disable', { room: ['desk'] }],
      ['room-enable', { room: ['desk'] }],
      ['service-set', { 'default-history': ['40'], 'participant-update-limit': ['100'] }],
      ['service-get', {}],
      ['policy-set', { target: ['group:desks'], value: ['off'] }],
      ['policy-get', {}],
    ];
    const commands = (await iq(root, 'get', xml('query', { xmlns: NS.discoItems, node: NS.commands }), SERVICE))
      .getChild('query', NS.discoItems)!.getChildren('item').map((i: XmppElement) => i.attrs.node as string);
    for (const [id, fields] of steps) {
      expect(commands, id).to.include(node(id));
      const r = await adhoc(root, id, fields);
      expect(r.attrs.type, `${id}: ${JSON.stringify(errorOf(r))}`).to.equal('result');
      expect(r.getChild('command', NS.commands)!.attrs.status, id).to.equal('completed');
    }
    const shown = (await cli('room', 'list')).find((r: { room: string }) => r.room === 'desk');
    expect(shown).to.deep.include({ name: 'FX desk', type: 'auditorium', addin: 'wiki', disabled: false, members: ['group:desks'], presenters: ['ann@localhost'], managers: ['tom@localhost'] });
    expect((await cli('category', 'list'))[0]).to.deep.include({ name: 'Finance', description: 'money', denied: ['tim@localhost'] });
    expect((await cli('addin', 'list'))[0]).to.deep.include({ name: 'wiki', url: 'https://wiki.example/v2' });
    expect(await cli('service', 'get')).to.deep.include({ defaultHistory: 40, participantUpdateLimit: 100 });
    expect(await cli('policy', 'get')).to.deep.include({ scope: 'group', subject: 'desks', enabled: false });
    expect((await cli('group', 'show', 'traders'))).to.deep.include({ description: 'the trading floor' });

    for (const [id, fields] of [
      ['room-delete', { room: ['desk'] }], ['category-delete', { name: ['Finance'] }], ['addin-delete', { name: ['wiki'] }],
      ['user-set', { user: ['ann@localhost'], ou: [''] }], ['ou-delete', { path: ['/corp/emea'] }], ['group-delete', { group: ['traders'] }],
    ] as [string, Record<string, string[]>][]) {
      const r = await adhoc(root, id, fields);
      expect(r.attrs.type, `${id}: ${JSON.stringify(errorOf(r))}`).to.equal('result');
    }
    expect(await cli('room', 'list')).to.deep.equal([]);
    expect(await cli('category', 'list')).to.deep.equal([]);
    expect(await cli('addin', 'list')).to.deep.equal([]);
  });
});
