// `perch start --workers 2` on real PostgreSQL and Redis: two nodes in one server sharing its ports,
// clients on different workers talking, a worker killed and started again, the CLI through the
// primary's admin socket, and SIGTERM stopping everything cleanly. Needs the services; under CI their
// absence fails the suite, locally it skips.
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import {
  startServer, login, perch, expectOk, randomName, sleep, xml, CLUSTER_REDIS_URL, useClusterDatabase,
  type RunningServer, type LoggedIn,
} from './harness.js';
import type { NodeStatus } from '../src/cluster-nodes.js';
import { NODE_FLAGS } from '../src/node-flags.js';

const MUC = 'conference.localhost';

interface WorkersStarted { nodes: string[]; pids: number[]; ports: { c2s: number; metrics?: number } }

/** Resolves with the first log line (parsed) that matches, from the start of the log. */
async function logLine<T>(server: RunningServer, match: (line: string) => boolean, timeoutMs = 30000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const line = server.logs.find(match);
    if (line) return JSON.parse(line) as T;
    if (Date.now() > until) throw new Error(`no such log line in time; logs:\n${server.logs.join('\n')}`);
    await sleep(100);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('conformance: perch start --workers 2 (PostgreSQL + Redis)', function () {
  this.timeout(60000);
  const db = useClusterDatabase('perch_workers_', 'workers conformance tests');
  const alice = randomName('wa');
  const bob = randomName('wb');
  const carol = randomName('wc');
  const room = randomName('wroom');
  let server: RunningServer | undefined;
  let started: WorkersStarted;
  const clients: LoggedIn[] = [];
  /** The node each test client's session is on. */
  const nodeOf = new Map<LoggedIn, string>();

  before(async function () {
    this.timeout(90000);
    server = await startServer({
      databaseUrl: db.url, redisUrl: CLUSTER_REDIS_URL, workers: 2,
      users: { [alice]: 'pw', [bob]: 'pw', [carol]: 'pw' },
    });
    started = await logLine<WorkersStarted>(server, (l) => l.includes('"msg":"workers started"'));
  });

  after(async function () {
    this.timeout(60000);
    await Promise.all(clients.splice(0).map((c) => c.stop()));
    await server?.stop();
    await db.drop();
  });

  async function nodes(): Promise<NodeStatus[]> {
    const r = expectOk(await perch(['node', 'list', '--json'], { dataDir: server!.dataDir }));
    return (JSON.parse(r.stdout) as { output: NodeStatus[] }).output;
  }

  /** Logs in on the shared port until the session lands on a node other than `not` (the primary hands connections out in turn). */
  async function loginElsewhere(user: string, not: string | null): Promise<LoggedIn> {
    for (let attempt = 0; attempt < 6; attempt++) {
      const before = new Map((await nodes()).map((n) => [n.id, n.sessions]));
      const c = await login(started.ports.c2s, user, 'pw', { resource: `r${attempt}` });
      await sleep(200);
      const landed = (await nodes()).find((n) => n.sessions > (before.get(n.id) ?? 0))?.id;
      if (landed && landed !== not) {
        clients.push(c);
        nodeOf.set(c, landed);
        return c;
      }
      await c.stop();
    }
    throw new Error(`no session of ${user} landed on a node other than ${not}`);
  }

  async function join(c: LoggedIn, nick: string): Promise<void> {
    await c.xmpp.send(xml('presence', { to: `${room}@${MUC}/${nick}` }, xml('x', { xmlns: 'http://jabber.org/protocol/muc' },
      xml('history', { maxstanzas: '0' }))));
    await c.waitFor((el) => el.is('presence') && el.attrs.from === `${room}@${MUC}/${nick}` &&
      (el.getChild('x', 'http://jabber.org/protocol/muc#user')?.getChildren('status') ?? []).some((st) => st.attrs.code === '110'), 10000);
  }

  async function chat(from: LoggedIn, to: LoggedIn, id: string): Promise<void> {
    await from.xmpp.send(xml('message', { to: to.jid, type: 'chat', id }, xml('body', {}, `hello ${id}`)));
    const m = await to.waitFor((el) => el.is('message') && el.attrs.id === id, 8000);
    expect(m.attrs.from).to.equal(from.jid);
  }

  it('runs two nodes of the cluster, which the CLI lists through the primary\'s admin socket', async () => {
    expect(started.nodes).to.have.length(2);
    expect(started.pids.every(alive)).to.equal(true);
    const listed = await nodes();
    expect(listed.map((n) => n.id).sort()).to.deep.equal([...started.nodes].sort());
    expect(listed.map((n) => n.pid).sort()).to.deep.equal([...started.pids].sort());
    // Every line a worker logs names its node and worker; the primary's say primary.
    const lines = server!.logs.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { node?: string; worker?: unknown });
    expect(lines.every((l) => typeof l.node === 'string' && l.worker !== undefined)).to.equal(true);
    for (const l of lines) {
      if (l.worker === 'primary') expect(started.nodes.map((n) => n.replace(/-w\d+$/, ''))).to.include(l.node);
      else expect(started.nodes).to.include(l.node);
    }
    // The text form too (what an operator reads).
    const text = expectOk(await perch(['node', 'list'], { dataDir: server!.dataDir })).stdout;
    for (const n of started.nodes) expect(text).to.contain(n);
  });

  it('runs each worker with Perch\'s Node flags, though the primary was started without them', async () => {
    const primary = readFileSync(`/proc/${server!.process.pid}/cmdline`, 'utf8').split('\0');
    for (const flag of NODE_FLAGS) expect(primary).to.not.include(flag);
    for (const pid of started.pids) {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      for (const flag of NODE_FLAGS) expect(argv, `worker ${pid}`).to.include(flag);
    }
  });

  it('clients on different workers exchange one-to-one and room messages', async () => {
    const a = await loginElsewhere(alice, null);
    const b = await loginElsewhere(bob, nodeOf.get(a)!);
    expect(nodeOf.get(a)).to.not.equal(nodeOf.get(b));
    await chat(a, b, 'ab1');
    await chat(b, a, 'ba1');
    // One metrics port, the workers' figures summed: a session on each.
    const text = await (await fetch(`http://127.0.0.1:${started.ports.metrics!}/metrics`)).text();
    expect(/^perch_sessions (\d+)$/m.exec(text)?.[1]).to.equal('2');
    await join(a, 'alice');
    // Persistent: the room outlives a node that dies holding it (the next test).
    await a.xmpp.iqCaller.request(xml('iq', { type: 'set', to: `${room}@${MUC}` }, xml('query', { xmlns: 'http://jabber.org/protocol/muc#owner' },
      xml('x', { xmlns: 'jabber:x:data', type: 'submit' },
        xml('field', { var: 'FORM_TYPE' }, xml('value', {}, 'http://jabber.org/protocol/muc#roomconfig')),
        xml('field', { var: 'muc#roomconfig_persistentroom' }, xml('value', {}, '1'))))));
    await join(b, 'bob');
    await a.xmpp.send(xml('message', { to: `${room}@${MUC}`, type: 'groupchat', id: 'g1' }, xml('body', {}, 'to the room')));
    const g = await b.waitFor((el) => el.is('message') && el.attrs.type === 'groupchat' && el.attrs.id === 'g1', 8000);
    expect(g.attrs.from).to.equal(`${room}@${MUC}/alice`);
    await b.xmpp.send(xml('message', { to: `${room}@${MUC}`, type: 'groupchat', id: 'g2' }, xml('body', {}, 'back')));
    await a.waitFor((el) => el.is('message') && el.attrs.type === 'groupchat' && el.attrs.id === 'g2', 8000);
  });

  it('a worker killed with SIGKILL is started again by the primary, and the service goes on', async function () {
    this.timeout(90000);
    const [a, b] = clients;
    const victim = started.nodes.indexOf(nodeOf.get(a!)!);
    const pid = started.pids[victim]!;
    process.kill(pid, 'SIGKILL');
    await a!.disconnected;
    // The primary's line about the worker: its own fields say primary, the worker's are peer_ fields.
    const restarted = await logLine<{ peer_node: string; pid: number }>(server!, (l) => l.includes('"msg":"worker started"') && l.includes(`"peer_node":"${started.nodes[victim]}-1"`), 30000);
    const again = { node: restarted.peer_node, pid: restarted.pid };
    expect(again.pid).to.not.equal(pid);
    expect(server!.process.exitCode).to.equal(null);
    // The room, whichever node held it, answers again (a dead holder's lease lapses in 4 s).
    let accepted = false;
    for (let i = 0; !accepted && i < 12; i++) {
      await b!.xmpp.send(xml('message', { to: `${room}@${MUC}`, type: 'groupchat', id: `after${i}` }, xml('body', {}, `after ${i}`)));
      accepted = await b!.waitFor((el) => el.is('message') && el.attrs.id === `after${i}`, 3000).then(() => true, () => false);
    }
    expect(accepted, 'the room answers after the kill').to.equal(true);
    // A new login (on the restarted worker: the survivor is the other one) talks to the survivor.
    const c = await loginElsewhere(carol, nodeOf.get(b!)!);
    expect(nodeOf.get(c)).to.equal(again.node);
    await chat(c, b!, 'cb1');
    await chat(b!, c, 'bc1');
    await join(c, 'carol');
    await b!.xmpp.send(xml('message', { to: `${room}@${MUC}`, type: 'groupchat', id: 'g3' }, xml('body', {}, 'welcome back')));
    await c.waitFor((el) => el.is('message') && el.attrs.type === 'groupchat' && el.attrs.id === 'g3', 8000);
    const listed = (await nodes()).map((n) => n.id);
    expect(listed).to.include(again.node).and.to.include(nodeOf.get(b!)!);
    started.pids[victim] = again.pid;
  });

  it('SIGTERM to the primary stops every worker gracefully, and all exit 0', async function () {
    this.timeout(60000);
    const pids = [...started.pids];
    server!.process.kill('SIGTERM');
    expect(await server!.exited).to.equal(0);
    expect(pids.filter(alive)).to.deep.equal([]);
    expect(server!.logs.filter((l) => l.includes('"msg":"perch stopped"') && /"worker":\d/.test(l))).to.have.length(2);
    expect(server!.logs.some((l) => l.includes('"msg":"perch stopped"') && l.includes('"clean":true'))).to.equal(true);
  });
});

describe('conformance: perch start --workers on the embedded stores', function () {
  // Initialising the first PGlite directory of a run takes seconds (tens on a loaded machine).
  this.timeout(90000);

  it('--workers 2 is refused with the reason; auto runs one process and says why', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'perch-workers-'));
    const r = await perch(['start', '--workers', '2'], { dataDir }).finally(() => rm(dataDir, { recursive: true, force: true }));
    expect(r.code).to.equal(2);
    expect(r.stderr).to.contain('config: workers: 2 workers need PostgreSQL and Redis').and.to.contain('PGlite');
    const one = await startServer({});
    try {
      const line = one.logs.find((l) => l.includes('"msg":"workers: 1"'));
      expect(line).to.contain('PGlite');
    } finally {
      await one.stop();
    }
  });
});
