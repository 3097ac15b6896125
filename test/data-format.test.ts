// The export format's line checks and an export/import round on in-memory stores: what a bad file is
// refused with (its line number) and that nothing of it is applied.
import { expect } from 'chai';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync, gunzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';
import { FormatError, parseHeader, parseLine, sniff } from '../src/data/format.js';
import { exportData } from '../src/data/export.js';
import { importData } from '../src/data/import.js';
import { credentialsFor } from '../src/accounts.js';
import { openDataStores } from '../storage/open.js';
import type { DataStores } from '../storage/types.js';

const SERVICE = 'conference.localhost';

function formatError(fn: () => unknown): FormatError {
  try {
    fn();
  } catch (e) {
    expect(e).to.be.instanceOf(FormatError);
    return e as FormatError;
  }
  throw new Error('no FormatError');
}

async function rejection(p: Promise<unknown>): Promise<FormatError> {
  try {
    await p;
  } catch (e) {
    expect(e).to.be.instanceOf(FormatError);
    return e as FormatError;
  }
  throw new Error('no FormatError');
}

describe('export format', function () {
  this.timeout(60000);

  it('reads a header of this format and version only', () => {
    const h = { format: 'perch-export', version: 1, created: '2026-01-01T00:00:00.000Z', domain: 'localhost', level: 'all', scope: [], since: null };
    expect(parseHeader(JSON.stringify(h)).domain).to.equal('localhost');
    expect(parseHeader(JSON.stringify({ ...h, version: 2 })).version).to.equal(2);
    expect(formatError(() => parseHeader(JSON.stringify({ ...h, version: 3 }))).message).to.match(/line 1: format version 3; this server reads versions 1 and 2/);
    expect(formatError(() => parseHeader('{"format":"other"}')).message).to.match(/not a perch-export file/);
    expect(formatError(() => parseHeader(JSON.stringify({ ...h, level: 'everything' }))).reason).to.match(/level/);
  });

  it('checks each record\'s fields and names the line', () => {
    expect(parseLine('{"type":"org-unit","path":"/a","description":""}', 3)).to.deep.equal({ type: 'org-unit', path: '/a', description: '' });
    expect(formatError(() => parseLine('{"type":"org-unit","path":"/a"', 7)).message).to.match(/^line 7: not JSON/);
    expect(formatError(() => parseLine('{"type":"planet"}', 8)).message).to.equal('line 8: unknown record type "planet"');
    expect(formatError(() => parseLine('{"type":"org-unit","description":""}', 9)).message).to.equal('line 9: org-unit: missing field path');
    expect(formatError(() => parseLine('{"type":"policy","scope":"galaxy","subject":"","enabled":true}', 4)).reason).to.match(/field scope/);
    expect(formatError(() => parseLine('{"type":"end","counts":{"user":"x"}}', 5)).reason).to.match(/trailer/);
  });

  it('reads a category written before the editing policy as allowing edits', () => {
    const old = { type: 'category', service: 's', name: 'n', description: '', allowed: [], denied: [], creators: [], invitations: false, fileUpload: false, chatHistory: true };
    expect(parseLine(JSON.stringify(old), 2)).to.deep.equal({ ...old, editing: true });
    expect(parseLine(JSON.stringify({ ...old, editing: false }), 2)).to.deep.equal({ ...old, editing: false });
    expect(formatError(() => parseLine(JSON.stringify({ ...old, editing: 'no' }), 3)).reason).to.match(/field editing/);
  });

  describe('on stores', () => {
    let dir: string;
    let a: DataStores;
    let b: DataStores;
    before(async () => {
      dir = await mkdtemp(path.join(tmpdir(), 'perch-format-'));
      a = await openDataStores({ databaseUrl: null, dataDir: null });
      b = await openDataStores({ databaseUrl: null, dataDir: null });
      await a.users.create('alice', await credentialsFor('pw', 4096));
      await a.userData.put('alice', 'vcard', '', '<vCard xmlns="vcard-temp"><FN>Alice</FN></vCard>');
      await a.directory.putOrgUnit('/corp', 'Corp');
      await a.directory.setUserOrgUnit('alice@localhost', '/corp');
      await a.chat.putCategory({ service: SERVICE, name: 'Finance', description: '', allowed: ['domain:localhost'], denied: [], creators: [], invitations: false, fileUpload: true, chatHistory: true, editing: true });
      await a.chat.putRoom({
        service: SERVICE, room: 'desk', category: 'Finance', name: 'Desk', description: '', privacy: 'closed', type: 'auditorium',
        invitations: 'inherit', disabled: false, addin: null, members: ['alice@localhost'], managers: [], presenters: [], createdAt: new Date('2026-01-02T00:00:00.000Z'),
      });
      await a.archive.append([1, 2, 3].map((n) => ({
        archive: `desk@${SERVICE}`, stanzaId: `s${n}`, stamp: new Date(Date.UTC(2026, 0, n)), fromJid: `desk@${SERVICE}/alice`,
        realJid: 'alice@localhost', body: `hello ${n}`, stanza: `<message><body>hello ${n}</body></message>`,
      })));
    });
    after(async () => {
      await a?.db.close();
      await b?.db.close();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    const exported = (name: string, opts: Partial<Parameters<typeof exportData>[1]> = {}) => exportData(a, {
      file: path.join(dir, name), level: 'all', scope: [], since: null, domain: 'localhost', services: [SERVICE], ...opts,
    });
    const lines = (name: string) => gunzipSync(readFileSync(path.join(dir, name))).toString('utf8').trim().split('\n');
    const broken = async (name: string, edit: (ls: string[]) => string[]) => {
      await writeFile(path.join(dir, name), gzipSync(edit(lines('all.jsonl.gz')).join('\n') + '\n'));
      return path.join(dir, name);
    };
    const imported = (file: string, dryRun = false) => importData(b, { file, dryRun, services: [SERVICE] });

    it('writes a gzip whose first line is the header and last the trailer with the counts', async () => {
      const r = await exported('all.jsonl.gz');
      expect(await sniff(r.file)).to.equal('gzip');
      const ls = lines('all.jsonl.gz');
      expect(JSON.parse(ls[0]!)).to.include({ format: 'perch-export', version: 2, level: 'all', domain: 'localhost' });
      expect(JSON.parse(ls[ls.length - 1]!)).to.deep.equal({ type: 'end', counts: r.counts });
      expect(r.counts).to.include({ user: 1, 'user-data': 1, 'org-unit': 1, 'user-org-unit': 1, category: 1, 'chat-room': 1, message: 3 });
      expect(ls.some((l) => l.includes('"pw"'))).to.equal(false);
    });

    it('selects messages since a date and the categories in scope', async () => {
      const since = await exported('since.jsonl.gz', { level: 'content', since: new Date(Date.UTC(2026, 0, 2)) });
      expect(since.counts).to.deep.equal({ message: 2 });
      const none = await exported('scope.jsonl.gz', { level: 'rooms', scope: ['Other'] });
      expect(none.counts).to.deep.equal({});
      const fin = await exported('scope2.jsonl.gz', { level: 'rooms', scope: ['finance'] });
      expect(fin.counts).to.deep.equal({ 'chat-room': 1 });
    });

    it('refuses a bad line, a wrong order, a wrong count and a cut file with the line, changing nothing', async () => {
      const cases: [string, (ls: string[]) => string[], RegExp][] = [
        ['bad-json.gz', (ls) => { ls[3] = '{"type":'; return ls; }, /^line 4: not JSON/],
        ['order.gz', (ls) => { const i = ls.findIndex((l) => l.includes('"type":"org-unit"')); return [...ls.slice(0, 1), ls[i]!, ...ls.slice(1, i), ...ls.slice(i + 1)]; }, /^line 3: user record after org-unit/],
        ['count.gz', (ls) => ls.filter((l) => !l.includes('"type":"message"') || !l.includes('"s2"')), /trailer counts 3 message records, the file holds 2/],
        ['cut.gz', (ls) => ls.slice(0, -1), /ends without its trailer/],
      ];
      for (const [name, edit, why] of cases) {
        const e = await rejection(imported(await broken(name, edit)));
        expect(e.message, name).to.match(why);
      }
      await writeFile(path.join(dir, 'garbage.gz'), Buffer.concat([gzipSync('{"format":"perch-export"'), Buffer.from('junk')]));
      await rejection(imported(path.join(dir, 'garbage.gz')));
      expect(await b.users.list()).to.deep.equal([]);
      expect(await b.chat.categories(SERVICE)).to.deep.equal([]);
    });

    it('dry run reports without writing; the import creates, a second one finds all unchanged', async () => {
      const file = path.join(dir, 'all.jsonl.gz');
      const dry = await imported(file, true);
      expect(dry.report.user).to.deep.equal({ created: 1, overwritten: 0, unchanged: 0, skipped: 0 });
      expect(dry.report.message).to.deep.equal({ created: 3, overwritten: 0, unchanged: 0, skipped: 0 });
      expect(await b.users.list()).to.deep.equal([]);
      const done = await imported(file);
      expect(done.report['chat-room']).to.deep.equal({ created: 1, overwritten: 0, unchanged: 0, skipped: 0 });
      expect((await b.chat.room(SERVICE, 'desk'))?.type).to.equal('auditorium');
      expect((await b.archive.query(`desk@${SERVICE}`, { limit: 10 })).entries.map((m) => m.body)).to.deep.equal(['hello 1', 'hello 2', 'hello 3']);
      const again = await imported(file);
      for (const [kind, r] of Object.entries(again.report)) expect(r, kind).to.include({ created: 0, overwritten: 0 });
      expect((await b.archive.query(`desk@${SERVICE}`, { limit: 0 })).count).to.equal(3);
    });

    it('carries an account that has SCRAM-SHA-1 keys only (imported from XEP-0227) as it is', async () => {
      const c = await credentialsFor('old', 4096);
      await a.users.create('sha1only', { sha1: c.sha1, sha256: null });
      try {
        await exported('sha1.jsonl.gz', { level: 'users' });
        expect(lines('sha1.jsonl.gz').find((l) => l.includes('"sha1only"'))).to.include('"sha256":null');
        await importData(b, { file: path.join(dir, 'sha1.jsonl.gz'), dryRun: false, services: [SERVICE] });
        const got = (await b.users.get('sha1only'))!;
        expect(got.credentials.sha256).to.equal(null);
        expect(got.credentials.sha1.storedKey.equals(c.sha1.storedKey)).to.equal(true);
      } finally {
        await a.users.delete('sha1only');
        await b.users.delete('sha1only');
      }
    });

    it('puts a room into its category as stored here, whatever the case in the file', async () => {
      const cat = (await b.chat.categories(SERVICE))[0]!;
      await b.chat.putCategory({ ...cat, name: 'FINANCE' }, cat.name);
      const r = await imported(path.join(dir, 'scope2.jsonl.gz'));
      expect(r.report['chat-room']).to.deep.equal({ created: 0, overwritten: 0, unchanged: 1, skipped: 0 });
      await b.chat.deleteRoom(SERVICE, 'desk');
      const again = await imported(path.join(dir, 'scope2.jsonl.gz'));
      expect(again.report['chat-room']).to.deep.include({ created: 1 });
      expect((await b.chat.room(SERVICE, 'desk'))?.category).to.equal('FINANCE');
    });

    it('skips a room whose display name another room has here, and a dry run says so too', async () => {
      const desk = (await b.chat.room(SERVICE, 'desk'))!;
      await b.chat.deleteRoom(SERVICE, 'desk');
      await b.chat.putRoom({ ...desk, room: 'other' });
      for (const dryRun of [true, false]) {
        const r = await imported(path.join(dir, 'scope2.jsonl.gz'), dryRun);
        expect(r.report['chat-room'], `dry run ${dryRun}`).to.deep.equal({ created: 0, overwritten: 0, unchanged: 0, skipped: 1 });
        expect(r.skippedReasons).to.deep.equal(['line 2: chat-room: the name Desk is already used by a room']);
      }
      expect(await b.chat.room(SERVICE, 'desk')).to.equal(null);
    });
  });
});
