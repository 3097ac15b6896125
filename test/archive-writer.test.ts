// The archive writer's lanes (src/archive-writer.ts): several batches in flight for disjoint archives,
// an archive's entries committed and settled in order and never by two statements at once, a
// one-to-one message's two copies in one statement, flushed() over every lane; and on real PostgreSQL,
// one slow commit holds only its own room.
import { expect } from 'chai';
import pg from 'pg';
import { randomBytes } from 'node:crypto';
import { ArchiveWriter } from '../src/archive-writer.js';
import type { ArchiveEntry, ArchiveStore } from '../storage/types.js';
import { DATABASE_URL, probePostgres } from './services.js';
import { startRoomKit, createRoom, say, heard, roomJid, type RoomKit } from './muc/kit.js';

const entry = (archive: string, id: string): ArchiveEntry => ({
  archive, stanzaId: id, stamp: new Date(), fromJid: `${archive}/x`, realJid: null, body: id, stanza: `<message><body>${id}</body></message>`,
});

interface Statement { archives: string[]; ids: string[]; release(err?: Error): void }

/** A store whose statements wait to be released (or release themselves after a random delay), checking no archive is in two at once. */
class HeldStore {
  statements: Statement[] = [];
  committed: string[] = [];
  overlaps: string[] = [];
  private readonly busy = new Set<string>();
  constructor(private readonly autoMs: number | null = null) {}

  readonly store = {
    write: (entries: ArchiveEntry[]) => {
      const archives = [...new Set(entries.map((e) => e.archive))];
      for (const a of archives) {
        if (this.busy.has(a)) this.overlaps.push(a);
        this.busy.add(a);
      }
      return new Promise<void>((resolve, reject) => {
        const s: Statement = {
          archives, ids: entries.map((e) => e.stanzaId),
          release: (err) => {
            for (const a of archives) this.busy.delete(a);
            this.statements.splice(this.statements.indexOf(s), 1);
            if (err) return reject(err);
            this.committed.push(...s.ids);
            resolve();
          },
        };
        this.statements.push(s);
        if (this.autoMs !== null) setTimeout(() => s.release(), Math.random() * this.autoMs);
      });
    },
  } as unknown as ArchiveStore;

  /** The statement holding this entry id. */
  holding(id: string): Statement {
    const s = this.statements.find((x) => x.ids.includes(id));
    if (!s) throw new Error(`no statement holds ${id} (in flight: ${JSON.stringify(this.statements.map((x) => x.ids))})`);
    return s;
  }
}

const turn = () => new Promise((r) => setImmediate(r));
const turns = async (n = 3) => { for (let i = 0; i < n; i++) await turn(); };

describe('ArchiveWriter lanes', () => {
  it('one lane: one batch in flight for the whole server (the single writer)', async () => {
    const h = new HeldStore();
    const w = new ArchiveWriter(h.store, 500, { lanes: 1 });
    void w.append(entry('a@x', 'a1'));
    await turns();
    void w.append(entry('b@x', 'b1'));
    await turns();
    expect(h.statements.map((s) => s.ids)).to.deep.equal([['a1']]);
    h.holding('a1').release();
    await turns();
    expect(h.statements.map((s) => s.ids)).to.deep.equal([['b1']]);
    h.holding('b1').release();
    await w.flushed();
  });

  it('several lanes: disjoint archives have their batches in flight at once', async () => {
    const h = new HeldStore();
    const w = new ArchiveWriter(h.store, 500, { lanes: 4 });
    for (const a of ['a', 'b', 'c', 'd']) {
      void w.append(entry(`${a}@x`, `${a}1`));
      await turns();
    }
    expect(h.statements.map((s) => s.ids).sort()).to.deep.equal([['a1'], ['b1'], ['c1'], ['d1']]);
    for (const s of [...h.statements]) s.release();
    await w.flushed();
  });

  it('an archive with an entry in flight keeps its lane: the next waits, in order, though other lanes are idle', async () => {
    const h = new HeldStore();
    const w = new ArchiveWriter(h.store, 500, { lanes: 4 });
    const settled: string[] = [];
    void w.append(entry('a@x', 'a1')).then(() => settled.push('a1'));
    await turns();
    void w.append(entry('a@x', 'a2')).then(() => settled.push('a2'));
    void w.append(entry('a@x', 'a3')).then(() => settled.push('a3'));
    await turns();
    expect(h.statements.map((s) => s.ids)).to.deep.equal([['a1']]);
    h.holding('a1').release();
    await turns();
    expect(h.statements.map((s) => s.ids)).to.deep.equal([['a2', 'a3']]);
    h.holding('a2').release();
    await w.flushed();
    expect(settled).to.deep.equal(['a1', 'a2', 'a3']);
  });

  it('a one-to-one message whose two archives are in two lanes commits in one statement after both lanes\' earlier entries', async () => {
    const h = new HeldStore();
    const w = new ArchiveWriter(h.store, 500, { lanes: 4 });
    const settled: string[] = [];
    void w.append(entry('a@x', 'a1')).then(() => settled.push('a1'));
    await turns();
    void w.append(entry('b@x', 'b1')).then(() => settled.push('b1'));
    await turns();
    void w.append(entry('a@x', 'a2'), null, [entry('b@x', 'b2')]).then(() => settled.push('a2+b2'));
    void w.append(entry('b@x', 'b3')).then(() => settled.push('b3'));
    await turns();
    h.holding('a1').release();
    await turns();
    expect(h.statements.map((s) => s.ids), 'b2 waits for b1').to.deep.equal([['b1']]);
    h.holding('b1').release();
    await turns();
    // b moved to a's lane with the pair, so b3 follows it there, in the same batch.
    expect(h.statements.map((s) => s.ids), 'both copies in one statement, b3 behind them').to.deep.equal([['a2', 'b2', 'b3']]);
    h.holding('a2').release();
    await w.flushed();
    expect(settled).to.deep.equal(['a1', 'b1', 'a2+b2', 'b3']);
    expect(h.overlaps).to.deep.equal([]);
  });

  it('flushed() waits for every lane', async () => {
    const h = new HeldStore();
    const w = new ArchiveWriter(h.store, 500, { lanes: 3 });
    void w.append(entry('a@x', 'a1'));
    await turns();
    void w.append(entry('b@x', 'b1'));
    let flushed = false;
    const f = w.flushed().then(() => { flushed = true; });
    await turns();
    h.holding('b1').release();
    await turns();
    expect(flushed).to.equal(false);
    h.holding('a1').release();
    await f;
    expect(h.committed.sort()).to.deep.equal(['a1', 'b1']);
  });

  it('a refused entry fails alone in its lane; the rest of its batch commits', async () => {
    const h = new HeldStore(0);
    const store = {
      write: (entries: ArchiveEntry[]) => entries.some((e) => e.stanzaId === 'bad')
        ? Promise.reject(Object.assign(new Error('duplicate key'), { code: '23505' }))
        : h.store.write(entries),
    } as unknown as ArchiveStore;
    const w = new ArchiveWriter(store, 500, { lanes: 2 });
    const results = await Promise.allSettled([w.append(entry('a@x', 'ok1')), w.append(entry('a@x', 'bad')), w.append(entry('a@x', 'ok2'))]);
    expect(results.map((r) => r.status)).to.deep.equal(['fulfilled', 'rejected', 'fulfilled']);
    expect(h.committed).to.deep.equal(['ok1', 'ok2']);
  });

  it('under random load: each archive committed and settled in queue order, never in two statements at once', async () => {
    const h = new HeldStore(3);
    const w = new ArchiveWriter(h.store, 50, { lanes: 4 });
    const archives = Array.from({ length: 7 }, (_, i) => `u${i}@x`);
    const queued = new Map<string, string[]>(archives.map((a) => [a, []]));
    const settled = new Map<string, string[]>(archives.map((a) => [a, []]));
    const all: Promise<void>[] = [];
    for (let n = 0; n < 3000; n++) {
      const a = archives[Math.floor(Math.random() * archives.length)]!;
      const b = Math.random() < 0.6 ? archives[Math.floor(Math.random() * archives.length)]! : null;
      const pair = b !== null && b !== a ? [a, b] : [a];
      for (const x of pair) queued.get(x)!.push(`${x}#${n}`);
      all.push(w.append(entry(a, `${a}#${n}`), null, pair.length > 1 ? [entry(pair[1]!, `${pair[1]}#${n}`)] : null)
        .then(() => { for (const x of pair) settled.get(x)!.push(`${x}#${n}`); }));
      if (n % 40 === 0) await new Promise((r) => setTimeout(r, Math.random() * 3));
    }
    await w.flushed();
    await Promise.all(all);
    expect(h.overlaps, 'archives in two statements at once').to.deep.equal([]);
    for (const a of archives) {
      expect(h.committed.filter((id) => id.startsWith(`${a}#`)), `commit order of ${a}`).to.deep.equal(queued.get(a));
      expect(settled.get(a), `settle order of ${a}`).to.deep.equal(queued.get(a));
    }
  });
});

describe('ArchiveWriter on PostgreSQL: one slow commit holds only its own room', function () {
  this.timeout(60000);
  const dbName = `perch_writer_${randomBytes(4).toString('hex')}`;
  const admin = () => new pg.Client({ connectionString: DATABASE_URL });
  const url = DATABASE_URL.replace(/\/[^/]*$/, `/${dbName}`);
  let kit: RoomKit | undefined;

  before(async function () {
    try {
      await probePostgres();
    } catch (e) {
      if (process.env.CI === 'true') throw e;
      this.skip();
    }
    const c = admin();
    await c.connect();
    await c.query(`CREATE DATABASE ${dbName}`);
    await c.end();
    kit = await startRoomKit({ nodeId: 'writer-kit', databaseUrl: url });
  });
  after(async () => {
    await kit?.stop();
    const c = admin();
    await c.connect();
    await c.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await c.end();
  });

  it('a message to another room is delivered while one room\'s commit sleeps', async () => {
    const owner = await kit!.client('slowpoke@localhost');
    await createRoom(owner, 'slow', { 'muc#roomconfig_persistentroom': '1' });
    await createRoom(owner, 'fast', { 'muc#roomconfig_persistentroom': '1' });
    // A statement writing the slow room's archive takes 1.5 s (a slow fsync, a lock held elsewhere).
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    await c.query(`CREATE FUNCTION slow_archive() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.archive = '${roomJid('slow')}' THEN PERFORM pg_sleep(1.5); END IF; RETURN NEW; END $$`);
    await c.query('CREATE TRIGGER slow_archive BEFORE INSERT ON archive FOR EACH ROW EXECUTE FUNCTION slow_archive()');
    await c.end();

    const t0 = performance.now();
    const slow = heard(owner, 'held').then(() => performance.now() - t0);
    say(owner, 'slow', 'held');
    await new Promise((r) => setTimeout(r, 100)); // its statement is in flight
    say(owner, 'fast', 'prompt');
    const fast = await heard(owner, 'prompt').then(() => performance.now() - t0);
    const slowMs = await slow;
    expect(fast, 'the other room\'s message, ms after the slow one was sent').to.be.below(600);
    expect(slowMs, 'the slow room waits for its commit').to.be.above(1400);
  });
});
