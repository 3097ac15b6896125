// The self-test through its faces against a real server process: `perch selftest` (through the
// server's admin socket, and straight on the database against a stopped server), and the ad-hoc
// command on the server JID. Its steps speak XMPP over the c2s listener like any client.
import { expect } from 'chai';
import net from 'node:net';
import { startServer, login, perch, expectOk, type RunningServer, type LoggedIn, type CliResult } from './harness.js';
import { adhoc } from './pchat-kit.js';

interface Step { name: string; ok: boolean; ms: number; detail: string }
interface Report { ok: boolean; steps: Step[]; totalMs: number }

const ALL_STEPS = ['login-1', 'login-2', 'join-1', 'join-2', 'message-1-to-2', 'message-2-to-1', 'archive', 'search', 'leave-1', 'leave-2', 'logoff-1', 'logoff-2'];
const ROOM = 'perch-selftest@conference.localhost';

function report(r: CliResult): Report {
  const line = r.stdout.trim().split('\n').pop()!;
  try {
    return JSON.parse(line) as Report;
  } catch {
    throw new Error(`no JSON report (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  }
}

function expectPassed(rep: Report, first: string[] = []): void {
  expect(rep.steps.filter((s) => !s.ok), JSON.stringify(rep.steps, null, 1)).to.deep.equal([]);
  expect(rep.ok).to.equal(true);
  expect(rep.steps.map((s) => s.name)).to.deep.equal([...first, ...ALL_STEPS]);
  for (const s of rep.steps) {
    expect(s.ms, s.name).to.be.a('number').and.to.be.at.least(0).and.below(20_000);
    expect(s.detail, s.name).to.be.a('string').and.not.equal('');
  }
  expect(rep.totalMs).to.be.at.least(rep.steps.reduce((n, s) => n + s.ms, 0) * 0.9);
}

function failedStep(rep: Report): Step {
  expect(rep.ok).to.equal(false);
  const bad = rep.steps.filter((s) => !s.ok);
  expect(bad, JSON.stringify(rep.steps, null, 1)).to.have.length(1);
  expect(rep.steps[rep.steps.length - 1]).to.equal(bad[0]);
  return bad[0]!;
}

describe('self-test (perch selftest and the ad-hoc command)', function () {
  this.timeout(120_000);

  describe('on a plain MUC service', () => {
    let server: RunningServer;
    let admin: LoggedIn;
    const cli = (args: string[]) => perch(['selftest', ...args], { dataDir: server.dataDir });
    before(async () => {
      server = await startServer({ users: { boss: 'boss-pw' }, admins: ['boss@localhost'] });
    });
    after(async () => {
      await admin?.stop().catch(() => {});
      await server?.stop();
    });

    it('without a fixture fails and says to run --setup (exit 1)', async () => {
      const r = await cli(['--json']);
      expect(r.code).to.equal(1);
      const s = failedStep(report(r));
      expect(s.name).to.equal('fixture');
      expect(s.detail).to.include('perch selftest --setup');
    });

    it('--setup creates the accounts and room, then every step passes with its time (exit 0)', async () => {
      const rep = report(expectOk(await cli(['--setup', '--json'])));
      expectPassed(rep, ['setup']);
      expect(rep.steps[0]!.detail).to.include('created perch-selftest-1@localhost').and.include(`created room ${ROOM}`);
      expect(rep.steps.find((s) => s.name === 'login-1')!.detail).to.match(/TLSv1\.[23], certificate not verified .*SCRAM-SHA-256/);
      expect(rep.steps.find((s) => s.name === 'search')!.detail).to.include('found both messages');
    });

    it('runs again on the fixture, as a table for people', async () => {
      const r = expectOk(await cli([]));
      const lines = r.stdout.trim().split('\n');
      expect(lines[0]).to.match(/^STEP\s+RESULT\s+TIME ms\s+DETAIL$/);
      expect(lines.slice(1, 1 + ALL_STEPS.length).map((l) => l.split(/\s+/).slice(0, 2))).to.deep.equal(ALL_STEPS.map((n) => [n, 'ok']));
      expect(r.stdout).to.match(/self-test passed: 12 steps in [\d.]+ ms/);
    });

    it('a room that does not exist fails at the join, and the join does not leave it behind', async () => {
      for (let i = 0; i < 2; i++) {
        const r = await cli(['--room', 'nowhere@conference.localhost', '--json']);
        expect(r.code).to.equal(1);
        const s = failedStep(report(r));
        expect(s.name).to.equal('join-1');
        // Created by the join and destroyed again, both times (a left-over room would be joined the second time).
        expect(s.detail).to.include('no room nowhere@conference.localhost').and.include('destroyed it again');
      }
    });

    it('existing accounts with their passwords from the environment; a wrong one fails at login', async () => {
      expectOk(await perch(['user', 'add', 'ann', 'ann-pw'], { dataDir: server.dataDir }));
      expectOk(await perch(['user', 'add', 'ben', 'ben-pw'], { dataDir: server.dataDir }));
      // Not members of the members-only test room: refused at the join, with the room's reason.
      const refused = await perch(['selftest', '--user1', 'ann', '--user2', 'ben@localhost', '--json'],
        { dataDir: server.dataDir, env: { PERCH_SELFTEST_PASSWORD1: 'ann-pw', PERCH_SELFTEST_PASSWORD2: 'ben-pw' } });
      expect(refused.code).to.equal(1);
      const s = failedStep(report(refused));
      expect(s.name).to.equal('join-1');
      expect(s.detail).to.include('registration-required');
      const wrong = await perch(['selftest', '--user1', 'ann', '--user2', 'ben', '--password1', 'nope', '--json'], { dataDir: server.dataDir, stdin: 'ben-pw\n' });
      expect(wrong.code).to.equal(1);
      const w = failedStep(report(wrong));
      expect(w.name).to.equal('login-1');
      expect(w.detail).to.include('not-authorized');
    });

    it('bad input is a usage error (exit 2)', async () => {
      expect((await cli(['--timeout', 'soon'])).code).to.equal(2);
      expect((await cli(['--user1', 'ann', '--password1', 'x'])).code).to.equal(2);
      expect((await cli(['--frobnicate'])).code).to.equal(2);
    });

    it('a listener that accepts but never answers fails at login-1 when the step\'s time is up', async () => {
      const sockets: net.Socket[] = [];
      const silent = net.createServer((sock) => sockets.push(sock));
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
      const { port } = silent.address() as net.AddressInfo;
      try {
        const r = await cli(['--port', String(port), '--timeout', '1', '--json']);
        expect(r.code).to.equal(1);
        const s = failedStep(report(r));
        expect(s.name).to.equal('login-1');
        expect(s.detail).to.equal('no stream features in 1000 ms');
        expect(s.ms).to.be.within(950, 3000);
      } finally {
        for (const sock of sockets) sock.destroy();
        silent.close();
      }
    });

    it('the ad-hoc command on the server JID returns the same report, and the metrics show it', async () => {
      admin = await login(server.ports.c2s, 'boss', 'boss-pw');
      const res = await adhoc(admin, 'localhost', 'selftest', {});
      expect(res.status).to.equal('completed');
      expect(res.fields.get('ok')).to.deep.equal(['1']);
      expect(res.fields.get('failed-step')).to.deep.equal([]);
      const rows = res.fields.get('steps')!;
      expect(rows[0]).to.match(/^STEP\s+RESULT/);
      expect(rows.slice(1).map((l) => l.split(/\s+/).slice(0, 2))).to.deep.equal(ALL_STEPS.map((n) => [n, 'ok']));
      expect(res.notes.join('\n')).to.match(/info: self-test passed: 12 steps/);
      const metrics = await (await fetch(`http://127.0.0.1:${server.ports.metrics}/metrics`)).text();
      expect(metrics).to.match(/^perch_selftest_ok 1$/m);
      expect(metrics).to.match(/^perch_selftest_duration_seconds [\d.e-]+$/m);

      const bad = await adhoc(admin, 'localhost', 'selftest', { room: ['nowhere@conference.localhost'] });
      expect(bad.fields.get('ok')).to.deep.equal(['0']);
      expect(bad.fields.get('failed-step')).to.deep.equal(['join-1']);
      expect(bad.notes.join('\n')).to.match(/error: self-test FAILED at join-1/);
      expect(await (await fetch(`http://127.0.0.1:${server.ports.metrics}/metrics`)).text()).to.match(/^perch_selftest_ok 0$/m);
    });
  });

  describe('on a governed (persistent-chat) service', () => {
    let server: RunningServer;
    const run = (args: string[]) => perch(args, { dataDir: server.dataDir });
    before(async () => {
      server = await startServer();
      expectOk(await run(['category', 'add', 'General', '--allowed', 'domain:localhost']));
    });
    after(async () => { await server?.stop(); });

    it('--setup makes a secret room in a category of its own, then every step passes', async () => {
      expectPassed(report(expectOk(await run(['selftest', '--setup', '--json']))), ['setup']);
      const shown = expectOk(await run(['room', 'show', ROOM])).stdout;
      expect(shown).to.match(/category:\s+perch-selftest-category/).and.match(/privacy:\s+secret/)
        .and.match(/members:\s+perch-selftest-1@localhost,perch-selftest-2@localhost/);
      const cat = expectOk(await run(['category', 'list'])).stdout;
      expect(cat).to.include('perch-selftest-category');
    });

    it('a disabled test room fails at the join, saying it is disabled; --setup repairs it', async () => {
      expectOk(await run(['room', 'disable', ROOM]));
      const r = await run(['selftest', '--json']);
      expect(r.code).to.equal(1);
      const s = failedStep(report(r));
      expect(s.name).to.equal('join-1');
      expect(s.detail).to.include('the room is disabled');
      const fixed = report(expectOk(await run(['selftest', '--setup', '--json'])));
      expectPassed(fixed, ['setup']);
      expect(fixed.steps[0]!.detail).to.include(`reset room ${ROOM}`);
      expectPassed(report(expectOk(await run(['selftest', '--json']))));
    });
  });

  describe('against a stopped server', () => {
    it('fails at the first login, naming the step (exit 1)', async () => {
      const server = await startServer();
      try {
        const { c2s: port } = server.ports;
        expectOk(await perch(['selftest', '--setup', '--json'], { dataDir: server.dataDir }));
        // Stopped without the harness's clean-up, which would remove the data directory.
        server.process.kill('SIGTERM');
        await server.exited;
        // No server holds the data directory: the CLI runs the test itself, on the fixture in the database.
        const r = await perch(['selftest', '--port', String(port)], { dataDir: server.dataDir });
        expect(r.code).to.equal(1);
        expect(r.stdout).to.match(/^login-1\s+FAILED\s+[\d.]+\s+cannot connect to 127\.0\.0\.1:\d+: ECONNREFUSED$/m);
        expect(r.stderr).to.match(new RegExp(`self-test FAILED at login-1 after [\\d.]+ ms: cannot connect to 127\\.0\\.0\\.1:${port}`));
      } finally {
        await server.stop();
      }
    });
  });
});
