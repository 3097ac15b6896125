// The directory from LDAP, against a real OpenLDAP (Debian's slapd) started here on a free port with
// its own configuration and database: groups with a nested group, org units from DNs, a user moved
// between units (modifyDN), a group membership removed while the user is in a room, passwords checked
// by LDAP (auth: ldap). Each sync runs through `perch directory sync` and must take effect at once
// (the occupant removed with 321).
import { expect } from 'chai';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Attribute, Change, Client } from 'ldapts';
import { IN_CI, connectRaw, login, openSecureStream, startServer, type LoggedIn, type RunningServer } from './harness.js';
import { readLdap } from '../src/directory/ldap-sync.js';
import type { LdapConfig } from '../src/config.js';
import { PchatCli, bare, join, jsonOf, removal, roomJid, statusCodes, reasonOf, noRemoval } from './pchat-kit.js';

const SLAPD = '/usr/sbin/slapd';
const SLAPADD = '/usr/sbin/slapadd';
const BASE = 'dc=example,dc=com';
const ROOT_DN = `cn=admin,${BASE}`;
const ROOT_PW = 'secret';
const dn = {
  alice: `uid=alice,ou=trading,ou=people,${BASE}`,
  bob: `uid=bob,ou=sales,ou=people,${BASE}`,
  carol: `uid=carol,ou=sales,ou=people,${BASE}`,
  dave: `uid=dave,ou=people,${BASE}`,
  erin: `uid=erin,ou=sales,ou=people,${BASE}`,
  traders: `cn=traders,ou=groups,${BASE}`,
  desk: `cn=desk,ou=groups,${BASE}`,
  analysts: `cn=analysts,ou=groups,${BASE}`,
};

function person(uid: string, entryDn: string, password?: string): string {
  return `dn: ${entryDn}\nobjectClass: inetOrgPerson\nuid: ${uid}\ncn: ${uid}\nsn: ${uid}\n${password ? `userPassword: ${password}\n` : ''}`;
}
function group(cn: string, entryDn: string, members: string[]): string {
  return `dn: ${entryDn}\nobjectClass: groupOfNames\ncn: ${cn}\n${members.map((m) => `member: ${m}`).join('\n')}\n`;
}
const unit = (ou: string, entryDn: string) => `dn: ${entryDn}\nobjectClass: organizationalUnit\nou: ${ou}\n`;

const LDIF = [
  `dn: ${BASE}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n`,
  unit('people', `ou=people,${BASE}`),
  unit('sales', `ou=sales,ou=people,${BASE}`),
  unit('trading', `ou=trading,ou=people,${BASE}`),
  unit('groups', `ou=groups,${BASE}`),
  person('alice', dn.alice), person('bob', dn.bob), person('carol', dn.carol), person('dave', dn.dave),
  // erin has no Perch account: with auth: ldap the sync makes one, and LDAP checks her password.
  person('erin', dn.erin, 'erin-secret'),
  // desk sits inside traders: bob is a trader through it.
  group('desk', dn.desk, [dn.bob]),
  group('traders', dn.traders, [dn.alice, dn.desk]),
  group('analysts', dn.analysts, [dn.carol, dn.dave]),
  // A posixGroup names its members by username (memberUid); ghost is nobody.
  `dn: cn=ops,ou=groups,${BASE}\nobjectClass: posixGroup\ncn: ops\ngidNumber: 1000\nmemberUid: dave\nmemberUid: ghost\n`,
].join('\n');

// refint keeps group members' DNs right when an entry is renamed (modifyDN), as a directory should.
const slapdConf = (dir: string) => `include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
pidfile ${dir}/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload refint
database mdb
suffix "${BASE}"
rootdn "${ROOT_DN}"
rootpw ${ROOT_PW}
directory ${dir}/db
maxsize 16777216
overlay refint
refint_attributes member
`;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

interface Slapd { url: string; process: ChildProcess; dir: string }

async function startSlapd(): Promise<Slapd> {
  const dir = await mkdtemp(path.join(tmpdir(), 'perch-slapd-'));
  await mkdir(path.join(dir, 'db'));
  await writeFile(path.join(dir, 'slapd.conf'), slapdConf(dir));
  await writeFile(path.join(dir, 'data.ldif'), LDIF);
  const add = spawnSync(SLAPADD, ['-f', path.join(dir, 'slapd.conf'), '-l', path.join(dir, 'data.ldif')], { encoding: 'utf8' });
  if (add.status !== 0) throw new Error(`slapadd failed: ${add.stderr}`);
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const url = `ldap://127.0.0.1:${port}`;
    // -d 0: in the foreground, so that the test owns the process and its end.
    const child = spawn(SLAPD, ['-f', path.join(dir, 'slapd.conf'), '-h', `${url}/`, '-d', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const until = Date.now() + 10_000;
    while (Date.now() < until && child.exitCode === null) {
      const c = new Client({ url, connectTimeout: 500, timeout: 1000 });
      try {
        await c.bind(ROOT_DN, ROOT_PW);
        await c.unbind();
        return { url, process: child, dir };
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    child.kill('SIGKILL');
    if (attempt >= 2) throw new Error(`slapd did not start: ${stderr}`);
  }
}

async function ldap<T>(s: Slapd, fn: (c: Client) => Promise<T>): Promise<T> {
  const c = new Client({ url: s.url, timeout: 5000 });
  try {
    await c.bind(ROOT_DN, ROOT_PW);
    return await fn(c);
  } finally {
    await c.unbind().catch(() => {});
  }
}

interface Report {
  dryRun: boolean; users: number; groups: number;
  groupsAdded: string[]; groupsRemoved: string[];
  membersAdded: { group: string; member: string }[]; membersRemoved: { group: string; member: string }[];
  unitsAdded: string[]; unitsRemoved: string[];
  moves: { user: string; from: string | null; to: string | null }[];
  accountsAdded: string[];
  warnings: string[];
}

describe('conformance: directory sync from LDAP (slapd)', function () {
  this.timeout(40_000);
  let slapd: Slapd | null = null;
  let server: RunningServer;
  let cli: PchatCli;
  const clients: LoggedIn[] = [];

  before(async function () {
    if (!existsSync(SLAPD) || !existsSync(SLAPADD)) {
      if (IN_CI) throw new Error(`${SLAPD} is missing: install Debian's slapd (.ci/run does)`);
      this.skip();
    }
    slapd = await startSlapd();
    const configYaml = JSON.stringify({
      directory: {
        ldap: {
          url: slapd.url, bindDn: ROOT_DN, bindPassword: ROOT_PW, baseDn: BASE,
          userFilter: '(objectClass=inetOrgPerson)', groupFilter: '(objectClass=groupOfNames)',
          syncIntervalMinutes: 0, auth: 'ldap',
        },
      },
    });
    server = await startServer({
      users: { root: 'pw', alice: 'pw', bob: 'pw', carol: 'pw', dave: 'pw' }, admins: ['root@localhost'], configYaml,
    });
    cli = new PchatCli({ dataDir: server.dataDir });
  });

  after(async () => {
    await Promise.all(clients.splice(0).map((c) => c.stop()));
    await server?.stop();
    if (slapd) {
      slapd.process.kill('SIGTERM');
      await rm(slapd.dir, { recursive: true, force: true });
    }
  });

  const sync = async (...flags: string[]): Promise<Report> => jsonOf(await cli.ok(['directory', 'sync', '--json', ...flags])) as Report;
  const on = async (user: string) => {
    const c = await login(server.ports.c2s, user, 'pw');
    clients.push(c);
    return c;
  };

  it('posixGroup: members by memberUid, usernames that are no selected user left out with a warning', async () => {
    const config: LdapConfig = {
      url: slapd!.url, bindDn: ROOT_DN, bindPassword: ROOT_PW, bindPasswordFile: null, baseDn: BASE, userBaseDn: null, groupBaseDn: `ou=groups,${BASE}`,
      userFilter: '(objectClass=inetOrgPerson)', userIdAttribute: 'uid', groupFilter: '(objectClass=posixGroup)', groupNameAttribute: 'cn',
      memberAttribute: 'memberUid', ouFromDn: true, syncIntervalMinutes: 0, auth: 'local', timeoutMs: 5000,
    };
    const seen: string[] = [];
    const snap = await readLdap(config, 'localhost', (p) => seen.push(p.phase));
    expect(snap.groups).to.deep.equal([{ dn: `cn=ops,ou=groups,${BASE}`, name: 'ops', members: [bare('dave')] }]);
    expect(snap.warnings).to.deep.equal(['group:ops: 1 member(s) neither a selected user nor a group, left out']);
    expect(snap.users.find((u) => u.jid === bare('bob'))).to.deep.equal({ dn: dn.bob, jid: bare('bob'), ou: '/people/sales' });
    expect(seen).to.include.members(['reading users', 'reading groups']);
  });

  it('a dry run reports the plan and changes nothing', async () => {
    const r = await sync('--dry-run');
    expect(r.dryRun).to.equal(true);
    expect(r.users).to.equal(5);
    expect(r.groupsAdded.sort()).to.deep.equal(['analysts', 'desk', 'traders']);
    expect(r.accountsAdded).to.deep.equal([bare('erin')]);
    expect(JSON.stringify(jsonOf(await cli.groupList()))).to.not.include('traders');
  });

  it('a sync creates the groups (nested), the org units from DNs and places the users; a second one changes nothing', async () => {
    const r = await sync();
    expect(r.dryRun).to.equal(false);
    expect(r.warnings).to.deep.equal([]);
    expect(r.accountsAdded).to.deep.equal([bare('erin')]);
    expect(r.groupsAdded.sort()).to.deep.equal(['analysts', 'desk', 'traders']);
    expect(r.unitsAdded).to.deep.equal(['/people', '/people/sales', '/people/trading']);
    expect(r.membersAdded).to.deep.include({ group: 'traders', member: 'group:desk' });
    expect(r.membersAdded).to.deep.include({ group: 'desk', member: bare('bob') });
    expect(r.moves).to.deep.include({ user: bare('carol'), from: null, to: '/people/sales' });
    expect(r.moves).to.deep.include({ user: bare('dave'), from: null, to: '/people' });
    const traders = jsonOf(await cli.ok(['group', 'show', 'traders', '--json'])) as { members: string[] };
    expect(traders.members).to.deep.equal([bare('alice'), 'group:desk']);
    const units = jsonOf(await cli.ouList()) as { path: string; users: number }[];
    expect(units.map((u) => [u.path, u.users])).to.deep.include.members([['/people', 1], ['/people/sales', 3], ['/people/trading', 1]]);
    const again = await sync();
    expect([again.accountsAdded, again.groupsAdded, again.membersAdded, again.membersRemoved, again.moves, again.unitsAdded]).to.deep.equal([[], [], [], [], [], []]);
  });

  it('the CLI draws progress and prints the report', async () => {
    const r = await cli.ok(['directory', 'sync']);
    expect(r.stderr).to.include('reading users');
    expect(r.stdout).to.include('no changes');
  });

  let bobClient: LoggedIn;
  let carolClient: LoggedIn;
  it('auth: ldap: SASL PLAIN over TLS is checked by a bind as the user; users LDAP does not know keep their local password', async () => {
    const plain = async (user: string, password: string) => {
      const raw = await connectRaw(server.ports.c2s);
      await openSecureStream(raw);
      raw.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${user}\0${password}`).toString('base64')}</auth>`);
      const outcome = await raw.waitFor(/<success[^>]*(\/>|>[\s\S]*?<\/success>)|<failure[\s\S]*?<\/failure>/);
      raw.close();
      return outcome.startsWith('<success') ? 'success' : /<([a-z-]+)\/>/.exec(outcome)?.[1] ?? 'failure';
    };
    expect(await plain('erin', 'erin-secret'), 'erin, by her LDAP password').to.equal('success');
    expect(await plain('erin', 'wrong')).to.equal('not-authorized');
    expect(await plain('erin', ''), 'an empty password is no bind').to.not.equal('success');
    // bob's entry has no password in LDAP: PLAIN is refused, SCRAM (the client's choice) uses his local one.
    expect(await plain('bob', 'pw')).to.equal('not-authorized');
    const scram = await login(server.ports.c2s, 'bob', 'pw');
    await scram.stop();
    expect(await plain('root', 'pw'), 'root is not in LDAP: the local password').to.equal('success');
  });

  it('a room for group:traders lets a member of the nested group in, and no one else', async () => {
    await cli.categoryAdd('desks', { allowed: ['group:traders', 'ou:/people'] });
    await cli.roomAdd('trading-floor', { category: 'desks', privacy: 'closed', members: ['group:traders'] });
    await cli.roomAdd('sales-room', { category: 'desks', privacy: 'closed', members: ['ou:/people/sales'] });
    [bobClient, carolClient] = await Promise.all([on('bob'), on('carol')]);
    expect(await join(bobClient, roomJid('trading-floor'), 'bob'), 'bob, in desk inside traders').to.equal('ok');
    expect(await join(carolClient, roomJid('trading-floor'), 'carol'), 'carol, no trader').to.not.equal('ok');
    expect(await join(carolClient, roomJid('sales-room'), 'carol')).to.equal('ok');
    expect(await join(bobClient, roomJid('sales-room'), 'bob')).to.equal('ok');
  });

  it('a user moved to another unit in LDAP (modifyDN): after the sync, out of the old unit\'s room at once (321)', async () => {
    const moved = `uid=carol,ou=trading,ou=people,${BASE}`;
    await ldap(slapd!, (c) => c.modifyDN(dn.carol, moved));
    const r = await sync();
    expect(r.moves).to.deep.equal([{ user: bare('carol'), from: '/people/sales', to: '/people/trading' }]);
    // refint renamed her in analysts: her membership stays.
    expect(r.membersRemoved).to.deep.equal([]);
    const p = await removal(carolClient, roomJid('sales-room'), 'carol');
    expect(statusCodes(p)).to.include(321);
    expect(reasonOf(p)).to.be.a('string').and.not.equal('');
    await noRemoval(bobClient, roomJid('sales-room'), 'bob');
  });

  it('a membership removed in LDAP while the user is in the room: after the sync, removed at once (321), and the report says so', async () => {
    await ldap(slapd!, (c) => c.modify(dn.desk, [
      // groupOfNames needs a member: alice stays in desk, bob goes.
      new Change({ operation: 'add', modification: new Attribute({ type: 'member', values: [dn.alice] }) }),
      new Change({ operation: 'delete', modification: new Attribute({ type: 'member', values: [dn.bob] }) }),
    ]));
    const r = await sync();
    expect(r.membersRemoved).to.deep.equal([{ group: 'desk', member: bare('bob') }]);
    expect(r.membersAdded).to.deep.equal([{ group: 'desk', member: bare('alice') }]);
    const p = await removal(bobClient, roomJid('trading-floor'), 'bob');
    expect(statusCodes(p)).to.include(321);
    expect(await join(bobClient, roomJid('trading-floor'), 'bob')).to.not.equal('ok');
  });

  it('a group deleted in LDAP goes from Perch; an administrator\'s group of the same name is left alone', async () => {
    await cli.groupAdd('managers', [bare('dave')]);
    await ldap(slapd!, async (c) => {
      await c.del(dn.analysts);
      await c.add(`cn=managers,ou=groups,${BASE}`, { objectClass: 'groupOfNames', cn: 'managers', member: dn.alice });
    });
    const r = await sync();
    expect(r.groupsRemoved).to.deep.equal(['analysts']);
    expect(r.warnings.join('\n')).to.include('group:managers exists and was not made by the LDAP sync');
    const managers = jsonOf(await cli.ok(['group', 'show', 'managers', '--json'])) as { members: string[] };
    expect(managers.members).to.deep.equal([bare('dave')]);
  });

  it('the scheduled sync: a node with syncIntervalMinutes runs one on its own (holding the lease)', async () => {
    const configYaml = JSON.stringify({ directory: { ldap: { url: slapd!.url, bindDn: ROOT_DN, bindPassword: ROOT_PW, baseDn: BASE, syncIntervalMinutes: 1 } } });
    // The environment is copied when the server is spawned: only this node runs its first sync soon.
    process.env.PERCH_DIRECTORY_SYNC_FIRST_MS = '200';
    let scheduled: RunningServer;
    try {
      scheduled = await startServer({ configYaml });
    } finally {
      delete process.env.PERCH_DIRECTORY_SYNC_FIRST_MS;
    }
    try {
      const until = Date.now() + 15_000;
      while (!scheduled.logs.some((l) => l.includes('directory sync from LDAP')) && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
      expect(scheduled.logs.join('\n')).to.match(/read 5 users and \d groups from LDAP/);
      const groups = jsonOf(await new PchatCli({ dataDir: scheduled.dataDir }).groupList()) as { name: string }[];
      expect(groups.map((g) => g.name)).to.include.members(['desk', 'traders']);
    } finally {
      await scheduled.stop();
    }
  });
});
