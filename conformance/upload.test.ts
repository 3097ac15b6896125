// HTTP File Upload (XEP-0363) served by Perch, over real sockets: a real client library (slixmpp's
// xep_0363 plugin) uploads a file for a room and another member downloads it; the refusals the room
// policy and the quotas give; PUT and GET as HTTP says (lengths, ranges, tokens, a dropped upload that
// leaves nothing); the compliance rows of uploads and downloads; expiry of unreferenced files.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { openDataStores } from '../storage/open.js';
import { DEFAULT_COMPLIANCE_CONFIG, type ComplianceRecord, type DataStores } from '../storage/types.js';
import {
  startServer, login, xml, sleep, useTestDatabase, REPO_ROOT, IN_CI, type RunningServer, type LoggedIn, type XmppElement,
} from './harness.js';
import { PchatCli, bare, roomJid, join, post, jsonOf } from './pchat-kit.js';

const UPLOAD = 'urn:xmpp:http:upload:0';
const ROOM_NS = 'urn:x-perch:upload:0';
const SERVICE_JID = 'upload.localhost';
const PYTHON = '/usr/bin/python3';
const SCRIPT = path.join(REPO_ROOT, 'conformance', 'clients', 'slixmpp_upload.py');

interface Slot { put: string; get: string }
interface SlotError { condition: string; type: string; text: string; app: XmppElement | undefined }

/** Asks for a slot, for a room when one is named (the room child inside the request: an IQ carries one payload). */
async function slot(c: LoggedIn, filename: string, size: number, type: string, room?: string): Promise<Slot> {
  const roomEl = room ? xml('room', { xmlns: ROOM_NS, jid: room }) : null;
  const request = xml('request', { xmlns: UPLOAD, filename, size: String(size), 'content-type': type }, roomEl);
  const r = await c.xmpp.iqCaller.request(xml('iq', { type: 'get', to: SERVICE_JID }, request), 10000);
  const s = r.getChild('slot', UPLOAD)!;
  return { put: s.getChild('put')!.attrs.url as string, get: s.getChild('get')!.attrs.url as string };
}

async function slotError(c: LoggedIn, filename: string, size: number | string, room?: string): Promise<SlotError> {
  try {
    const roomEl = room ? xml('room', { xmlns: ROOM_NS, jid: room }) : null;
    await c.xmpp.iqCaller.request(xml('iq', { type: 'get', to: SERVICE_JID },
      xml('request', { xmlns: UPLOAD, filename, size: String(size), 'content-type': 'application/octet-stream' }, roomEl)), 10000);
  } catch (e) {
    const err = e as { condition: string; type: string; text: string; application?: XmppElement };
    return { condition: err.condition, type: err.type, text: err.text, app: err.application };
  }
  throw new Error('expected an error');
}

interface HttpReply { status: number; headers: IncomingHttpHeaders; body: Buffer }

function request(ca: Buffer, url: string, opts: { method?: string; headers?: Record<string, string>; body?: Buffer } = {}): Promise<HttpReply> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = https.request({
      host: '127.0.0.1', servername: u.hostname, port: Number(u.port), path: u.pathname, method: opts.method ?? 'GET',
      headers: opts.headers, ca, agent: false,
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

const put = (ca: Buffer, url: string, body: Buffer, type = 'application/octet-stream', length = body.length) =>
  request(ca, url, { method: 'PUT', body, headers: { 'content-type': type, 'content-length': String(length) } });

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

async function hasSlixmpp(): Promise<boolean> {
  if (!existsSync(PYTHON)) return false;
  const r = spawn(PYTHON, ['-c', 'import slixmpp, aiohttp']);
  return new Promise<boolean>((resolve) => r.once('close', (code) => resolve(code === 0)));
}

/** Runs the slixmpp script; resolves with its RESULT lines. */
async function slix(args: string[], env: Record<string, string>): Promise<string[]> {
  const child = spawn(PYTHON, [SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const guard = setTimeout(() => child.kill('SIGKILL'), 40000);
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  clearTimeout(guard);
  expect(code, `slixmpp_upload exited ${code}:\n${err}`).to.equal(0);
  return out.split('\n').filter((l) => l.startsWith('RESULT ')).map((l) => l.slice(7));
}

const idOf = (url: string) => new URL(url).pathname.split('/')[2]!;

describe('conformance: HTTP File Upload (XEP-0363)', function () {
  this.timeout(90000);
  const db = useTestDatabase('perch_upload_');
  let server: RunningServer;
  let cli: PchatCli;
  let stores: DataStores;
  let dataDir: string;
  let ca: Buffer;
  let ann: LoggedIn;
  let bob: LoggedIn;
  let eve: LoggedIn;
  let quo: LoggedIn;
  const clients: LoggedIn[] = [];

  before(async function () {
    // Compliance capture on from the start (the stored configuration, read at start).
    const setup = await openDataStores({ databaseUrl: db.url, dataDir: null });
    await setup.compliance.setConfig({ ...DEFAULT_COMPLIANCE_CONFIG, enabled: true });
    await setup.db.close();
    dataDir = await mkdtemp(path.join(tmpdir(), 'perch-upload-'));
    server = await startServer({
      databaseUrl: db.url, dataDir, users: { ann: 'pw', bob: 'pw', eve: 'pw', quo: 'pw' },
      configYaml: 'listen:\n  upload: { host: 127.0.0.1, port: 0 }\nupload:\n  quotaPerUserMb: 0.1\n  slotSeconds: 60\n',
    });
    expect(server.ports.upload).to.be.a('number');
    ca = readFileSync(path.join(dataDir, 'tls', 'localhost.crt'));
    cli = new PchatCli({ dataDir, databaseUrl: db.url });
    await cli.categoryAdd('files', { allowed: ['domain:localhost'] });
    await cli.ok(['category', 'set', 'files', '--file-upload', 'on']);
    await cli.categoryAdd('nofiles', { allowed: ['domain:localhost'] });
    await cli.roomAdd('docs', { category: 'files', privacy: 'closed', members: [bare('ann'), bare('bob')] });
    await cli.roomAdd('quiet', { category: 'nofiles', privacy: 'open' });
    await cli.roomAdd('open', { category: 'files', privacy: 'open' });
    await cli.serviceSet({ 'max-file-size-kb': '64' });
    stores = await openDataStores({ databaseUrl: db.url, dataDir: null });
    for (const u of ['ann', 'bob', 'eve', 'quo']) clients.push(await login(server.ports.c2s, u, 'pw'));
    [ann, bob, eve, quo] = clients as [LoggedIn, LoggedIn, LoggedIn, LoggedIn];
  });
  after(async () => {
    for (const c of clients) await c.stop().catch(() => {});
    await stores?.db.close();
    await server?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('is listed in the server\'s disco#items and describes itself with its maximum', async () => {
    const items = await ann.xmpp.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#items' })), 10000);
    expect(items.getChild('query')!.getChildren('item').map((i: XmppElement) => i.attrs.jid)).to.include(SERVICE_JID);
    const info = (await ann.xmpp.iqCaller.request(xml('iq', { type: 'get', to: SERVICE_JID }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' })), 10000)).getChild('query')!;
    expect(info.getChild('identity')!.attrs).to.include({ category: 'store', type: 'file' });
    expect(info.getChildren('feature').map((f: XmppElement) => f.attrs.var)).to.include(UPLOAD);
    const field = info.getChild('x', 'jabber:x:data')!.getChildren('field').find((f: XmppElement) => f.attrs.var === 'max-file-size')!;
    expect(field.getChildText('value')).to.equal(String(20000 * 1024));
  });

  it('slixmpp uploads a file for a room and another member downloads it', async function () {
    if (!(await hasSlixmpp())) {
      const msg = 'slixmpp_upload: /usr/bin/python3 with slixmpp and aiohttp is missing';
      if (IN_CI) throw new Error(msg);
      console.warn(`    skipping: ${msg}`);
      this.skip();
    }
    const file = path.join(dataDir, 'minutes.pdf');
    const bytes = randomBytes(3000);
    await writeFile(file, bytes);
    const env = { SSL_CERT_FILE: path.join(dataDir, 'tls', 'localhost.crt') };
    const up = await slix(['upload', '127.0.0.1', String(server.ports.c2s), bare('ann'), 'pw', roomJid('docs'), file, 'application/pdf'], env);
    expect(up[0]).to.equal(`service ${SERVICE_JID} max=${20000 * 1024}`);
    expect(up[1]).to.match(/^uploaded https:\/\/localhost:\d+\/upload\/[A-Za-z0-9_-]+\/[A-Za-z0-9_-]+\/minutes\.pdf$/);
    const url = up[1]!.slice('uploaded '.length);
    const row = await stores.uploads.get(idOf(url));
    expect(row).to.include({ room: roomJid('docs'), owner: bare('ann'), state: 'stored', size: 3000, contentType: 'application/pdf' });
    const down = await slix(['download', '127.0.0.1', String(server.ports.c2s), bare('bob'), 'pw', roomJid('docs')], env);
    const sha = createHash('sha256').update(bytes).digest('hex');
    expect(down[0]).to.equal(`downloaded status=200 type=application/pdf length=3000 sha256=${sha} bytes=3000`);
  });

  it('refuses: category switch off, too large (with the maximum), not a member, no such room, bad requests', async () => {
    const off = await slotError(ann, 'a.txt', 10, roomJid('quiet'));
    expect([off.condition, off.type]).to.deep.equal(['not-allowed', 'cancel']);
    expect(off.text).to.match(/file upload is off/);
    const big = await slotError(ann, 'big.bin', 64 * 1024 + 1, roomJid('docs'));
    expect([big.condition, big.type]).to.deep.equal(['not-acceptable', 'modify']);
    expect(big.app?.name).to.equal('file-too-large');
    expect(big.app?.attrs.xmlns).to.equal(UPLOAD);
    expect(big.app?.getChildText('max-file-size')).to.equal(String(64 * 1024));
    const outsider = await slotError(eve, 'a.txt', 10, roomJid('docs'));
    expect(outsider.condition).to.equal('forbidden');
    expect(outsider.text).to.match(/not a member/);
    expect((await slotError(ann, 'a.txt', 10, roomJid('nowhere'))).condition).to.equal('item-not-found');
    for (const [name, size] of [['', 10], ['a.txt', 0], ['a.txt', 'ten'], ['../a.txt', 10], ['dir/a.txt', 10]] as const) {
      expect((await slotError(ann, name, size)).condition, `${name} ${size}`).to.equal('bad-request');
    }
    // Personal uploads take the service's own limit (not the room service's 64 KB).
    expect((await slot(ann, 'personal.bin', 66 * 1024, 'application/octet-stream')).put).to.match(/^https:/);
    // Anyone in scope may post to an open room of a category with files on.
    expect((await slot(bob, 'b.txt', 10, 'text/plain', roomJid('open'))).get).to.match(/\/b\.txt$/);
  });

  it('refuses a slot beyond the user\'s quota with resource-constraint (wait) and a retry stamp', async () => {
    await slot(quo, 'one.bin', 60_000, 'application/octet-stream');
    const full = await slotError(quo, 'two.bin', 60_000);
    expect([full.condition, full.type]).to.deep.equal(['resource-constraint', 'wait']);
    expect(full.text).to.match(/quota/);
    expect(full.app?.name).to.equal('retry');
    expect(Date.parse(full.app?.attrs.stamp as string)).to.be.greaterThan(Date.now());
  });

  it('PUT: exact length and type only, once; GET: ranges, 416, wrong token 404, headers, CORS', async () => {
    const body = randomBytes(1000);
    const s = await slot(ann, 'data.bin', 1000, 'application/octet-stream', roomJid('docs'));
    expect((await request(ca, s.get)).status, 'not served before it is stored').to.equal(404);
    expect((await put(ca, s.put, body.subarray(0, 999))).status).to.equal(400);
    expect((await put(ca, s.put, Buffer.concat([body, Buffer.alloc(1)]))).status).to.equal(413);
    expect((await put(ca, s.put, body, 'text/plain')).status).to.equal(400);
    expect((await put(ca, s.get, body)).status, 'the GET token does not PUT').to.equal(404);
    expect((await put(ca, s.put, body)).status).to.equal(201);
    expect((await put(ca, s.put, body)).status).to.equal(409);

    const whole = await request(ca, s.get);
    expect(whole.status).to.equal(200);
    expect(whole.body.equals(body)).to.equal(true);
    expect(whole.headers).to.include({
      'content-type': 'application/octet-stream', 'content-length': '1000', 'accept-ranges': 'bytes',
      'x-content-type-options': 'nosniff', 'access-control-allow-origin': '*',
    });
    expect(whole.headers['content-disposition']).to.equal(`attachment; filename="data.bin"; filename*=UTF-8''data.bin`);
    expect(whole.headers['cache-control']).to.match(/immutable/);
    const part = await request(ca, s.get, { headers: { range: 'bytes=10-19' } });
    expect(part.status).to.equal(206);
    expect(part.headers['content-range']).to.equal('bytes 10-19/1000');
    expect(part.body.equals(body.subarray(10, 20))).to.equal(true);
    const beyond = await request(ca, s.get, { headers: { range: 'bytes=5000-' } });
    expect(beyond.status).to.equal(416);
    expect(beyond.headers['content-range']).to.equal('bytes */1000');
    const head = await request(ca, s.get, { method: 'HEAD' });
    expect([head.status, head.headers['content-length'], head.body.length]).to.deep.equal([200, '1000', 0]);
    const u = new URL(s.get);
    const parts = u.pathname.split('/');
    parts[3] = parts[3]!.replace(/^./, (c) => (c === 'A' ? 'B' : 'A'));
    expect((await request(ca, `${u.origin}${parts.join('/')}`)).status).to.equal(404);
    expect((await request(ca, `${u.origin}/upload/nosuchfileid/${parts[3]}/x`)).status).to.equal(404);
    const preflight = await request(ca, s.put, { method: 'OPTIONS', headers: { origin: 'https://web.example', 'access-control-request-method': 'PUT' } });
    expect(preflight.status).to.equal(204);
    expect(preflight.headers['access-control-allow-methods']).to.match(/PUT/);
  });

  it('offers active content as an attachment that runs nothing', async () => {
    const html = Buffer.from('<script>alert(1)</script>');
    const s = await slot(ann, 'page.html', html.length, 'text/html', roomJid('docs'));
    expect((await put(ca, s.put, html, 'text/html')).status).to.equal(201);
    const r = await request(ca, s.get);
    expect(r.headers['content-type']).to.equal('text/html');
    expect(r.headers['content-disposition']).to.match(/^attachment;/);
    expect(r.headers['content-security-policy']).to.match(/default-src 'none'.*sandbox/);
    const img = await slot(ann, 'pic.png', 4, 'image/png', roomJid('docs'));
    expect((await put(ca, img.put, Buffer.from('abcd'), 'image/png')).status).to.equal(201);
    expect((await request(ca, img.get)).headers['content-disposition']).to.match(/^inline;/);
  });

  it('never serves a half-written upload and leaves no file of it', async () => {
    const s = await slot(ann, 'half.bin', 20_000, 'application/octet-stream', roomJid('docs'));
    const u = new URL(s.put);
    const sock = tls.connect({ host: '127.0.0.1', port: Number(u.port), servername: 'localhost', ca });
    await new Promise<void>((resolve, reject) => { sock.once('secureConnect', () => resolve()); sock.once('error', reject); });
    sock.write(`PUT ${u.pathname} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\nContent-Length: 20000\r\n\r\n`);
    sock.write(randomBytes(8000));
    await sleep(300);
    sock.destroy();
    await sleep(500);
    const id = idOf(s.put);
    expect((await request(ca, s.get)).status).to.equal(404);
    expect((await stores.uploads.get(id))!.state).to.equal('pending');
    const uploads = path.join(dataDir, 'uploads');
    expect(existsSync(path.join(uploads, id.slice(0, 2), id))).to.equal(false);
    expect(readdirSync(path.join(uploads, 'tmp')).filter((f) => f.startsWith(id))).to.deep.equal([]);
    // The slot is still open: a complete PUT works.
    expect((await put(ca, s.put, randomBytes(20000))).status).to.equal(201);
    expect((await request(ca, s.get)).status).to.equal(200);
  });

  it('records uploads and downloads for compliance: the user when Basic auth proves it, else the address', async () => {
    const body = Buffer.from('compliance bytes');
    const s = await slot(ann, 'notes.txt', body.length, 'text/plain', roomJid('docs'));
    expect((await put(ca, s.put, body, 'text/plain')).status).to.equal(201);
    const id = idOf(s.get);
    expect((await request(ca, s.get, { headers: { authorization: basic('bob', 'pw') } })).status).to.equal(200);
    expect((await request(ca, s.get, { headers: { authorization: basic('bob@localhost', 'wrong') } })).status).to.equal(401);
    expect((await request(ca, s.get, { headers: { authorization: basic('eve', 'pw') } })).status, 'not a reader of the room').to.equal(403);
    expect((await request(ca, s.get)).status).to.equal(200);
    const events = (await stores.compliance.read(0, Number.MAX_SAFE_INTEGER, 10000)).filter((e: ComplianceRecord) => e.content === `${id}.txt`);
    expect(events.map((e) => [e.kind, e.actor, e.room])).to.deep.equal([
      ['upload', bare('ann'), roomJid('docs')],
      ['download', bare('bob'), roomJid('docs')],
      ['download', '', roomJid('docs')],
    ]);
    expect(events[0]!.detail).to.deep.include({ size: body.length, type: 'text/plain', name: 'notes.txt' });
    expect(events[2]!.detail).to.have.property('address').that.matches(/127\.0\.0\.1/);
    // The file the slixmpp client uploaded and its download by bob are there too.
    const kinds = new Set((await stores.compliance.read(0, Number.MAX_SAFE_INTEGER, 10000)).map((e) => e.kind));
    expect([...kinds]).to.include.members(['upload', 'download']);
  });

  it('fails the upload or the download when its compliance record cannot be written', async () => {
    // A trigger refuses the events of files with these extensions, as a full disk or a lost database would.
    await stores.db.query(`CREATE FUNCTION refuse_event() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
      IF (NEW.kind = 'upload' AND NEW.content LIKE '%.failup') OR (NEW.kind = 'download' AND NEW.content LIKE '%.faildown') THEN
        RAISE EXCEPTION 'compliance store unavailable'; END IF; RETURN NEW; END $$`);
    await stores.db.query('CREATE TRIGGER refuse_event BEFORE INSERT ON compliance_events FOR EACH ROW EXECUTE FUNCTION refuse_event()');
    try {
      const up = await slot(ann, 'x.failup', 5, 'application/octet-stream', roomJid('docs'));
      expect((await put(ca, up.put, Buffer.from('12345'))).status).to.equal(500);
      const id = idOf(up.put);
      expect((await stores.uploads.get(id))!.state).to.equal('pending');
      expect(existsSync(path.join(dataDir, 'uploads', id.slice(0, 2), id))).to.equal(false);
      expect((await request(ca, up.get)).status).to.equal(404);
      const down = await slot(ann, 'y.faildown', 5, 'application/octet-stream', roomJid('docs'));
      expect((await put(ca, down.put, Buffer.from('12345'))).status).to.equal(201);
      const r = await request(ca, down.get);
      expect(r.status).to.equal(500);
      expect(r.body.toString()).to.not.include('12345');
    } finally {
      await stores.db.query('DROP TRIGGER refuse_event ON compliance_events');
      await stores.db.query('DROP FUNCTION refuse_event()');
    }
  });

  it('lists and sums uploads for the admin', async () => {
    const list = jsonOf(await cli.ok(['upload', 'list', '--room', roomJid('docs'), '--json'])) as { id: string; state: string }[];
    expect(list.length).to.be.greaterThan(3);
    const stats = jsonOf(await cli.ok(['upload', 'stats', '--json'])) as { totals: { files: number }; users: { owner: string }[] };
    expect(stats.totals.files).to.be.greaterThan(3);
    expect(stats.users.map((u) => u.owner)).to.include(bare('ann'));
  });
});

describe('conformance: upload expiry', function () {
  this.timeout(60000);
  let server: RunningServer;
  let ann: LoggedIn;
  let ca: Buffer;

  before(async () => {
    server = await startServer({
      users: { ann: 'pw' },
      // Files unreferenced for 2 seconds expire (0.000025 days); the job runs when asked.
      configYaml: 'listen:\n  upload: { host: 127.0.0.1, port: 0 }\nupload:\n  expireUnreferencedDays: 0.000025\n',
    });
    ca = readFileSync(path.join(server.dataDir, 'tls', 'localhost.crt'));
    const cli = new PchatCli({ dataDir: server.dataDir });
    await cli.categoryAdd('files', { allowed: ['domain:localhost'] });
    await cli.ok(['category', 'set', 'files', '--file-upload', 'on']);
    await cli.roomAdd('exp', { category: 'files', privacy: 'open' });
    ann = await login(server.ports.c2s, 'ann', 'pw');
  });
  after(async () => {
    await ann?.stop().catch(() => {});
    await server?.stop();
  });

  it('deletes an unreferenced old file and keeps one a room message links to', async () => {
    expect(await join(ann, roomJid('exp'), 'ann')).to.equal('ok');
    const kept = await slot(ann, 'kept.txt', 4, 'text/plain', roomJid('exp'));
    const gone = await slot(ann, 'gone.txt', 4, 'text/plain', roomJid('exp'));
    for (const s of [kept, gone]) expect((await put(ca, s.put, Buffer.from('data'), 'text/plain')).status).to.equal(201);
    expect(await post(ann, roomJid('exp'), `minutes: ${kept.get}`)).to.equal('ok');
    await sleep(2500);
    const r = await new PchatCli({ dataDir: server.dataDir }).ok(['upload', 'expire', '--json']);
    const out = jsonOf(r) as { deleted: string[]; referenced: number };
    expect(out.deleted).to.deep.equal([idOf(gone.get)]);
    expect(out.referenced).to.equal(1);
    expect((await request(ca, kept.get)).status).to.equal(200);
    expect((await request(ca, gone.get)).status).to.equal(404);
    const id = idOf(gone.get);
    expect(existsSync(path.join(server.dataDir, 'uploads', id.slice(0, 2), id))).to.equal(false);
  });
});

describe('conformance: uploads for plain XEP-0045 rooms', function () {
  this.timeout(60000);
  let server: RunningServer;
  let ca: Buffer;
  const clients: LoggedIn[] = [];
  let ann: LoggedIn;
  let bob: LoggedIn;
  let eve: LoggedIn;

  /** ann creates a persistent room with these options (XEP-0045 §10.1). */
  async function createRoom(local: string, options: Record<string, string>): Promise<string> {
    const room = roomJid(local);
    await ann.xmpp.send(xml('presence', { to: `${room}/ann` }, xml('x', { xmlns: 'http://jabber.org/protocol/muc' })));
    await ann.waitFor((e) => e.is('presence') && e.attrs.from === `${room}/ann`);
    const fields = { FORM_TYPE: 'http://jabber.org/protocol/muc#roomconfig', 'muc#roomconfig_persistentroom': '1', ...options };
    await ann.xmpp.iqCaller.request(xml('iq', { type: 'set', to: room }, xml('query', { xmlns: 'http://jabber.org/protocol/muc#owner' },
      xml('x', { xmlns: 'jabber:x:data', type: 'submit' }, ...Object.entries(fields).map(([k, v]) => xml('field', { var: k }, xml('value', {}, v)))))), 10000);
    return room;
  }

  const affiliate = (room: string, jid: string, affiliation: string) => ann.xmpp.iqCaller.request(xml('iq', { type: 'set', to: room },
    xml('query', { xmlns: 'http://jabber.org/protocol/muc#admin' }, xml('item', { jid, affiliation }))), 10000);

  before(async () => {
    server = await startServer({ users: { ann: 'pw', bob: 'pw', eve: 'pw', zed: 'pw' }, configYaml: 'listen:\n  upload: { host: 127.0.0.1, port: 0 }\n' });
    ca = readFileSync(path.join(server.dataDir, 'tls', 'localhost.crt'));
    for (const u of ['ann', 'bob', 'eve']) clients.push(await login(server.ports.c2s, u, 'pw'));
    [ann, bob, eve] = clients as [LoggedIn, LoggedIn, LoggedIn];
  });
  after(async () => {
    for (const c of clients) await c.stop().catch(() => {});
    await server?.stop();
  });

  it('members-only: members and occupants may post files and read them; others are refused', async () => {
    const room = await createRoom('plain-members', { 'muc#roomconfig_membersonly': '1' });
    expect((await slotError(eve, 'a.txt', 4, room)).condition).to.equal('forbidden');
    expect((await slotError(bob, 'a.txt', 4, room)).condition).to.equal('forbidden');
    const s = await slot(ann, 'a.txt', 4, 'text/plain', room);
    expect((await put(ca, s.put, Buffer.from('abcd'), 'text/plain')).status).to.equal(201);
    expect((await request(ca, s.get, { headers: { authorization: basic('eve', 'pw') } })).status).to.equal(403);
    expect((await request(ca, s.get, { headers: { authorization: basic('ann', 'pw') } })).status).to.equal(200);
    await affiliate(room, bare('bob'), 'member');
    expect((await slot(bob, 'b.txt', 4, 'text/plain', room)).get).to.match(/\/b\.txt$/);
    expect((await request(ca, s.get, { headers: { authorization: basic('bob', 'pw') } })).status).to.equal(200);
  });

  it('open room: anyone not banned may post files', async () => {
    const room = await createRoom('plain-open', {});
    expect((await slot(eve, 'e.txt', 4, 'text/plain', room)).get).to.match(/\/e\.txt$/);
    await affiliate(room, bare('eve'), 'outcast');
    expect((await slotError(eve, 'e.txt', 4, room)).condition).to.equal('forbidden');
  });

  it('deleting an account deletes its personal files, not the files it posted to rooms', async () => {
    const zed = await login(server.ports.c2s, 'zed', 'pw');
    clients.push(zed);
    const room = await createRoom('plain-zed', {});
    const personal = await slot(zed, 'mine.txt', 4, 'text/plain');
    const shared = await slot(zed, 'ours.txt', 4, 'text/plain', room);
    for (const s of [personal, shared]) expect((await put(ca, s.put, Buffer.from('abcd'), 'text/plain')).status).to.equal(201);
    await new PchatCli({ dataDir: server.dataDir }).ok(['user', 'delete', bare('zed')]);
    await sleep(300);
    expect((await request(ca, personal.get)).status).to.equal(404);
    expect((await request(ca, shared.get)).status).to.equal(200);
  });
});
