// The compliance admin operations through their faces against a real server process: the CLI
// (perch compliance get|set|run, through the running server's admin socket) and the ad-hoc commands on
// the server JID over a real client connection; validation refuses bad values and changes nothing.
import { expect } from 'chai';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openDataStores } from '../storage/open.js';
import type { ComplianceEvent } from '../storage/types.js';
import {
  startServer, login, iq, xml, perch, expectOk, type RunningServer, type LoggedIn, type XmppElement,
} from './harness.js';

const NS = {
  commands: 'http://jabber.org/protocol/commands',
  data: 'jabber:x:data',
  discoItems: 'http://jabber.org/protocol/disco#items',
  stanzas: 'urn:ietf:params:xml:ns:xmpp-stanzas',
};
const node = (id: string) => `http://jabber.org/protocol/admin#${id}`;

function form(fields: Record<string, string[]>): XmppElement {
  return xml('x', { xmlns: NS.data, type: 'submit' },
    xml('field', { var: 'FORM_TYPE' }, xml('value', {}, 'http://jabber.org/protocol/admin')),
    ...Object.entries(fields).map(([k, vs]) => xml('field', { var: k }, ...vs.map((v) => xml('value', {}, v)))));
}

/** Runs an ad-hoc command on the server JID in one step; the <iq/> answer, result or error. */
async function adhoc(c: LoggedIn, id: string, fields: Record<string, string[]> | null): Promise<XmppElement> {
  const reqId = `cmd-${Math.random().toString(36).slice(2)}`;
  const at = c.received.length;
  await c.xmpp.send(xml('iq', { type: 'set', to: 'localhost', id: reqId },
    xml('command', { xmlns: NS.commands, node: node(id), action: 'execute' }, ...(fields ? [form(fields)] : []))));
  for (let i = 0; i < 1500; i++) {
    const found = c.received.slice(at).find((el) => el.is('iq') && el.attrs.id === reqId);
    if (found) return found;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no answer to ${id}`);
}

const resultField = (r: XmppElement, name: string): string[] =>
  (r.getChild('command', NS.commands)?.getChild('x', NS.data)?.getChildren('field') ?? [])
    .find((f: XmppElement) => f.attrs.var === name)?.getChildren('value').map((v: XmppElement) => v.text()) ?? [];
const notes = (r: XmppElement): string[] => (r.getChild('command', NS.commands)?.getChildren('note') ?? []).map((n: XmppElement) => n.text());
const errorOf = (r: XmppElement): { condition: string; text: string } => {
  const e = r.getChild('error');
  const cond = (e?.children ?? []).find((ch: unknown) => typeof ch === 'object' && (ch as XmppElement).attrs?.xmlns === NS.stanzas && (ch as XmppElement).name !== 'text') as XmppElement | undefined;
  return { condition: cond?.name ?? '', text: e?.getChildText('text', NS.stanzas) ?? '' };
};

function captured(n: number, mark: string): ComplianceEvent[] {
  return Array.from({ length: n }, (_, i) => ({
    kind: 'chat', stamp: new Date(Date.UTC(2026, 5, 1, 12, 0, i)), room: 'desk@conference.localhost', actor: 'alice@localhost',
    nick: 'alice', content: `${mark}${i}`, messageId: `m${i}`, detail: null,
  }) as ComplianceEvent);
}

describe('conformance: compliance administration (CLI and ad-hoc faces)', function () {
  this.timeout(180000);
  let server: RunningServer;
  let dataDir = '';
  let outDir = '';
  const clients: LoggedIn[] = [];

  before(async function () {
    this.timeout(120000);
    dataDir = await mkdtemp(path.join(tmpdir(), 'perch-compliance-admin-'));
    outDir = await mkdtemp(path.join(tmpdir(), 'perch-compliance-files-'));
    expectOk(await perch(['migrate'], { dataDir }));
    // Events captured before the server starts (the server then holds the embedded database).
    const stores = await openDataStores({ databaseUrl: null, dataDir });
    await stores.compliance.append(captured(7, 'before-start-'));
    await stores.db.close();
    server = await startServer({ dataDir, users: { boss: 'pw', pleb: 'pw' }, admins: ['boss@localhost'] });
  });
  after(async () => {
    await Promise.all(clients.splice(0).map((c) => c.stop()));
    await server?.stop();
    await rm(dataDir, { recursive: true, force: true, maxRetries: 3 });
    await rm(outDir, { recursive: true, force: true, maxRetries: 3 });
  });

  const cli = (...args: string[]) => perch(args, { dataDir });

  it('offers perch compliance get|set|run with help', async () => {
    const top = expectOk(await cli('--help'));
    expect(top.stdout).to.include('compliance get|set|run');
    const noun = expectOk(await cli('compliance', '--help'));
    expect(noun.stdout).to.include('perch compliance get').and.include('perch compliance set').and.include('perch compliance run');
    const set = expectOk(await cli('compliance', 'set', '--help'));
    for (const flag of ['--enabled', '--format xml|actiance|jsonl', '--output-directory', '--run-interval', '--one-room-per-file', '--add-room-details', '--add-user-details', '--attachments-manifest']) {
      expect(set.stdout).to.include(flag);
    }
  });

  it('shows the defaults, changes settings, and refuses invalid values without changing anything', async () => {
    const got = expectOk(await cli('compliance', 'get'));
    expect(got.stdout).to.match(/enabled:\s+off/).and.match(/run-interval:\s+00:15:00 \(900 s\)/).and.include('events waiting:       7');
    const json = JSON.parse(expectOk(await cli('compliance', 'get', '--json')).stdout) as { output: { config: { format: string }; waiting: number } };
    expect(json.output.config.format).to.equal('xml');
    expect(json.output.waiting).to.equal(7);

    const set = expectOk(await cli('compliance', 'set', '--format', 'jsonl', '--run-interval', '1.00:00:00', '--output-directory', outDir, '--add-room-details'));
    expect(set.stdout).to.include('changed format, run-interval, output-directory, add-room-details');
    const after = JSON.parse(expectOk(await cli('compliance', 'get', '--json')).stdout) as { output: { config: Record<string, unknown> } };
    expect(after.output.config).to.include({ format: 'jsonl', runIntervalSeconds: 86_400, outputDirectory: outDir, addRoomDetails: true, enabled: false });

    for (const [args, reason] of [
      [['--run-interval', '30s'], /1 minute to 30 days/],
      [['--run-interval', '31d'], /1 minute to 30 days/],
      [['--run-interval', 'often'], /d\.hh:mm:ss/],
      [['--format', 'pdf'], /xml, actiance or jsonl/],
      [['--output-directory', 'relative/dir'], /absolute path/],
      [['--output-directory', '/proc/perch-cannot-write-here'], /not writable/],
      // A valid value beside an invalid one is not stored either.
      [['--format', 'xml', '--run-interval', '10'], /1 minute to 30 days/],
    ] as [string[], RegExp][]) {
      const r = await cli('compliance', 'set', ...args);
      expect(r.code, `${args.join(' ')}: ${r.stdout}${r.stderr}`).to.equal(2);
      expect(r.stderr).to.match(reason);
    }
    const unchanged = JSON.parse(expectOk(await cli('compliance', 'get', '--json')).stdout) as { output: { config: Record<string, unknown> } };
    expect(unchanged.output.config).to.deep.equal(after.output.config);
    // Plain forms of the interval.
    expectOk(await cli('compliance', 'set', '--run-interval', '15m'));
    expect(expectOk(await cli('compliance', 'get')).stdout).to.match(/run-interval:\s+00:15:00/);
  });

  it('runs an export now through the CLI and reports the run, its events and files', async () => {
    const r = expectOk(await cli('compliance', 'run'));
    expect(r.stdout).to.match(/exported 7 events in 1 run \((\d+)\)/);
    const json = JSON.parse(expectOk(await cli('compliance', 'run', '--json')).stdout) as { output: { runs: unknown[] }; notes: { text: string }[] };
    expect(json.output.runs).to.deep.equal([]);
    expect(json.notes[0]!.text).to.include('nothing to export');
    const names = (await readdir(outDir)).filter((n) => !n.startsWith('.'));
    expect(names.length).to.be.greaterThan(0);
    const text = (await Promise.all(names.map((n) => readFile(path.join(outDir, n), 'utf8')))).join('');
    for (let i = 0; i < 7; i++) expect(text).to.include(`before-start-${i}`);
    const got = expectOk(await cli('compliance', 'get'));
    expect(got.stdout).to.include('events waiting:       0').and.match(/RUN\s+NODE\s+EVENTS/);
  });

  it('offers the operations as ad-hoc commands on the server JID to admins only', async () => {
    const boss = await login(server.ports.c2s, 'boss', 'pw');
    const pleb = await login(server.ports.c2s, 'pleb', 'pw');
    clients.push(boss, pleb);
    const items = async (c: LoggedIn) => (await iq(c, 'get', xml('query', { xmlns: NS.discoItems, node: NS.commands }), 'localhost'))
      .getChild('query', NS.discoItems)!.getChildren('item').map((i: XmppElement) => i.attrs.node as string);
    expect(await items(boss)).to.include.members([node('compliance-get'), node('compliance-set'), node('compliance-run')]);
    expect(await items(pleb)).to.not.include(node('compliance-get'));

    const got = await adhoc(boss, 'compliance-get', null);
    expect(got.attrs.type, got.toString()).to.equal('result');
    expect(resultField(got, 'format')).to.deep.equal(['jsonl']);
    expect(resultField(got, 'run-interval')).to.deep.equal(['00:15:00']);

    const bad = await adhoc(boss, 'compliance-set', { 'run-interval': ['59'] });
    expect(bad.attrs.type).to.equal('error');
    expect(errorOf(bad).condition).to.equal('bad-request');
    expect(errorOf(bad).text).to.include('1 minute to 30 days');

    const set = await adhoc(boss, 'compliance-set', { enabled: ['1'], 'run-interval': ['2.00:00:00'], 'add-user-details': ['1'] });
    expect(set.attrs.type, set.toString()).to.equal('result');
    expect(notes(set).join(' ')).to.include('changed enabled, run-interval, add-user-details');
    expect(resultField(set, 'enabled')).to.deep.equal(['1']);
    expect(resultField(await adhoc(boss, 'compliance-get', null), 'run-interval')).to.deep.equal(['2.00:00:00']);

    const run = await adhoc(boss, 'compliance-run', {});
    expect(run.attrs.type, run.toString()).to.equal('result');
    expect(notes(run).join(' ')).to.include('nothing to export');

    const refused = await adhoc(pleb, 'compliance-get', null);
    expect(refused.attrs.type).to.equal('error');
    expect(errorOf(refused).condition).to.equal('forbidden');
  });
});
