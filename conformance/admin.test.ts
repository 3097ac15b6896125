// The admin CLI against a real server process: through the admin socket while a server runs, on the
// database when none does, and never beside a server it cannot reach. Account deletion leaves
// nothing for a new account of the same name, whichever face deleted it.
import { expect } from 'chai';
import { chmod, cp, mkdtemp, rm, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  startServer, login, randomName, iq, xml, perch, expectOk, useTestDatabase,
  type RunningServer, type LoggedIn, type XmppElement, type CliResult,
} from './harness.js';


const NS = {
  mam: 'urn:xmpp:mam:2',
  roster: 'jabber:iq:roster',
  vcard: 'vcard-temp',
  commands: 'http://jabber.org/protocol/commands',
  data: 'jabber:x:data',
};

async function archiveBodies(c: LoggedIn): Promise<string[]> {
  const queryid = randomName('q');
  await iq(c, 'set', xml('query', { xmlns: NS.mam, queryid }));
  return c.received
    .filter((el) => el.is('message') && el.getChild('result', NS.mam)?.attrs.queryid === queryid)
    .map((r) => r.getChild('result', NS.mam)!.getChild('forwarded', 'urn:xmpp:forward:0')!.getChild('message')!.getChildText('body') ?? '');
}

async function rosterJids(c: LoggedIn): Promise<string[]> {
  const r = await iq(c, 'get', xml('query', { xmlns: NS.roster }));
  return r.getChild('query', NS.roster)!.getChildren('item').map((i: XmppElement) => i.attrs.jid as string);
}

async function vcardName(c: LoggedIn): Promise<string | null> {
  const r = await iq(c, 'get', xml('vCard', { xmlns: NS.vcard }));
  return r.getChild('vCard', NS.vcard)?.getChildText('FN') ?? null;
}

/** Gives `user` an archive, a roster entry and a vCard, all mentioning `mark`. */
async function leaveTraces(user: LoggedIn, contact: LoggedIn, mark: string): Promise<void> {
  await iq(user, 'set', xml('vCard', { xmlns: NS.vcard }, xml('FN', {}, mark)));
  await iq(user, 'set', xml('query', { xmlns: NS.roster }, xml('item', { jid: contact.jid.split('/')[0], name: mark })));
  await user.xmpp.send(xml('message', { to: contact.jid, type: 'chat', id: mark }, xml('body', {}, mark)));
  await contact.waitFor((el) => el.is('message') && el.attrs.id === mark);
  expect(await archiveBodies(user)).to.include(mark);
}

/** What a new account of a deleted name must not find. */
async function expectFresh(c: LoggedIn): Promise<void> {
  expect(await archiveBodies(c), 'archive of the deleted account').to.deep.equal([]);
  expect(await rosterJids(c), 'roster of the deleted account').to.deep.equal([]);
  expect(await vcardName(c), 'vCard of the deleted account').to.equal(null);
}

describe('conformance: administration (CLI and ad-hoc faces)', function () {
  this.timeout(180000);
  const clients: LoggedIn[] = [];
  const servers: RunningServer[] = [];
  const dirs: string[] = [];
  let template = '';

  before(async function () {
    // Initialising PGlite takes seconds; copying an initialised directory does not.
    template = await mkdtemp(path.join(tmpdir(), 'perch-admin-template-'));
    expectOk(await perch(['migrate'], { dataDir: template }));
  });
  after(async () => {
    if (template) await rm(template, { recursive: true, force: true, maxRetries: 3 });
  });

  /** A data directory of our own (kept across server restarts), on an initialised PGlite. */
  async function ownDir(): Promise<string> {
    const d = await mkdtemp(path.join(tmpdir(), 'perch-admin-'));
    dirs.push(d);
    await cp(template, d, { recursive: true });
    return d;
  }
  async function serve(opts: Parameters<typeof startServer>[0]): Promise<RunningServer> {
    const s = await startServer(opts);
    servers.push(s);
    return s;
  }
  async function connect(s: RunningServer, user: string, password: string): Promise<LoggedIn> {
    const c = await login(s.ports.c2s, user, password);
    clients.push(c);
    return c;
  }

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.stop()));
    await Promise.all(servers.splice(0).map((s) => s.stop()));
    await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true, maxRetries: 3 })));
  });

  describe('on embedded PGlite', () => {
    it('adds a user through the running server: she logs in at once and is still listed after it stops (D4)', async () => {
      const dataDir = await ownDir();
      const server = await serve({ dataDir });
      expectOk(await perch(['user', 'add', 'alice', 's3cret'], { dataDir }));
      await connect(server, 'alice', 's3cret');
      const socket = path.join(dataDir, 'admin.sock');
      expect((await stat(socket)).mode & 0o777, 'socket mode').to.equal(0o600);
      const listed = expectOk(await perch(['user', 'list', '--json'], { dataDir }));
      expect(JSON.parse(listed.stdout).output).to.include('alice@localhost');
      await Promise.all(clients.splice(0).map((c) => c.stop()));
      await server.stop();
      expect(existsSync(socket), 'socket removed at stop').to.equal(false);
      expect(expectOk(await perch(['user', 'list'], { dataDir })).stdout.split('\n')).to.include('alice@localhost');
    });

    it('works on the database when no server runs, and a stale socket is cleared', async () => {
      const dataDir = await ownDir();
      const server = await serve({ dataDir, users: { bob: 'pw' } });
      await server.kill();
      expect(existsSync(path.join(dataDir, 'admin.sock')), 'a killed server leaves its socket').to.equal(true);
      expectOk(await perch(['user', 'add', 'carol'], { dataDir, stdin: 'carolpw\n' }));
      expect(existsSync(path.join(dataDir, 'admin.sock')), 'stale socket removed').to.equal(false);
      const live = await perch(['admin', 'get-online-users-num'], { dataDir });
      expect(live.code).to.equal(1);
      expect(live.stderr).to.match(/needs a running server/);
      const restarted = await serve({ dataDir });
      await connect(restarted, 'carol', 'carolpw');
      // And through the socket again.
      expectOk(await perch(['user', 'passwd', 'bob', 'newpw'], { dataDir }));
      await connect(restarted, 'bob', 'newpw');
    });

    it('deletes everything of an account: a new account of the same name starts empty (D3, CLI without a server)', async () => {
      const dataDir = await ownDir();
      const server = await serve({ dataDir, users: { dora: 'pw', eve: 'pw' } });
      await leaveTraces(await connect(server, 'dora', 'pw'), await connect(server, 'eve', 'pw'), 'trace-offline');
      await Promise.all(clients.splice(0).map((c) => c.stop()));
      await server.stop();
      expectOk(await perch(['user', 'delete', 'dora'], { dataDir }));
      expectOk(await perch(['user', 'add', 'dora', 'pw2'], { dataDir }));
      const restarted = await serve({ dataDir });
      await expectFresh(await connect(restarted, 'dora', 'pw2'));
    });

    it('deletes through the running server: sessions end and nothing is left (D3, CLI with a server)', async () => {
      const dataDir = await ownDir();
      const server = await serve({ dataDir, users: { dora: 'pw', eve: 'pw' } });
      const dora = await connect(server, 'dora', 'pw');
      await leaveTraces(dora, await connect(server, 'eve', 'pw'), 'trace-live');
      const deleted = expectOk(await perch(['user', 'delete', 'dora', '--json'], { dataDir }));
      expect(JSON.parse(deleted.stdout).output.ok).to.deep.equal(['dora@localhost']);
      await dora.disconnected;
      expectOk(await perch(['user', 'add', 'dora', 'pw2'], { dataDir }));
      await expectFresh(await connect(server, 'dora', 'pw2'));
    });

    it('ad-hoc delete-user is the same operation (D3, XEP-0050 face)', async () => {
      const dataDir = await ownDir();
      const server = await serve({ dataDir, users: { root: 'pw', dora: 'pw', eve: 'pw' }, admins: ['root@localhost'] });
      const dora = await connect(server, 'dora', 'pw');
      await leaveTraces(dora, await connect(server, 'eve', 'pw'), 'trace-adhoc');
      const root = await connect(server, 'root', 'pw');
      const node = 'http://jabber.org/protocol/admin#delete-user';
      const first = await iq(root, 'set', xml('command', { xmlns: NS.commands, node, action: 'execute' }), 'localhost');
      const sessionid = first.getChild('command', NS.commands)!.attrs.sessionid as string;
      const done = await iq(root, 'set', xml('command', { xmlns: NS.commands, node, sessionid },
        xml('x', { xmlns: NS.data, type: 'submit' },
          xml('field', { var: 'FORM_TYPE' }, xml('value', {}, 'http://jabber.org/protocol/admin')),
          xml('field', { var: 'accountjids' }, xml('value', {}, 'dora@localhost')))), 'localhost');
      expect(done.getChild('command', NS.commands)!.attrs.status).to.equal('completed');
      await dora.disconnected;
      // The account is gone for the CLI too, and re-created through it.
      expect(expectOk(await perch(['user', 'list'], { dataDir })).stdout).to.not.match(/^dora@/m);
      expectOk(await perch(['user', 'add', 'dora', 'pw2'], { dataDir }));
      await expectFresh(await connect(server, 'dora', 'pw2'));
    });

    it('changes nothing when a server holds the data directory but does not answer', async () => {
      const dataDir = await ownDir();
      const server = await serve({ dataDir });
      server.process.kill('SIGSTOP');
      let r: CliResult;
      try {
        r = await perch(['user', 'add', 'frank', 'pw'], { dataDir, env: { PERCH_ADMIN_TIMEOUT_MS: '1500' } });
      } finally {
        server.process.kill('SIGCONT');
      }
      expect(r.code).to.equal(1);
      expect(r.stderr).to.match(/does not answer; nothing was changed/);
      expect(expectOk(await perch(['user', 'list'], { dataDir })).stdout).to.not.match(/^frank@/m);
    });

    it('refuses a socket in a directory others can write, and a server without a socket', async () => {
      const dataDir = await ownDir();
      await serve({ dataDir });
      await chmod(dataDir, 0o777);
      try {
        const r = await perch(['user', 'add', 'gina', 'pw'], { dataDir });
        expect(r.code).to.equal(1);
        expect(r.stderr).to.match(/writable by group or others/);
      } finally {
        await chmod(dataDir, 0o700);
      }
      // A server that refuses to serve the socket still holds the directory: the CLI stays away.
      const other = await ownDir();
      await chmod(other, 0o775);
      const server = await serve({ dataDir: other });
      expect(server.logs.join('\n')).to.match(/admin socket not served/);
      const r = await perch(['user', 'add', 'gina', 'pw'], { dataDir: other });
      expect(r.code).to.equal(1);
      expect(r.stderr).to.match(/serves no admin socket/);
    });

    it('answers usage errors with exit code 2 and help per command', async () => {
      const dataDir = await ownDir();
      expect((await perch(['user', 'frobnicate'], { dataDir })).code).to.equal(2);
      expect((await perch(['user', 'add', 'not a@valid/jid', 'pw'], { dataDir })).code).to.equal(2);
      expect((await perch(['admin', 'delete-user', '--nope', 'x'], { dataDir })).code).to.equal(2);
      const help = await perch(['admin', 'add-user', '--help'], { dataDir });
      expect(help.code).to.equal(0);
      expect(help.stdout).to.match(/--accountjid/);
      const list = await perch(['admin', '--help'], { dataDir });
      expect(list.stdout).to.match(/delete-user/).and.match(/announce/);
    });
  });

  describe('on PostgreSQL', () => {
    const db = useTestDatabase('perch_admin_');

    it('adds a user through the running server, and lists her after it stops (D4)', async () => {
      const dataDir = await ownDir();
      const server = await serve({ dataDir, databaseUrl: db.url });
      expectOk(await perch(['user', 'add', 'alice', 's3cret'], { dataDir, databaseUrl: db.url }));
      await connect(server, 'alice', 's3cret');
      await Promise.all(clients.splice(0).map((c) => c.stop()));
      await server.stop();
      expect(expectOk(await perch(['user', 'list'], { dataDir, databaseUrl: db.url })).stdout.split('\n')).to.include('alice@localhost');
    });

    it('ends the sessions of a deleted user on every node (cluster bus)', async function () {
      const redisUrl = process.env.CONFORMANCE_REDIS_URL ?? 'redis://127.0.0.1:6379';
      const dirA = await ownDir();
      const nodeA = await serve({ dataDir: dirA, databaseUrl: db.url, redisUrl, nodeId: randomName('admin-a-'), users: { hank: 'pw' } });
      const nodeB = await serve({ dataDir: await ownDir(), databaseUrl: db.url, redisUrl, nodeId: randomName('admin-b-') });
      const hank = await connect(nodeB, 'hank', 'pw');
      expectOk(await perch(['user', 'delete', 'hank'], { dataDir: dirA, databaseUrl: db.url }));
      await hank.disconnected;
      expect(expectOk(await perch(['user', 'list'], { dataDir: dirA, databaseUrl: db.url })).stdout).to.not.match(/^hank@/m);
      void nodeA;
    });
  });
});
