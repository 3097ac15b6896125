// Node drain on a real cluster (server processes on the shared PostgreSQL and Redis): clients with
// stream management on every node post numbered messages into a room held by the node that drains.
// The drained node refuses new connections, sends its clients elsewhere (see-other-host when the
// nodes have a public address, system-shutdown without), hands the room over and exits with 0; every
// message is acknowledged and archived exactly once. Then a rolling restart of the three nodes.
import { expect } from 'chai';
import pg from 'pg';
import {
  startServer, login, randomName, sleep, xml, perch, connectRaw, iq, IN_CI, CLUSTER_REDIS_URL, servicesAvailable, useTestDatabase,
  type LoggedIn, type ServerOptions,
} from './harness.js';
import { RoomPoster, rollingRestart, type ClusterNode } from './drain-kit.js';

const MUC = 'conference.localhost';
const COMMANDS = 'http://jabber.org/protocol/commands';

async function needServices(ctx: Mocha.Context): Promise<void> {
  const missing = await servicesAvailable();
  if (!missing) return;
  if (IN_CI) throw new Error(`the drain tests need PostgreSQL and Redis (CI=true): ${missing}`);
  console.warn(`    skipping the drain tests: ${missing}`);
  ctx.skip();
}

/** Joins and configures a persistent room through a client of one node (that node then holds it). */
async function createRoom(c: LoggedIn, room: string): Promise<void> {
  await c.xmpp.send(xml('presence', { to: `${room}/owner` }, xml('x', { xmlns: 'http://jabber.org/protocol/muc' }, xml('history', { maxstanzas: '0' }))));
  await c.waitFor((el) => el.is('presence') && el.attrs.from === `${room}/owner`
    && (el.getChild('x', 'http://jabber.org/protocol/muc#user')?.getChildren('status') ?? []).some((s) => s.attrs.code === '110'), 10_000);
  await c.xmpp.iqCaller.request(xml('iq', { type: 'set', to: room }, xml('query', { xmlns: 'http://jabber.org/protocol/muc#owner' },
    xml('x', { xmlns: 'jabber:x:data', type: 'submit' },
      xml('field', { var: 'FORM_TYPE' }, xml('value', {}, 'http://jabber.org/protocol/muc#roomconfig')),
      xml('field', { var: 'muc#roomconfig_persistentroom' }, xml('value', {}, '1'))))));
}

/** How many times each body is in the room's archive, once every expected body is there (or time is up). */
async function archived(dbUrl: string, room: string, expected: string[], timeoutMs = 15_000): Promise<Map<string, number>> {
  const client = new pg.Client({ connectionString: dbUrl });
  await client.connect();
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = await client.query<{ body: string; n: number }>('SELECT body, count(*)::int AS n FROM archive WHERE archive = $1 AND body IS NOT NULL GROUP BY body', [room]);
      const counts = new Map(r.rows.map((row) => [row.body, row.n]));
      if (expected.every((b) => counts.has(b)) || Date.now() > deadline) return counts;
      await sleep(200);
    }
  } finally {
    await client.end();
  }
}

/** Every message posted was acknowledged and is archived exactly once; no client got an error stanza. */
async function expectEachOnce(dbUrl: string, room: string, posters: RoomPoster[]): Promise<{ sent: number; resent: number }> {
  const bodies = posters.flatMap((p) => p.posted.map((m) => m.body));
  const counts = await archived(dbUrl, room, bodies);
  const missing = bodies.filter((b) => !counts.has(b));
  const twice = bodies.filter((b) => (counts.get(b) ?? 0) > 1);
  expect(missing, 'acknowledged messages missing from the archive').to.deep.equal([]);
  expect(twice.map((b) => `${b} (sent ${posters.flatMap((p) => p.posted).find((m) => m.body === b)?.sends} times)`), 'messages archived more than once').to.deep.equal([]);
  for (const p of posters) {
    expect(p.posted.filter((m) => !m.acked).map((m) => m.body), `${p.name}: unacknowledged`).to.deep.equal([]);
    expect(p.errors, `${p.name}: error stanzas`).to.deep.equal([]);
  }
  return { sent: bodies.length, resent: posters.reduce((n, p) => n + p.posted.filter((m) => m.sends > 1).length, 0) };
}

function alive(nodes: ClusterNode[]): number[] {
  return nodes.filter((n) => n.server.process.exitCode === null && n.server.process.signalCode === null).map((n) => n.server.ports.c2s);
}

async function refused(port: number): Promise<boolean> {
  try {
    const raw = await connectRaw(port);
    // Accepted by the kernel but dropped at once by a node that no longer takes clients.
    await Promise.race([raw.closed, sleep(2000).then(() => { throw new Error('still served'); })]);
    return true;
  } catch (e) {
    return (e as Error).message !== 'still served';
  }
}

describe('conformance: node drain (PostgreSQL + Redis)', function () {
  this.timeout(120_000);
  const db = useTestDatabase('perch_drain_');
  const users = Object.fromEntries(['owner', 'p0', 'p1', 'p2', 'p3', 'root', 'q0', 'q1', 'q2'].map((u) => [`${u}`, 'pw']));
  const nodes: ClusterNode[] = [];
  const extra: LoggedIn[] = [];
  let posters: RoomPoster[] = [];

  before(async function () {
    this.timeout(120_000);
    await needServices(this);
  });

  afterEach(async function () {
    if (this.currentTest?.state === 'failed' || process.env.DRAIN_LOGS) {
      for (const n of nodes) console.log(`--- ${n.options.nodeId}\n${n.server.logs.filter((l) => !l.includes('"level":"debug"')).slice(-60).join('\n')}`);
      for (const p of posters) console.log(`--- ${p.name}: ${JSON.stringify(p.events)}`);
    }
    for (const p of posters) p.close();
    posters = [];
    await Promise.all(extra.splice(0).map((c) => c.stop()));
  });

  after(async () => {
    await Promise.all(nodes.splice(0).map((n) => n.server.stop()));
  });

  async function startNodes(count: number, configYaml: string): Promise<void> {
    await Promise.all(nodes.splice(0).map((n) => n.server.stop()));
    const tag = randomBytesTag();
    for (let i = 0; i < count; i++) {
      const options: ServerOptions = {
        databaseUrl: db.url, redisUrl: CLUSTER_REDIS_URL, nodeId: `drain-${tag}-${'abc'[i]}`, users,
        skipUserCreation: i > 0 || createdUsers, admins: ['root@localhost'], configYaml,
      };
      nodes.push({ options, server: await startServer(options) });
    }
    createdUsers = true;
  }
  let createdUsers = false;

  it('perch node drain: the node refuses connections, sends its clients elsewhere (see-other-host), hands the room over and exits with 0; nothing acknowledged is lost or doubled', async () => {
    await startNodes(3, 'cluster:\n  publicAddress: 127.0.0.1\n');
    const [a, b, c] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    const room = `${randomName('drain')}@${MUC}`;
    const owner = await login(a.server.ports.c2s, 'owner', 'pw');
    extra.push(owner);
    await createRoom(owner, room);
    const ports = () => alive(nodes);
    posters = [
      new RoomPoster('p0', { user: 'p0', password: 'pw' }, room, 'p0', ports),
      new RoomPoster('p1', { user: 'p1', password: 'pw' }, room, 'p1', ports),
      new RoomPoster('p2', { user: 'p2', password: 'pw' }, room, 'p2', ports),
      new RoomPoster('p3', { user: 'p3', password: 'pw' }, room, 'p3', ports),
    ];
    const homes = [a, a, b, c];
    await Promise.all(posters.map((p, i) => p.connect(homes[i]!.server.ports.c2s)));
    const running = Promise.all(posters.map((p) => p.run(40, 150)));
    await sleep(1500);

    const t0 = Date.now();
    const cli = await perch(['node', 'drain', '--json'], { dataDir: a.server.dataDir, databaseUrl: db.url });
    expect(cli.code, cli.stdout + cli.stderr).to.equal(0);
    const started = (JSON.parse(cli.stdout) as { output: { node: string; heirs: string[]; otherHost: string } }).output;
    expect(started.node).to.equal(a.options.nodeId);
    expect([...started.heirs].sort()).to.deep.equal([b.options.nodeId, c.options.nodeId].sort());
    expect([`127.0.0.1:${b.server.ports.c2s}`, `127.0.0.1:${c.server.ports.c2s}`]).to.include(started.otherHost);
    expect(await refused(a.server.ports.c2s), 'a draining node takes no new connection').to.equal(true);

    const code = await Promise.race([a.server.exited, sleep(45_000).then(() => 'still running')]);
    expect(code, 'exit code of the drained node').to.equal(0);
    const exitedMs = Date.now() - t0;
    await running;

    // Its clients were sent to the other host, could not resume there, and went on.
    for (const p of posters.slice(0, 2)) {
      expect(p.events.filter((e) => e.kind === 'stream-error').map((e) => e.detail), p.name).to.deep.equal([`see-other-host ${started.otherHost}`]);
      expect(p.events.filter((e) => e.kind === 'resume').map((e) => e.detail), p.name).to.deep.equal(['item-not-found']);
    }
    for (const p of posters.slice(2)) expect(p.events, `${p.name} (not on the drained node)`).to.deep.equal([]);
    const { sent, resent } = await expectEachOnce(db.url, room, posters);
    expect(a.server.logs.some((l) => l.includes('room handed over') && l.includes(room))).to.equal(true);

    // The room answers on another node, and the list shows the two nodes left.
    const check = await login(b.server.ports.c2s, 'q0', 'pw');
    extra.push(check);
    const info = await iq(check, 'get', xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' }), room);
    expect(info.getChild('query')?.getChildren('identity').some((i) => i.attrs.category === 'conference')).to.equal(true);
    const list = await perch(['node', 'list', '--json'], { dataDir: b.server.dataDir, databaseUrl: db.url });
    expect(list.code, list.stderr).to.equal(0);
    const listed = (JSON.parse(list.stdout) as { output: { id: string; state: string; rooms: number }[] }).output;
    expect(listed.map((n) => n.id)).to.deep.equal([b.options.nodeId, c.options.nodeId]);
    expect(listed.every((n) => n.state === 'active')).to.equal(true);
    expect(listed.reduce((s, n) => s + n.rooms, 0)).to.be.greaterThan(0);
    console.log(`      drain: ${sent} messages acknowledged and archived once (${resent} resent after the move); drained node exited ${exitedMs} ms after the command`);
    await a.server.stop();
  });

  it('the ad-hoc command drains another node by id; without public addresses its clients get system-shutdown', async () => {
    await startNodes(2, '{}\n');
    const [a, b] = nodes as [ClusterNode, ClusterNode];
    const room = `${randomName('drainx')}@${MUC}`;
    const owner = await login(a.server.ports.c2s, 'owner', 'pw');
    extra.push(owner);
    await createRoom(owner, room);
    const ports = () => alive(nodes);
    posters = [
      new RoomPoster('q0', { user: 'q0', password: 'pw' }, room, 'q0', ports),
      new RoomPoster('q1', { user: 'q1', password: 'pw' }, room, 'q1', ports),
    ];
    await posters[0]!.connect(a.server.ports.c2s);
    await posters[1]!.connect(b.server.ports.c2s);
    const running = Promise.all(posters.map((p) => p.run(30, 150)));
    await sleep(1000);
    const root = await login(b.server.ports.c2s, 'root', 'pw');
    extra.push(root);
    const node = 'http://jabber.org/protocol/admin#node-drain';
    const first = await iq(root, 'set', xml('command', { xmlns: COMMANDS, node, action: 'execute' }), 'localhost');
    const sessionid = first.getChild('command', COMMANDS)!.attrs.sessionid as string;
    const done = await iq(root, 'set', xml('command', { xmlns: COMMANDS, node, sessionid },
      xml('x', { xmlns: 'jabber:x:data', type: 'submit' },
        xml('field', { var: 'FORM_TYPE' }, xml('value', {}, 'http://jabber.org/protocol/admin')),
        xml('field', { var: 'node' }, xml('value', {}, a.options.nodeId!)))), 'localhost');
    const command = done.getChild('command', COMMANDS)!;
    // The list, through the same face: both nodes, a draining.
    const listFirst = await iq(root, 'set', xml('command', { xmlns: COMMANDS, node: 'http://jabber.org/protocol/admin#node-list', action: 'execute' }), 'localhost');
    const table = listFirst.getChild('command', COMMANDS)!.getChild('x', 'jabber:x:data')?.getChildren('field').find((f) => f.attrs.var === 'nodes')
      ?.getChildren('value').map((v) => v.text()) ?? [];
    expect(table[0]).to.match(/^NODE\s+ADDRESS\s+SESSIONS\s+ROOMS\s+STATE$/);
    expect(table.find((l) => l.startsWith(a.options.nodeId!))).to.match(/draining$/);
    expect(table.find((l) => l.startsWith(b.options.nodeId!))).to.match(/active$/);
    expect(command.attrs.status).to.equal('completed');
    expect(command.getChild('note')?.text()).to.match(new RegExp(`node ${a.options.nodeId} draining`));
    const code = await Promise.race([a.server.exited, sleep(45_000).then(() => 'still running')]);
    expect(code, 'exit code of the drained node').to.equal(0);
    await running;
    expect(posters[0]!.events.filter((e) => e.kind === 'stream-error').map((e) => e.detail)).to.deep.equal(['system-shutdown']);
    expect(posters[0]!.events.filter((e) => e.kind === 'resume').map((e) => e.detail)).to.deep.equal(['item-not-found']);
    await expectEachOnce(db.url, room, posters);
    // An unknown node is item-not-found, and nothing drains.
    const bad = await iq(root, 'set', xml('command', { xmlns: COMMANDS, node, action: 'execute' }), 'localhost');
    const again = await iq(root, 'set', xml('command', { xmlns: COMMANDS, node, sessionid: bad.getChild('command', COMMANDS)!.attrs.sessionid as string },
      xml('x', { xmlns: 'jabber:x:data', type: 'submit' }, xml('field', { var: 'node' }, xml('value', {}, 'no-such-node')))), 'localhost').catch((e: Error) => e);
    expect(String(again)).to.match(/item-not-found|no node no-such-node/);
    await a.server.stop();
  });

  it('rolling restart of three nodes under load: each drained in turn and started again, nothing acknowledged lost or doubled', async () => {
    await startNodes(3, 'cluster:\n  publicAddress: 127.0.0.1\n');
    const room = `${randomName('roll')}@${MUC}`;
    const owner = await login(nodes[0]!.server.ports.c2s, 'owner', 'pw');
    await createRoom(owner, room);
    await owner.stop();
    const ports = () => alive(nodes);
    posters = ['p0', 'p1', 'p2'].map((u) => new RoomPoster(u, { user: u, password: 'pw' }, room, u, ports));
    await Promise.all(posters.map((p, i) => p.connect(nodes[i]!.server.ports.c2s)));
    let stop = false;
    let n = 0;
    const running = Promise.all(posters.map(async (p) => {
      let i = 0;
      while (!stop) {
        await p.run(1, 0).catch((e) => { throw e; });
        i++;
        await sleep(200);
      }
      n += i;
    }));
    // Each node drained through the next one's socket (perch node drain ID --wait over the cluster bus).
    const report = await rollingRestart(nodes, { through: 'next' });
    await sleep(1000);
    stop = true;
    await running;
    await Promise.all(posters.map((p) => p.settle()));
    const { sent, resent } = await expectEachOnce(db.url, room, posters);
    for (const s of report.steps) expect(s.drain.exitCode).to.equal(0);
    console.log(`      rolling restart: ${report.steps.length} nodes in ${report.totalMs} ms (${report.steps.map((s) => `${s.drain.ms}+${s.restartMs}`).join(', ')} ms drain+start); ${sent} messages, ${resent} resent, 0 lost, 0 doubled`);
  });
});

describe('conformance: node drain of a lone node (PGlite)', function () {
  this.timeout(120_000);

  it('without another node: clients get system-shutdown and the process exits with 0', async () => {
    const server = await startServer({ users: { solo: 'pw' } });
    try {
      const c = await login(server.ports.c2s, 'solo', 'pw');
      const list = await perch(['node', 'list'], { dataDir: server.dataDir });
      expect(list.code, list.stderr).to.equal(0);
      expect(list.stdout).to.match(/^NODE\s+ADDRESS\s+SESSIONS\s+ROOMS\s+STATE\n\S+\s+-\s+1\s+0\s+active\n$/);
      const cli = await perch(['node', 'drain', '--wait'], { dataDir: server.dataDir });
      expect(cli.code, cli.stderr).to.equal(0);
      expect(cli.stdout).to.match(/drained and stopped after [0-9.]+ s\n$/);
      expect(cli.stdout).to.match(/draining: no new connections; no other active node: its 0 room\(s\) are released as it stops; its 1 session\(s\) are told system-shutdown; it exits when empty/);
      await c.disconnected;
      expect(c.errors).to.include('system-shutdown');
      expect(await Promise.race([server.exited, sleep(30_000).then(() => 'still running')])).to.equal(0);
      const help = await perch(['node', 'drain', '--help'], { dataDir: server.dataDir });
      expect(help.stdout).to.match(/Usage: perch node drain \[NODE\]/);
      expect(help.stdout).to.match(/--wait/);
    } finally {
      await server.stop();
    }
  });
});

function randomBytesTag(): string {
  return randomName('').slice(0, 6);
}
