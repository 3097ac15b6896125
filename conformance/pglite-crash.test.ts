// The embedded database (PGlite under <dataDir>/pglite) survives kill -9: of a server accepting room
// messages (every message the room reflected, i.e. committed to its archive, is there after a
// restart on the same directory), and of a first start that was still creating the schema.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  startServer, rawLogin, createUsers, randomName, sleep, REPO_ROOT, type RunningServer, type RawSession,
} from './harness.js';

const ROOM_SERVICE = 'conference.localhost';
const CONFIG = `muc:\n  messagesPerSecond: 10000\n  messageBurst: 10000\n`;

function reply(s: RawSession, name: string, id: string, ms = 10000): Promise<string> {
  return s.waitFor(new RegExp(`<${name}[^>]*id=['"]${id}['"][^>]*(/>|>[\\s\\S]*?</${name}>)`), ms);
}

/** Joins (creating) a persistent room as its owner. */
async function createPersistentRoom(s: RawSession, room: string): Promise<void> {
  s.send(`<presence to='${room}/owner'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
  await s.waitFor(/<status code=['"]110['"]/);
  s.send(`<iq type='set' id='cfg' to='${room}'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>` +
    `<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>` +
    `<field var='muc#roomconfig_persistentroom'><value>1</value></field></x></query></iq>`);
  expect(await reply(s, 'iq', 'cfg')).to.match(/type=['"]result['"]/);
}

/** Every body in the room's archive (XEP-0313), paging through it. */
async function archivedBodies(s: RawSession, room: string): Promise<string[]> {
  const bodies: string[] = [];
  let after = '';
  for (let page = 0; page < 100; page++) {
    const id = `mam${page}`;
    s.send(`<iq type='set' id='${id}' to='${room}'><query xmlns='urn:xmpp:mam:2' queryid='${id}'>` +
      `<set xmlns='http://jabber.org/protocol/rsm'><max>500</max>${after ? `<after>${after}</after>` : ''}</set></query></iq>`);
    const fin = await reply(s, 'iq', id, 20000);
    const all = s.text;
    for (const m of all.matchAll(new RegExp(`<result[^>]*queryid=['"]${id}['"][\\s\\S]*?</result>`, 'g'))) {
      const b = /<body>([^<]*)<\/body>/.exec(m[0]);
      if (b) bodies.push(b[1]!);
    }
    if (/complete=['"]true['"]/.test(fin)) return bodies;
    const last = /<last>([^<]+)<\/last>/.exec(fin)?.[1];
    if (!last) return bodies;
    after = last;
  }
  return bodies;
}

describe('conformance: the embedded database survives kill -9', function () {
  this.timeout(240000);
  const dirs: string[] = [];
  const servers: RunningServer[] = [];

  after(async () => {
    for (const s of servers) await s.kill().catch(() => {});
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  async function freshDir(): Promise<string> {
    const d = await mkdtemp(path.join(tmpdir(), 'perch-crash-'));
    dirs.push(d);
    return d;
  }

  it('keeps every room message it reflected when killed while accepting them, and restarts cleanly', async () => {
    const dataDir = await freshDir();
    const user = randomName('crash');
    await createUsers({ dataDir }, { [user]: 'pw' });
    const first = await startServer({ dataDir, configYaml: CONFIG });
    servers.push(first);
    const room = `${randomName('room')}@${ROOM_SERVICE}`;
    const s = await rawLogin(first.ports.c2s, user, 'pw');
    await createPersistentRoom(s, room);

    // Send numbered messages, a few in flight at a time, and note which the room reflected.
    const reflected = new Set<string>();
    let sent = 0;
    let stop = false;
    const seen = () => {
      for (const m of s.text.matchAll(/<message[^>]*type=['"]groupchat['"][^>]*>[\s\S]*?<body>(n\d+)<\/body>/g)) reflected.add(m[1]!);
    };
    s.socket.on('data', seen);
    const pump = (async () => {
      while (!stop && !s.isClosed()) {
        for (let i = 0; i < 5; i++) s.send(`<message type='groupchat' to='${room}'><body>n${sent++}</body></message>`);
        await sleep(5);
      }
    })();
    await sleep(1500);
    const killedAt = reflected.size;
    await first.kill();
    stop = true;
    await pump;
    seen();
    expect(killedAt, 'messages flowed before the kill').to.be.above(20);

    const second = await startServer({ dataDir, configYaml: CONFIG });
    servers.push(second);
    const s2 = await rawLogin(second.ports.c2s, user, 'pw');
    const archived = new Set(await archivedBodies(s2, room));
    const lost = [...reflected].filter((b) => !archived.has(b));
    expect(lost, `${reflected.size} reflected, ${archived.size} archived, ${sent} sent`).to.deep.equal([]);
    // And the restarted server takes new messages into the same room.
    s2.send(`<presence to='${room}/owner'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
    await s2.waitFor(/<status code=['"]110['"]/);
    s2.send(`<message type='groupchat' to='${room}'><body>after-restart</body></message>`);
    await s2.waitFor(/<body>after-restart<\/body>/);
    s2.close();
    await second.stop();
  });

  // Kill points of a first start: while PGlite's initdb runs (it writes PG_VERSION early: once that
  // left a directory PGlite could not open), once it has finished (no migration yet), and between
  // migrations.
  const killPoints: [string, (dataDir: string, migrations: number) => boolean][] = [
    ['while PGlite initialises its directory', (d) => existsSync(path.join(d, 'pglite.init', 'PG_VERSION')) || existsSync(path.join(d, 'pglite', 'PG_VERSION'))],
    ['after PGlite initialised, before the first migration', (d) => existsSync(path.join(d, 'pglite', 'PG_VERSION'))],
    ['half-way through the migrations', (_d, n) => n >= 5],
  ];
  for (const [when, due] of killPoints) {
    it(`restarts cleanly after a kill -9 during its first start, ${when}`, async () => {
      const dataDir = await freshDir();
      const configFile = path.join(dataDir, 'perch.yaml');
      await writeFile(configFile, '{}\n');
      const env: NodeJS.ProcessEnv = {
        ...process.env, PERCH_DATA_DIR: dataDir, PERCH_C2S_PORT: '0', PERCH_C2S_TLS_PORT: '0', PERCH_COMPONENT_PORT: '0',
        PERCH_METRICS_PORT: '0', PERCH_UPLOAD_PORT: '0', PERCH_WEBSOCKET_PORT: '0', PERCH_LOG_LEVEL: 'info',
      };
      for (const k of ['PERCH_CONFIG', 'PERCH_DOMAIN', 'DATABASE_URL', 'REDIS_URL', 'PERCH_NODE_ID', 'PERCH_ADMINS']) delete env[k];
      const child = spawn(process.execPath, [path.join(REPO_ROOT, 'dist/src/cli.js'), '--config', configFile, 'start'],
        { env, cwd: dataDir, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      const deadline = Date.now() + 100_000;
      while (child.exitCode === null && Date.now() < deadline) {
        if (due(dataDir, (out.match(/"msg":"migration applied"/g) ?? []).length)) break;
        await sleep(20);
      }
      child.kill('SIGKILL');
      await exited;
      expect(out, 'killed before the server started').to.not.include('"msg":"perch started"');
      expect(Date.now(), `the kill point never came:\n${out}`).to.be.below(deadline);
      const user = randomName('first');
      await createUsers({ dataDir }, { [user]: 'pw' });
      const server = await startServer({ dataDir, startTimeoutMs: 100_000 });
      servers.push(server);
      const s = await rawLogin(server.ports.c2s, user, 'pw');
      s.close();
      await server.stop();
    });
  }
});
