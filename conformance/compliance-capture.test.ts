// Compliance capture over real sockets, on PostgreSQL: with capture off nothing is written; with it on
// (the configuration stored, the server restarted) a join, a leave, a post in a room with history and
// one in a category with history off, join history and a room MAM query (BACKCHAT), and searches (a
// room query with full text, the service's search across rooms) each leave their row; and with the
// compliance table unwritable (renamed mid-test) a post is refused with internal-server-error and is
// neither delivered nor archived, and a join is refused before anyone sees it.
import { expect } from 'chai';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startServer, login, iq, xml, useTestDatabase, sleep, type RunningServer, type LoggedIn, type XmppElement } from './harness.js';
import { PchatCli, SERVICE, NS, bare, roomJid, join, post, leave } from './pchat-kit.js';
import { openDataStores } from '../storage/open.js';
import { DEFAULT_COMPLIANCE_CONFIG } from '../storage/types.js';

const USERS = ['ann', 'ben', 'cid'];
const FULLTEXT = '{urn:xmpp:fulltext:0}fulltext';

interface Row { kind: string; room: string | null; actor: string; nick: string | null; content: string; message_id: string | null; detail: Record<string, unknown> | null }

function mam(fields: Record<string, string> = {}, max = 10): XmppElement {
  return xml('query', { xmlns: NS.mam, queryid: `q${Math.random().toString(36).slice(2, 8)}` },
    xml('x', { xmlns: NS.data, type: 'submit' },
      xml('field', { var: 'FORM_TYPE', type: 'hidden' }, xml('value', {}, NS.mam)),
      ...Object.entries(fields).map(([k, v]) => xml('field', { var: k }, xml('value', {}, v)))),
    xml('set', { xmlns: NS.rsm }, xml('max', {}, String(max))));
}

describe('compliance capture (sockets, PostgreSQL)', function () {
  this.timeout(120_000);
  // Registered before the database's own hooks: the server and the client go before the database is dropped.
  after(async () => {
    await stopClients();
    await server?.stop();
    await sql?.end().catch(() => {});
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });
  const db = useTestDatabase('perch_capture_');
  let dataDir: string;
  let server: RunningServer | undefined;
  let sql: pg.Client;
  const clients: LoggedIn[] = [];

  const start = async (first: boolean) => {
    server = await startServer({
      databaseUrl: db.url, dataDir, admins: ['ann@localhost'],
      users: Object.fromEntries(USERS.map((u) => [u, 'pw'])), skipUserCreation: !first,
    });
  };
  const on = async (user: string) => {
    const c = await login(server!.ports.c2s, user, 'pw');
    clients.push(c);
    return c;
  };
  const rows = async (): Promise<Row[]> => (await sql.query<Row>('SELECT kind, room, actor, nick, content, message_id, detail FROM compliance_events ORDER BY id')).rows;
  const stopClients = async () => { await Promise.all(clients.splice(0).map((c) => c.stop())); };

  before(async function () {
    dataDir = await mkdtemp(path.join(tmpdir(), 'perch-capture-'));
    await start(true);
    sql = new pg.Client({ connectionString: db.url });
    sql.on('error', () => {});
    await sql.connect();
    const cli = new PchatCli({ dataDir, databaseUrl: db.url });
    await cli.categoryAdd('Cap On', { allowed: ['domain:localhost'] });
    await cli.categoryAdd('Cap Off', { allowed: ['domain:localhost'], chatHistory: false });
    await cli.roomAdd('cap-on', { category: 'Cap On', privacy: 'open' });
    await cli.roomAdd('cap-nohist', { category: 'Cap Off', privacy: 'open' });
    await cli.roomAdd('cap-fail', { category: 'Cap On', privacy: 'open' });
  });
  afterEach(stopClients);

  it('off: joins, posts, reads, searches and leaves write nothing', async () => {
    const ann = await on('ann');
    expect(await join(ann, roomJid('cap-on'), 'ann')).to.equal('ok');
    expect(await post(ann, roomJid('cap-on'), 'before capture')).to.equal('ok');
    await iq(ann, 'set', mam(), roomJid('cap-on'));
    await iq(ann, 'set', mam({ [FULLTEXT]: 'capture' }), SERVICE);
    await leave(ann, roomJid('cap-on'), 'ann');
    await sleep(200);
    expect(await rows()).to.deep.equal([]);
  });

  it('on: a row for each kind, with the real bare JID, the nick and the room', async () => {
    await server!.stop();
    const stores = await openDataStores({ databaseUrl: db.url, dataDir });
    try {
      await stores.compliance.setConfig({ ...DEFAULT_COMPLIANCE_CONFIG, enabled: true });
    } finally {
      await stores.db.close();
    }
    await start(false);
    const ann = await on('ann');
    const ben = await on('ben');
    const room = roomJid('cap-on');
    expect(await join(ann, room, 'ann')).to.equal('ok');
    expect(await post(ann, room, 'recorded words')).to.equal('ok');
    expect(await join(ben, room, 'ben', { history: 5 })).to.equal('ok');
    await ben.waitFor((e) => e.is('message') && e.getChildText('body') === 'recorded words');
    await iq(ben, 'set', mam({}, 5), room);
    await iq(ben, 'set', mam({ [FULLTEXT]: 'recorded' }), room);
    await iq(ben, 'set', mam({ '{urn:x-perch:search:0}text': 'words' }), SERVICE);
    const nohist = roomJid('cap-nohist');
    expect(await join(ann, nohist, 'ann')).to.equal('ok');
    expect(await post(ann, nohist, 'not archived, recorded')).to.equal('ok');
    await leave(ann, room, 'ann');
    await sleep(200);
    const got = (await rows()).map((r) => [r.kind, r.room, r.actor, r.nick, r.content]);
    expect(got).to.deep.equal([
      ['join', room, bare('ann'), 'ann', ''],
      ['chat', room, bare('ann'), 'ann', 'recorded words'],
      ['join', room, bare('ben'), 'ben', ''],
      // The post from before capture is history too.
      ['backchat', room, bare('ben'), 'ben', 'join history: 2 messages'],
      ['backchat', room, bare('ben'), 'ben', 'archive query: 2 messages'],
      ['search', room, bare('ben'), 'ben', 'recorded'],
      ['search', null, bare('ben'), null, 'words'],
      ['join', nohist, bare('ann'), 'ann', ''],
      ['chat', nohist, bare('ann'), 'ann', 'not archived, recorded'],
      ['part', room, bare('ann'), 'ann', ''],
    ]);
    const all = await rows();
    const archived = await sql.query<{ stanza_id: string }>("SELECT stanza_id FROM archive WHERE archive = $1 AND body = 'recorded words'", [room]);
    expect(all[1]!.message_id).to.equal(archived.rows[0]!.stanza_id);
    expect(all[4]!.detail).to.deep.include({ page: 5, results: 2 });
    expect(all[6]!.detail).to.deep.include({ service: SERVICE });
    expect((await sql.query("SELECT 1 FROM archive WHERE archive = $1", [nohist])).rowCount).to.equal(0);
  });

  it('a failed write fails the post (internal-server-error, not delivered, not archived) and the join', async () => {
    const ann = await on('ann');
    const ben = await on('ben');
    const room = roomJid('cap-fail');
    expect(await join(ann, room, 'ann')).to.equal('ok');
    expect(await join(ben, room, 'ben')).to.equal('ok');
    const cid = await on('cid');
    await sql.query('ALTER TABLE compliance_events RENAME TO compliance_events_away');
    let outcome: string;
    let joined: string;
    try {
      outcome = await post(ann, room, 'must not be seen');
      joined = await join(cid, room, 'cid');
    } finally {
      await sql.query('ALTER TABLE compliance_events_away RENAME TO compliance_events');
    }
    expect(outcome).to.equal('internal-server-error');
    // A join that cannot be recorded is refused, and nobody in the room saw it.
    expect(joined).to.equal('internal-server-error');
    await ann.expectNone((e) => e.is('presence') && e.attrs.from === `${room}/cid`, 300);
    await ben.expectNone((e) => e.is('message') && e.getChildText('body') === 'must not be seen', 500);
    expect((await sql.query("SELECT 1 FROM archive WHERE body = 'must not be seen'")).rowCount).to.equal(0);
    // The table is back: the room goes on.
    expect(await post(ann, room, 'seen again')).to.equal('ok');
  });
});
