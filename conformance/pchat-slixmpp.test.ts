// A real client (slixmpp, Debian's python3-slixmpp) in persistent-chat rooms: it joins a closed room
// it is a member of (through a group), is refused a closed room it is not a member of
// (registration-required), and is removed (321, with a reason) when the group loses it.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { startServer, REPO_ROOT, IN_CI, type RunningServer } from './harness.js';
import { PchatCli, bare, roomJid } from './pchat-kit.js';

const PYTHON = '/usr/bin/python3';
const SCRIPT = path.join(REPO_ROOT, 'conformance', 'clients', 'slixmpp_pchat.py');

async function hasSlixmpp(): Promise<boolean> {
  if (!existsSync(PYTHON)) return false;
  const r = spawn(PYTHON, ['-c', 'import slixmpp']);
  return new Promise<boolean>((resolve) => r.once('close', (code) => resolve(code === 0)));
}

describe('conformance: slixmpp in persistent-chat rooms', function () {
  this.timeout(60000);
  let server: RunningServer;
  let cli: PchatCli;
  let t0 = 0;

  before(async function () {
    this.timeout(60000);
    t0 = Date.now();
    if (!(await hasSlixmpp())) {
      const msg = 'slixmpp_pchat: /usr/bin/python3 with slixmpp (python3-slixmpp) is missing';
      if (IN_CI) throw new Error(msg);
      console.warn(`    skipping: ${msg}`);
      this.skip();
    }
    server = await startServer({ users: { sam: 'pw', other: 'pw' } });
    cli = new PchatCli({ dataDir: server.dataDir });
    await cli.categoryAdd('slix', { allowed: ['domain:localhost'] });
    await cli.groupAdd('slix-team', [bare('sam')]);
    await cli.roomAdd('slix-in', { category: 'slix', privacy: 'closed', members: ['group:slix-team', bare('other')] });
    await cli.roomAdd('slix-out', { category: 'slix', privacy: 'closed', members: [bare('other')] });
  });
  after(async () => {
    await server?.stop();
    console.log(`      slixmpp timing (ms): ${Date.now() - t0}`);
  });

  it('joins, is refused and is removed as the rules say', async () => {
    const child = spawn(PYTHON, [SCRIPT, '127.0.0.1', String(server.ports.c2s), bare('sam'), 'pw', roomJid('slix-in'), roomJid('slix-out'), '20'],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    const lines: string[] = [];
    let stderr = '';
    let removing: Promise<unknown> | null = null;
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    let partial = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      partial += d;
      const all = partial.split('\n');
      partial = all.pop()!;
      for (const l of all) {
        if (!l.startsWith('RESULT ')) continue;
        lines.push(l.slice(7));
        // Once it sits in the room, the group loses it.
        if (l === 'RESULT waiting') removing = cli.groupMembers('slix-team', `-${bare('sam')}`);
      }
    });
    // The script ends by itself (it waits 20 s at most for the removal); never longer than the test.
    const guard = setTimeout(() => child.kill('SIGKILL'), 50000);
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    clearTimeout(guard);
    await removing;
    expect(code, `slixmpp_pchat exited ${code}:\n${stderr}`).to.equal(0);
    expect(lines[0]).to.equal(`joined ${roomJid('slix-in')}`);
    expect(lines[1]).to.equal(`refused ${roomJid('slix-out')} registration-required`);
    expect(lines[2]).to.equal('waiting');
    expect(lines[3]).to.match(new RegExp(`^removed ${roomJid('slix-in')} codes=\\S*\\b321\\b\\S* reason=\\S`));
  });
});
