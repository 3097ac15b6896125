// Compliance from end to end over real sockets: an administrator turns capture on with the CLI, users
// join a room, post, read its history, search, upload a file for it and download it, leave; a manual
// export run then writes the original's XML (and, after a change of format, the Actiance layout) that
// validates against the schemas in docs/compliance/ and holds each action once; nothing stays waiting.
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  startServer, login, xml, useTestDatabase, REPO_ROOT, IN_CI, type RunningServer, type LoggedIn,
} from './harness.js';
import { PchatCli, NS, bare, roomJid, join, post, leave, jsonOf } from './pchat-kit.js';

const run = promisify(execFile);
const XMLLINT = '/usr/bin/xmllint';
const UPLOAD = 'urn:xmpp:http:upload:0';

function httpsRequest(ca: Buffer, url: string, method: string, headers: Record<string, string>, body?: Buffer): Promise<{ status: number; body: Buffer }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', servername: u.hostname, port: Number(u.port), path: u.pathname, method, headers, ca, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function iq(c: LoggedIn, to: string, payload: ReturnType<typeof xml>): Promise<void> {
  await c.xmpp.iqCaller.request(xml('iq', { type: 'set', to }, payload), 10000);
}

const mamQuery = (fulltext?: string) => xml('query', { xmlns: NS.mam, queryid: `q${Math.random().toString(36).slice(2, 8)}` },
  xml('x', { xmlns: 'jabber:x:data', type: 'submit' },
    xml('field', { var: 'FORM_TYPE', type: 'hidden' }, xml('value', {}, NS.mam)),
    ...(fulltext ? [xml('field', { var: '{urn:xmpp:fulltext:0}fulltext' }, xml('value', {}, fulltext))] : [])));

/** The message types of the original's XML, in document order, without each conversation's <FirstMessage> repeat. */
function lyncTypes(doc: string): string[] {
  return [...doc.replace(/<FirstMessage[\s\S]*?<\/FirstMessage>/g, '').matchAll(/<Message type="([A-Z]+)"/g)].map((m) => m[1]!);
}

describe('conformance: compliance from capture to export file', function () {
  this.timeout(120000);
  const db = useTestDatabase('perch_compliance_e2e_');
  let server: RunningServer;
  let cli: PchatCli;
  let dataDir: string;
  let out: string;
  let ann: LoggedIn;
  let bob: LoggedIn;

  before(async function () {
    if (!existsSync(XMLLINT)) {
      if (IN_CI) throw new Error(`${XMLLINT} is missing (Debian package libxml2-utils)`);
      this.skip();
    }
    dataDir = await mkdtemp(path.join(tmpdir(), 'perch-compliance-e2e-'));
    out = path.join(dataDir, 'compliance-out');
    server = await startServer({
      databaseUrl: db.url, dataDir, users: { ann: 'pw', bob: 'pw' },
      configYaml: 'listen:\n  upload: { host: 127.0.0.1, port: 0 }\n',
      // The runs are this test's own (perch compliance run). The server's timer would find no run made
      // yet and export the events itself, 5 s after its start, leaving the CLI nothing to export.
      env: { PERCH_COMPLIANCE_TICK_MS: String(3_600_000) },
    });
    cli = new PchatCli({ dataDir, databaseUrl: db.url });
    await cli.categoryAdd('files', { allowed: ['domain:localhost'] });
    await cli.ok(['category', 'set', 'files', '--file-upload', 'on']);
    await cli.roomAdd('desk', { category: 'files', privacy: 'closed', members: [bare('ann'), bare('bob')], name: 'FX desk' });
    await cli.ok(['compliance', 'set', '--enabled', 'on', '--format', 'xml', '--output-directory', out, '--add-room-details', 'on']);
    ann = await login(server.ports.c2s, 'ann', 'pw');
    bob = await login(server.ports.c2s, 'bob', 'pw');
  });
  after(async () => {
    await ann?.stop().catch(() => {});
    await bob?.stop().catch(() => {});
    await server?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('records every kind of action and exports each once, in XML that validates, then in the Actiance layout', async () => {
    const room = roomJid('desk');
    expect(await join(ann, room, 'ann')).to.equal('ok');
    expect(await post(ann, room, 'quarterly figures are in')).to.equal('ok');
    expect(await join(bob, room, 'bob', { history: 5 })).to.equal('ok');      // BACKCHAT: join history
    await iq(bob, room, mamQuery());                                          // BACKCHAT: a MAM read
    await iq(bob, room, mamQuery('figures'));                                 // a search (BACKCHAT in XML)

    const ca = readFileSync(path.join(dataDir, 'tls', 'localhost.crt'));
    const bytes = Buffer.from('minutes of the meeting\n');
    const slotIq = await ann.xmpp.iqCaller.request(xml('iq', { type: 'get', to: 'upload.localhost' },
      xml('request', { xmlns: UPLOAD, filename: 'minutes.txt', size: String(bytes.length), 'content-type': 'text/plain' },
        xml('room', { xmlns: 'urn:x-perch:upload:0', jid: room }))), 10000);
    const slot = slotIq.getChild('slot', UPLOAD)!;
    const putUrl = slot.getChild('put')!.attrs.url as string;
    const getUrl = slot.getChild('get')!.attrs.url as string;
    expect((await httpsRequest(ca, putUrl, 'PUT', { 'content-type': 'text/plain', 'content-length': String(bytes.length) }, bytes)).status).to.equal(201);
    expect(await post(ann, room, getUrl)).to.equal('ok');
    const got = await httpsRequest(ca, getUrl, 'GET', { authorization: `Basic ${Buffer.from('bob@localhost:pw').toString('base64')}` });
    expect(got.status).to.equal(200);
    expect(got.body.equals(bytes)).to.equal(true);
    await leave(bob, room, 'bob');

    const runXml = await cli.ok(['compliance', 'run']);
    expect(runXml.stdout).to.match(/^RUN\s+EVENTS\s+FILES/);
    const files = readdirSync(out).filter((n) => n.endsWith('.xml'));
    expect(files).to.have.length(1);
    const file = path.join(out, files[0]!);
    await run(XMLLINT, ['--noout', '--schema', path.join(REPO_ROOT, 'docs', 'compliance', 'perch-compliance.xsd'), file]);
    const doc = readFileSync(file, 'utf8');
    const types = lyncTypes(doc);
    // ann: JOIN, CHAT; bob: JOIN, BACKCHAT (history), BACKCHAT (MAM), BACKCHAT (search); ann: FILEUPLOAD, CHAT (the link);
    // bob: FILEDOWNLOAD, PART.
    expect(types).to.deep.equal(['JOIN', 'CHAT', 'JOIN', 'BACKCHAT', 'BACKCHAT', 'BACKCHAT', 'FILEUPLOAD', 'CHAT', 'FILEDOWNLOAD', 'PART']);
    expect(doc).to.include('content="quarterly figures are in"');
    expect(doc).to.include('name="FX desk"');
    expect(doc.match(/uri="xmpp:bob@localhost"/g)?.length).to.be.greaterThan(3);
    const waiting = jsonOf(await cli.ok(['compliance', 'get', '--json'])) as { waiting?: number; eventsWaiting?: number };
    expect(waiting.eventsWaiting ?? waiting.waiting).to.equal(0);

    // The same path in the Actiance layout: the period starts with ann present and ends with her there.
    await cli.ok(['compliance', 'set', '--format', 'actiance']);
    expect(await post(ann, room, 'second period')).to.equal('ok');
    await cli.ok(['compliance', 'run']);
    const second = readdirSync(out).filter((n) => n.endsWith('.xml') && n !== files[0]);
    expect(second).to.have.length(1);
    const file2 = path.join(out, second[0]!);
    await run(XMLLINT, ['--noout', '--schema', path.join(REPO_ROOT, 'docs', 'compliance', 'actiance.xsd'), file2]);
    const fileDump = readFileSync(file2, 'utf8');
    expect(fileDump).to.include('<Content>second period</Content>');
    expect(fileDump.match(/<ParticipantEntered>/g)).to.have.length(1);
    expect(fileDump.match(/<ParticipantLeft>/g)).to.have.length(1);
  });
});
