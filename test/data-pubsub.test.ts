// The pubsub tables through the export format, on PGlite and on PostgreSQL: PEP nodes travel with
// level users and the pubsub service's nodes with level pubsub, each node followed by its
// affiliations, subscriptions and items in publish order; an import creates them, a second one finds
// them unchanged, a bad pubsub record is refused with its line and nothing changes, and a version-1
// file (before these kinds) still imports.
import { expect } from 'chai';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { sqlBackends } from './services.js';
import { migrate } from '../storage/migrations.js';
import { createSqlStores } from '../storage/sql-stores.js';
import { createPubsubStore, type PubsubStore } from '../storage/sql-pubsub.js';
import { createPubsubTransfer } from '../storage/sql-transfer.js';
import type { DataStores, Db } from '../storage/types.js';
import { credentialsFor } from '../src/accounts.js';
import { exportData } from '../src/data/export.js';
import { importData } from '../src/data/import.js';
import { FormatError } from '../src/data/format.js';

const SERVICE = 'conference.localhost';
const ALICE = 'alice@localhost';
const PUBSUB = 'pubsub.localhost';
const BOOKMARKS = 'urn:xmpp:bookmarks:1';
const bookmark = (room: string) => `<conference xmlns="${BOOKMARKS}" autojoin="true" name="${room}"><nick>alice</nick></conference>`;

const backends = sqlBackends;

async function rejection(p: Promise<unknown>): Promise<FormatError> {
  try { await p; } catch (e) { expect(e).to.be.instanceOf(FormatError); return e as FormatError; }
  throw new Error('no FormatError');
}

describe('export format: pubsub nodes, items, subscriptions, affiliations', function () {
  this.timeout(60000);
  for (const backend of backends) {
    describe(backend.name, function () {
      let dir: string;
      const opened: { dispose(): Promise<void> }[] = [];
      let a: DataStores;
      let b: DataStores;
      let pa: PubsubStore;
      before(async function () {
        dir = await mkdtemp(path.join(tmpdir(), 'perch-pubsub-export-'));
        const open = async () => {
          const o = await backend.open();
          opened.push(o);
          await migrate(o.db);
          return createSqlStores(o.db);
        };
        try {
          a = await open();
          b = await open();
        } catch (e) {
          if ((e as { skip?: boolean }).skip) { this.skip(); return; }
          throw e;
        }
        pa = createPubsubStore(a.db);
        await a.users.create('alice', await credentialsFor('pw', 4096));
        await pa.createNode({ service: ALICE, node: BOOKMARKS, owner: ALICE, config: { 'pubsub#access_model': 'whitelist', 'pubsub#max_items': 'max' } });
        // Published in this order; 'r1' republished last, so it moves to the end.
        for (const id of ['r1@conference.localhost', 'r2@conference.localhost', 'r3@conference.localhost']) {
          await pa.publish(ALICE, BOOKMARKS, { id, publisher: ALICE, payload: bookmark(id) }, null);
        }
        await pa.publish(ALICE, BOOKMARKS, { id: 'r1@conference.localhost', publisher: ALICE, payload: bookmark('again') }, null);
        await pa.createNode({ service: PUBSUB, node: 'news', owner: 'admin@localhost', config: { 'pubsub#title': 'News', 'pubsub#max_items': '20' } });
        await pa.setAffiliation(PUBSUB, 'news', 'admin@localhost', 'owner');
        await pa.setAffiliation(PUBSUB, 'news', 'bob@localhost', 'publisher');
        await pa.setSubscription(PUBSUB, 'news', 'carol@localhost', 'subscribed');
        await pa.publish(PUBSUB, 'news', { id: 'n1', publisher: 'bob@localhost', payload: '<entry xmlns="http://www.w3.org/2005/Atom"><title>One</title></entry>' }, 20);
      });
      after(async () => {
        for (const o of opened.splice(0)) await o.dispose();
        if (dir) await rm(dir, { recursive: true, force: true });
      });

      const exported = (name: string, level: 'all' | 'users' | 'pubsub' | 'content') => exportData(a, {
        file: path.join(dir, name), level, scope: [], since: null, domain: 'localhost', services: [SERVICE],
      });
      const lines = (name: string) => gunzipSync(readFileSync(path.join(dir, name))).toString('utf8').trim().split('\n');
      const types = (name: string) => lines(name).slice(1, -1).map((l) => JSON.parse(l) as { type: string; service?: string; id?: string });
      const imported = (file: string, dryRun = false) => importData(b, { file, dryRun, services: [SERVICE] });

      it('writes PEP nodes with level users, the service\'s with level pubsub, each node before its records, items in publish order', async () => {
        const all = await exported('all.jsonl.gz', 'all');
        expect(all.counts).to.include({ 'pubsub-node': 2, 'pubsub-affiliation': 2, 'pubsub-subscription': 1, 'pubsub-item': 4 });
        const recs = types('all.jsonl.gz').filter((r) => r.type.startsWith('pubsub-'));
        expect(recs.map((r) => `${r.type} ${r.service}`)).to.deep.equal([
          `pubsub-node ${ALICE}`, ...Array(3).fill(`pubsub-item ${ALICE}`),
          `pubsub-node ${PUBSUB}`, `pubsub-affiliation ${PUBSUB}`, `pubsub-affiliation ${PUBSUB}`, `pubsub-subscription ${PUBSUB}`, `pubsub-item ${PUBSUB}`,
        ]);
        expect(recs.filter((r) => r.service === ALICE && r.type === 'pubsub-item').map((r) => r.id))
          .to.deep.equal(['r2@conference.localhost', 'r3@conference.localhost', 'r1@conference.localhost']);

        const users = await exported('users.jsonl.gz', 'users');
        expect(users.counts).to.include({ user: 1, 'pubsub-node': 1, 'pubsub-item': 3 });
        expect(types('users.jsonl.gz').some((r) => r.service === PUBSUB)).to.equal(false);
        const service = await exported('pubsub.jsonl.gz', 'pubsub');
        expect(service.counts).to.deep.equal({ 'pubsub-node': 1, 'pubsub-affiliation': 2, 'pubsub-subscription': 1, 'pubsub-item': 1 });
        const content = await exported('content.jsonl.gz', 'content');
        expect(content.counts).to.not.have.property('pubsub-node');
      });

      it('refuses a bad pubsub record, an item of a node that exists nowhere and a PEP node of an unknown account, changing nothing', async () => {
        const edit = async (name: string, f: (ls: string[]) => string[]) => {
          await writeFile(path.join(dir, name), gzipSync(f(lines('all.jsonl.gz')).join('\n') + '\n'));
          return path.join(dir, name);
        };
        const at = (ls: string[], s: string) => ls.findIndex((l) => l.includes(s));
        const bad = await edit('bad.gz', (ls) => { const i = at(ls, '"type":"pubsub-affiliation"'); ls[i] = ls[i]!.replace('"affiliation":"owner"', '"affiliation":"boss"'); return ls; });
        expect((await rejection(imported(bad))).message).to.match(/^line \d+: pubsub-affiliation: field affiliation has a wrong value: "boss"/);
        const orphan = await edit('orphan.gz', (ls) => ls.filter((l) => !l.includes(`"type":"pubsub-node","service":"${PUBSUB}"`)).map((l) => l.replace('"pubsub-node":2', '"pubsub-node":1')));
        expect((await rejection(imported(orphan))).message).to.match(/pubsub node news of pubsub\.localhost is neither in the file nor on this server/);
        const nouser = await edit('nouser.gz', (ls) => ls.filter((l) => !l.includes('"type":"user"')).map((l) => l.replace('"user":1,', '')));
        expect((await rejection(imported(nouser))).message).to.match(/user alice is neither in the file nor on this server/);
        const order = await edit('order.gz', (ls) => { const i = at(ls, '"type":"pubsub-item"'); const n = at(ls, '"type":"pubsub-node"'); [ls[i], ls[n]] = [ls[n]!, ls[i]!]; return ls; });
        await rejection(imported(order));
        expect(await createPubsubTransfer(b.db).nodes(null, 10)).to.deep.equal([]);
      });

      it('a dry run writes nothing; the import recreates everything with its order and stamps; a second import changes nothing', async () => {
        const file = path.join(dir, 'all.jsonl.gz');
        const dry = await imported(file, true);
        expect(dry.report['pubsub-item']).to.deep.equal({ created: 4, overwritten: 0, unchanged: 0, skipped: 0 });
        expect(await createPubsubTransfer(b.db).nodes(null, 10)).to.deep.equal([]);

        const done = await imported(file);
        expect(done.report['pubsub-node']).to.deep.equal({ created: 2, overwritten: 0, unchanged: 0, skipped: 0 });
        const pb = createPubsubStore(b.db);
        const ta = createPubsubTransfer(a.db);
        const tb = createPubsubTransfer(b.db);
        expect(await tb.nodes(null, 10)).to.deep.equal(await ta.nodes(null, 10));
        expect(await pb.items(ALICE, BOOKMARKS)).to.deep.equal(await pa.items(ALICE, BOOKMARKS));
        expect((await pb.items(ALICE, BOOKMARKS)).map((i) => i.id)).to.deep.equal(['r2@conference.localhost', 'r3@conference.localhost', 'r1@conference.localhost']);
        expect(await pb.affiliations(PUBSUB, 'news')).to.deep.equal(await pa.affiliations(PUBSUB, 'news'));
        expect(await pb.subscriptions(PUBSUB, 'news')).to.deep.equal([{ jid: 'carol@localhost', state: 'subscribed' }]);

        const again = await imported(file);
        for (const [kind, r] of Object.entries(again.report)) expect(r, kind).to.include({ created: 0, overwritten: 0 });
        expect(await pb.items(ALICE, BOOKMARKS)).to.have.length(3);

        // A changed item is overwritten in place; one added since is kept.
        await pb.publish(ALICE, BOOKMARKS, { id: 'r3@conference.localhost', publisher: ALICE, payload: bookmark('changed') }, null);
        await pb.publish(ALICE, BOOKMARKS, { id: 'local@conference.localhost', publisher: ALICE, payload: bookmark('local') }, null);
        const third = await imported(file);
        expect(third.report['pubsub-item']).to.deep.equal({ created: 0, overwritten: 1, unchanged: 3, skipped: 0 });
        const items = await pb.items(ALICE, BOOKMARKS);
        expect(items.map((i) => i.id)).to.deep.equal(['r2@conference.localhost', 'r1@conference.localhost', 'r3@conference.localhost', 'local@conference.localhost']);
        expect(items.find((i) => i.id === 'r3@conference.localhost')!.payload).to.equal(bookmark('r3@conference.localhost'));
      });

      it('still imports a version-1 file', async () => {
        const v1 = lines('users.jsonl.gz').filter((l) => !l.includes('"type":"pubsub-'));
        const header = JSON.parse(v1[0]!) as Record<string, unknown>;
        v1[0] = JSON.stringify({ ...header, version: 1 });
        v1[v1.length - 1] = JSON.stringify({ type: 'end', counts: { user: 1 } });
        await writeFile(path.join(dir, 'v1.jsonl'), v1.join('\n') + '\n');
        const r = await imported(path.join(dir, 'v1.jsonl'));
        expect(r.header.version).to.equal(1);
        expect(r.report.user).to.deep.equal({ created: 0, overwritten: 0, unchanged: 1, skipped: 0 });
      });
    });
  }
});
