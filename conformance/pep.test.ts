// PEP (XEP-0163 over XEP-0060) with real clients: slixmpp's xep_0060, xep_0163, xep_0115, xep_0084,
// xep_0048/xep_0049 plugins over sockets, in one script (conformance/clients/slixmpp_pep.py) whose
// RESULT lines say what each client saw. XEP-0402 has no slixmpp plugin in Debian's 1.8: its items are
// published through xep_0060 with publish-options, as XEP-0402 §3 spells them.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { startServer, REPO_ROOT, IN_CI, type RunningServer } from './harness.js';

const PYTHON = '/usr/bin/python3';
const SCRIPT = path.join(REPO_ROOT, 'conformance', 'clients', 'slixmpp_pep.py');

async function hasSlixmpp(): Promise<boolean> {
  if (!existsSync(PYTHON)) return false;
  const r = spawn(PYTHON, ['-c', 'import slixmpp']);
  return new Promise<boolean>((resolve) => r.once('close', (code) => resolve(code === 0)));
}

describe('conformance: PEP, bookmarks and avatars with slixmpp', function () {
  this.timeout(90000);
  let server: RunningServer;
  let lines: string[] = [];
  let stderr = '';
  let code: number | null = null;

  before(async function () {
    if (!(await hasSlixmpp())) {
      const msg = 'slixmpp_pep: /usr/bin/python3 with slixmpp (python3-slixmpp) is missing';
      if (IN_CI) throw new Error(msg);
      console.warn(`    skipping: ${msg}`);
      this.skip();
    }
    server = await startServer({ users: { alice: 'pw', bob: 'pw', carol: 'pw', dave: 'pw' } });
    const child = spawn(PYTHON, [SCRIPT, '127.0.0.1', String(server.ports.c2s)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const guard = setTimeout(() => child.kill('SIGKILL'), 80000);
    code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    clearTimeout(guard);
    lines = stdout.split('\n').filter((l) => l.startsWith('RESULT ')).map((l) => l.slice(7));
  });
  after(async () => { await server?.stop(); });

  const saw = (line: string): void => {
    expect(lines, `the clients' results (exit ${code}):\n${stderr.split('\n').slice(-15).join('\n')}`).to.include(line);
  };

  it('notifies a contact whose caps say +notify (xep_0163, xep_0115)', () => {
    saw('bob notified alice@localhost http://jabber.org/protocol/tune current title=Perch');
  });
  it('sends the last item to a resource that logs in with +notify', () => {
    saw('bob/two last item alice@localhost current');
  });
  it('sends the last item to a contact when its subscription is approved', () => {
    saw('dave approved, last item alice@localhost current');
  });
  it('applies the access models and publish-options preconditions', () => {
    saw('carol refused tune not-authorized/presence-subscription-required');
    saw('bob reads tune current');
    saw('bob refused note not-allowed/closed-node');
    saw('precondition conflict/precondition-not-met');
    saw('carol reads open p1');
  });
  it('keeps XEP-0402 bookmarks and XEP-0049 private storage in step, both ways', () => {
    saw('alice notified bookmark lab@conference.localhost autojoin=true');
    saw('private storage lab@conference.localhost:True:al');
    saw('pep bookmarks lab@conference.localhost,ops@conference.localhost');
    saw('bob refused bookmarks not-allowed/closed-node');
  });
  it('carries an XEP-0084 avatar from publisher to contact', () => {
    saw('bob notified avatar True');
    saw('bob fetched avatar True');
  });
  it('converts the PEP avatar to the vCard photo and its hash in presence (XEP-0398)', () => {
    saw('vcard photo True');
    saw('presence photo hash True');
  });
  it('publishes a vcard-temp photo as the PEP avatar, and copies only data that hashes to its id (XEP-0398)', () => {
    saw('bob notified vcard avatar True');
    saw('bob fetched vcard avatar True');
    saw('vcard keeps verified photo True');
  });
  it('stores and returns a 10 kB item whole', () => {
    saw('bundle 10240');
    expect(code, stderr).to.equal(0);
  });
});
