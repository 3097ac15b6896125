// The upload store (slots, quotas, the stored state with its compliance event in one transaction,
// the expiry job's queries) and the directory blob store, on PGlite and on PostgreSQL.
import { expect } from 'chai';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { sqlBackends } from './services.js';
import { migrate } from '../storage/migrations.js';
import { createSqlStores } from '../storage/sql-stores.js';
import { BlobSizeError, createFsBlobStore } from '../storage/blobs-fs.js';
import type { ComplianceEvent, DataStores, Db, NewUpload } from '../storage/types.js';
import { runUploadExpiry } from '../src/upload/expiry.js';

const backends = sqlBackends;

let n = 0;
function slot(extra: Partial<NewUpload> = {}): NewUpload {
  n++;
  return {
    id: `file${String(n).padStart(6, '0')}x`, token: `tok${n}`, putToken: `put${n}`, owner: 'ann@localhost', room: null,
    name: `f${n}.txt`, contentType: 'text/plain', size: 100, expiresAt: new Date(Date.now() + 60_000), ...extra,
  };
}

const uploadEvent = (id: string): ComplianceEvent => ({
  kind: 'upload', stamp: new Date(), room: 'r@conference.localhost', actor: 'ann@localhost', nick: null, content: `${id}.txt`, messageId: null, detail: { size: 100 },
});

describe('upload store', function () {
  for (const backend of backends) {
    describe(backend.name, function () {
      let s: DataStores;
      let dispose: (() => Promise<void>) | null = null;
      before(async function () {
        try {
          const o = await backend.open();
          dispose = o.dispose;
          await migrate(o.db);
          s = createSqlStores(o.db);
        } catch (e) {
          if ((e as { skip?: boolean }).skip) { console.warn(`    ${(e as Error).message}: skipping`); this.skip(); }
          throw e;
        }
      });
      after(async () => { await dispose?.(); });
      beforeEach(async () => { await s.db.query('TRUNCATE upload_files, compliance_events, archive'); });

      it('reserves slots within the user and service quotas, counting stored files and live slots', async () => {
        const quotas = { user: 250, service: 400 };
        expect(await s.uploads.reserve(slot(), quotas)).to.deep.equal({ ok: true });
        expect(await s.uploads.reserve(slot(), quotas)).to.deep.equal({ ok: true });
        const full = await s.uploads.reserve(slot(), quotas);
        expect(full.ok).to.equal(false);
        if (!full.ok) {
          expect(full.quota).to.equal('user');
          expect(full.used).to.equal(200);
          expect(full.retryAt).to.be.instanceOf(Date);
        }
        expect((await s.uploads.reserve(slot({ owner: 'bob@localhost' }), quotas)).ok).to.equal(true);
        const service = await s.uploads.reserve(slot({ owner: 'cy@localhost', size: 150 }), quotas);
        expect(service.ok ? null : service.quota).to.equal('service');
        // A lapsed slot no longer counts.
        expect((await s.uploads.reserve(slot({ owner: 'dee@localhost', expiresAt: new Date(Date.now() - 1000) }), { user: null, service: null })).ok).to.equal(true);
        expect((await s.uploads.reserve(slot({ owner: 'cy@localhost' }), quotas)).ok).to.equal(true);
        expect((await s.uploads.reserve(slot({ owner: 'x@localhost', size: 10 ** 12 }), { user: null, service: null })).ok).to.equal(true);
      });

      it('marks a slot stored once, with its compliance event in the same transaction', async () => {
        const f = slot({ room: 'r@conference.localhost' });
        await s.uploads.reserve(f, { user: null, service: null });
        expect((await s.uploads.get(f.id))!.state).to.equal('pending');
        expect(await s.uploads.markStored(f.id, [uploadEvent(f.id)])).to.equal(true);
        expect(await s.uploads.markStored(f.id, [uploadEvent(f.id)])).to.equal(false);
        const row = (await s.uploads.get(f.id))!;
        expect(row.state).to.equal('stored');
        expect(row.storedAt).to.be.instanceOf(Date);
        expect(await s.compliance.count()).to.equal(1);
        const [ev] = await s.compliance.read(0, Number.MAX_SAFE_INTEGER, 10);
        expect(ev).to.include({ kind: 'upload', content: `${f.id}.txt`, actor: 'ann@localhost', room: 'r@conference.localhost' });
      });

      it('leaves the slot pending when the compliance write fails', async () => {
        const f = slot();
        await s.uploads.reserve(f, { user: null, service: null });
        const bad = { ...uploadEvent(f.id), kind: null as unknown as 'upload' }; // violates NOT NULL
        let failed = false;
        try { await s.uploads.markStored(f.id, [bad]); } catch { failed = true; }
        expect(failed).to.equal(true);
        expect((await s.uploads.get(f.id))!.state).to.equal('pending');
        expect(await s.compliance.count()).to.equal(0);
      });

      it('lists, sums and deletes', async () => {
        const a = slot({ owner: 'ann@localhost', room: 'r@conference.localhost' });
        const b = slot({ owner: 'bob@localhost', size: 300 });
        for (const f of [a, b]) await s.uploads.reserve(f, { user: null, service: null });
        await s.uploads.markStored(b.id, []);
        expect((await s.uploads.list({ room: 'r@conference.localhost' }, 10)).map((f) => f.id)).to.deep.equal([a.id]);
        expect((await s.uploads.list({ state: 'stored' }, 10)).map((f) => f.id)).to.deep.equal([b.id]);
        expect(await s.uploads.totals()).to.deep.equal({ files: 1, bytes: 300, pending: 1 });
        expect(await s.uploads.usage(10)).to.deep.equal([
          { owner: 'bob@localhost', files: 1, bytes: 300, pending: 0 },
          { owner: 'ann@localhost', files: 0, bytes: 0, pending: 1 },
        ]);
        expect((await s.uploads.delete(a.id))!.id).to.equal(a.id);
        expect(await s.uploads.delete(a.id)).to.equal(null);
      });

      it('finds expiry candidates and looks for their ids in an archive', async () => {
        const old = slot({ room: 'r@conference.localhost' });
        const lapsed = slot({ expiresAt: new Date(Date.now() - 5000) });
        for (const f of [old, lapsed]) await s.uploads.reserve(f, { user: null, service: null });
        await s.uploads.markStored(old.id, []);
        expect((await s.uploads.lapsed(new Date(), 10)).map((f) => f.id)).to.deep.equal([lapsed.id]);
        expect(await s.uploads.unreferenced(new Date(Date.now() - 60_000), 10)).to.deep.equal([]);
        expect((await s.uploads.unreferenced(new Date(Date.now() + 1000), 10)).map((f) => f.id)).to.deep.equal([old.id]);
        expect(await s.uploads.mentionedIn('r@conference.localhost', old.id)).to.equal(false);
        await s.archive.append([{
          archive: 'r@conference.localhost', stanzaId: 's1', stamp: new Date(), fromJid: 'r@conference.localhost/ann', realJid: 'ann@localhost',
          body: `https://h/upload/${old.id}/t/f`, stanza: `<message><body>https://h/upload/${old.id}/t/f</body></message>`,
        }]);
        expect(await s.uploads.mentionedIn('r@conference.localhost', old.id)).to.equal(true);
        expect(await s.uploads.mentionedIn('other@conference.localhost', old.id)).to.equal(false);
        expect(await s.uploads.mentionedIn('r@conference.localhost', '%')).to.equal(false);
        await s.uploads.markReferenced([old.id]);
        expect(await s.uploads.unreferenced(new Date(Date.now() + 1000), 10)).to.deep.equal([]);
      });

      it('expiry deletes lapsed slots and unreferenced files with their bytes, and keeps referenced ones', async () => {
        const dir = await mkdtemp(path.join(tmpdir(), 'perch-blobs-'));
        try {
          const blobs = createFsBlobStore(dir);
          const kept = slot({ room: 'r@conference.localhost' });
          const gone = slot({ room: 'r@conference.localhost' });
          const personal = slot({ owner: 'ann@localhost' });
          const lapsed = slot({ expiresAt: new Date(Date.now() - 1000) });
          for (const f of [kept, gone, personal, lapsed]) {
            await s.uploads.reserve(f, { user: null, service: null });
            await blobs.put(f.id, Readable.from([Buffer.alloc(100, 1)]), 100);
          }
          for (const f of [kept, gone, personal]) await s.uploads.markStored(f.id, []);
          await s.archive.append([
            { archive: 'r@conference.localhost', stanzaId: 'a', stamp: new Date(), fromJid: 'r@conference.localhost/ann', realJid: null, body: kept.id, stanza: `<message><body>${kept.id}</body></message>` },
            { archive: 'ann@localhost', stanzaId: 'b', stamp: new Date(), fromJid: 'ann@localhost', realJid: null, body: personal.id, stanza: `<message><body>${personal.id}</body></message>` },
          ]);
          const r = await runUploadExpiry(s, blobs, { expireUnreferencedDays: 0.00001 }, new Date(Date.now() + 5000));
          expect(r).to.deep.equal({ lapsed: 1, deleted: [gone.id], referenced: 2 });
          expect(await s.uploads.get(gone.id)).to.equal(null);
          expect(await blobs.stat(gone.id)).to.equal(null);
          expect(await blobs.stat(lapsed.id)).to.equal(null);
          expect((await s.uploads.get(kept.id))!.referenced).to.equal(true);
          expect(await blobs.stat(kept.id)).to.deep.equal({ size: 100 });
        } finally {
          await rm(dir, { recursive: true, force: true });
        }
      });
    });
  }
});

describe('directory blob store', () => {
  let dir: string;
  beforeEach(async () => { dir = await mkdtemp(path.join(tmpdir(), 'perch-blobs-')); });
  afterEach(async () => { await rm(dir, { recursive: true, force: true }); });

  it('stores a body under its key, serves ranges and deletes', async () => {
    const blobs = createFsBlobStore(dir);
    const data = Buffer.from('0123456789');
    await blobs.put('abcdefgh12', Readable.from([data.subarray(0, 4), data.subarray(4)]), 10);
    expect(await blobs.stat('abcdefgh12')).to.deep.equal({ size: 10 });
    const read = async (range?: { start: number; end: number }) => {
      const chunks: Buffer[] = [];
      for await (const c of (await blobs.get('abcdefgh12', range))!) chunks.push(c as Buffer);
      return Buffer.concat(chunks).toString();
    };
    expect(await read()).to.equal('0123456789');
    expect(await read({ start: 2, end: 4 })).to.equal('234');
    expect(await readFile(path.join(dir, 'ab', 'abcdefgh12'), 'utf8')).to.equal('0123456789');
    expect(await blobs.delete('abcdefgh12')).to.equal(true);
    expect(await blobs.delete('abcdefgh12')).to.equal(false);
    expect(await blobs.get('abcdefgh12')).to.equal(null);
  });

  it('keeps nothing of a body that is short, long or fails', async () => {
    const blobs = createFsBlobStore(dir);
    const short = await blobs.put('shortbody1', Readable.from([Buffer.alloc(5)]), 10).catch((e: unknown) => e);
    expect(short).to.be.instanceOf(BlobSizeError);
    const long = await blobs.put('longbody12', Readable.from([Buffer.alloc(11)]), 10).catch((e: unknown) => e);
    expect((long as BlobSizeError).tooLong).to.equal(true);
    const broken = new Readable({ read() { this.push(Buffer.alloc(3)); this.destroy(new Error('connection reset')); } });
    expect(await blobs.put('brokenbody', broken, 10).catch((e: Error) => e.message)).to.equal('connection reset');
    for (const k of ['shortbody1', 'longbody12', 'brokenbody']) expect(await blobs.stat(k)).to.equal(null);
    expect(await readdir(path.join(dir, 'tmp'))).to.deep.equal([]);
    // Keys are never paths.
    expect(await blobs.put('../../etc/x', Readable.from([Buffer.alloc(1)]), 1).catch((e: Error) => e.message)).to.match(/invalid blob key/);
  });
});
