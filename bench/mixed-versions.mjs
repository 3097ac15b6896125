#!/usr/bin/env node
// A rolling upgrade, checked: a node of another build (--before: a checkout of the version before,
// built, with node_modules) and a node of this one on the same PostgreSQL and Redis, rooms held by
// each with occupants on the other, and one-to-one messages both ways. Exits 0 when every message
// arrived, in order, and every archived body has its full-text words (whichever node wrote it). Not a
// benchmark: a check to run before an upgrade that changes what nodes send each other or what they
// write.
//
//   npm run build && node bench/mixed-versions.mjs --before /path/to/checkout [--redis-url redis://127.0.0.1:6379]
//
// PostgreSQL: a fresh database on PERCH_BENCH_PG (default postgres://root@127.0.0.1:5432/test), dropped after.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const value = (n, d) => { const i = argv.indexOf(n); return i !== -1 && argv[i + 1] !== undefined ? argv[i + 1] : d; };
const BEFORE = value('--before', null);
if (!BEFORE) throw new Error('--before DIR: a built checkout of the version before');
const PG_ADMIN = process.env.PERCH_BENCH_PG ?? 'postgres://root@127.0.0.1:5432/test';
const NEW = await import(path.join(ROOT, 'dist/conformance/harness.js'));
const OLD = await import(path.join(path.resolve(BEFORE), 'dist/conformance/harness.js'));
const { xml, sleep, login } = NEW;
const name = 'perch_mixed_versions_' + process.pid;
const admin = new pg.Client({ connectionString: PG_ADMIN });
await admin.connect(); await admin.query(`CREATE DATABASE ${name}`); await admin.end();
const url = PG_ADMIN.replace(/\/[^/]*$/, `/${name}`);
const redisUrl = value('--redis-url', 'redis://127.0.0.1:6379');
const users = { alice: 'pw', amy: 'pw', bob: 'pw', bea: 'pw' };
const oldNode = await OLD.startServer({ databaseUrl: url, redisUrl, nodeId: 'mixed-old', users, configYaml: 'workers: 1\n' });
const newNode = await NEW.startServer({ databaseUrl: url, redisUrl, nodeId: 'mixed-new', users, skipUserCreation: true, configYaml: 'workers: 1\n' });
const MUC = 'conference.localhost';
const clients = [];
const on = async (n, u) => { const c = await login(n.ports.c2s, u, 'pw', { resource: 'r' }); clients.push(c); return c; };
async function join(c, room, nick) {
  await c.xmpp.send(xml('presence', { to: `${room}@${MUC}/${nick}` }, xml('x', { xmlns: 'http://jabber.org/protocol/muc' }, xml('history', { maxstanzas: '0' }))));
  await c.waitFor((el) => el.is('message') && el.getChild('subject') !== undefined, 8000);
}
async function create(c, room, nick) {
  await join(c, room, nick);
  await c.xmpp.iqCaller.request(xml('iq', { type: 'set', to: `${room}@${MUC}` }, xml('query', { xmlns: 'http://jabber.org/protocol/muc#owner' },
    xml('x', { xmlns: 'jabber:x:data', type: 'submit' }, xml('field', { var: 'FORM_TYPE' }, xml('value', {}, 'http://jabber.org/protocol/muc#roomconfig'))))));
}
let ok = true;
try {
  const alice = await on(oldNode, 'alice'), amy = await on(oldNode, 'amy'), bob = await on(newNode, 'bob'), bea = await on(newNode, 'bea');
  // A room held by the new node, two occupants on the old one: it must send them envelopes they read.
  await create(bob, 'newroom', 'bob'); await join(alice, 'newroom', 'alice'); await join(amy, 'newroom', 'amy');
  // A room held by the old node, two occupants on the new one.
  await create(alice, 'oldroom', 'alice'); await join(bob, 'oldroom', 'bob'); await join(bea, 'oldroom', 'bea');
  await sleep(300);
  for (let i = 0; i < 5; i++) await bob.xmpp.send(xml('message', { to: `newroom@${MUC}`, type: 'groupchat' }, xml('body', {}, `n${i}`)));
  for (let i = 0; i < 5; i++) await alice.xmpp.send(xml('message', { to: `oldroom@${MUC}`, type: 'groupchat' }, xml('body', {}, `o${i}`)));
  await bob.xmpp.send(xml('message', { to: 'amy@localhost/r', type: 'chat' }, xml('body', {}, 'direct new->old')));
  await amy.xmpp.send(xml('message', { to: 'bea@localhost/r', type: 'chat' }, xml('body', {}, 'direct old->new')));
  await sleep(3000);
  const bodies = (c, p) => c.received.filter((el) => el.is('message') && el.getChildText('body')?.startsWith(p)).map((el) => el.getChildText('body'));
  const report = { alice_new: bodies(alice, 'n'), amy_new: bodies(amy, 'n'), bob_old: bodies(bob, 'o'), bea_old: bodies(bea, 'o'), amy_direct: bodies(amy, 'direct'), bea_direct: bodies(bea, 'direct') };
  console.log(JSON.stringify(report));
  const n = [0, 1, 2, 3, 4].map((i) => `n${i}`).join(), o = [0, 1, 2, 3, 4].map((i) => `o${i}`).join();
  // Both versions' writes are searchable: every archived body has its words (a node of the version
  // before leaves tsv to the schema the newer one migrated).
  const db = new pg.Client({ connectionString: url }); await db.connect();
  const [words] = (await db.query('SELECT count(*)::int AS rows, (count(*) FILTER (WHERE body IS NOT NULL AND tsv IS NULL))::int AS missing FROM archive')).rows;
  // And each row has its archive's key (migration 16), whichever node wrote it (the version before
  // leaves it to the trigger); none where the schema has no keys.
  const keyed = (await db.query(`SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('archive') AND attname = 'akey'`)).rows.length > 0;
  const [keys] = keyed
    ? (await db.query('SELECT count(*)::int AS missing FROM archive a LEFT JOIN archive_keys k ON k.key = a.akey WHERE k.archive IS DISTINCT FROM a.archive')).rows
    : [{ missing: 0 }];
  await db.end();
  console.log(`archive: ${words.rows} rows, ${words.missing} bodies without their words, ${keys.missing} rows without their archive's key`);
  ok = report.alice_new.join() === n && report.amy_new.join() === n && report.bob_old.join() === o && report.bea_old.join() === o &&
    report.amy_direct.length === 1 && report.bea_direct.length === 1 && words.rows > 0 && words.missing === 0 && keys.missing === 0;
} finally {
  await Promise.all(clients.map((c) => c.stop()));
  await oldNode.stop(); await newNode.stop();
  const a = new pg.Client({ connectionString: PG_ADMIN }); await a.connect(); await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`); await a.end();
}
console.log(ok ? 'MIXED OK' : 'MIXED FAILED');
process.exit(ok ? 0 : 1);
