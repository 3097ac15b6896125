// The session store contract, run against the in-process store, Redis, a private Sentinel set and a
// private Redis Cluster (test/redis-topologies.ts), and the Redis store's cluster behaviour (several
// nodes, lost nodes, Redis restarted empty, a failover that lost the last writes). Redis suites skip
// with a warning when the service or redis-server is missing, except in CI where they fail.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { REDIS_URL, probeRedis, redisClient, requireService } from './services.js';
import { FaultProxy } from '../conformance/faults/services.js';
import { requireRedisBinaries, startRedisCluster, startSentinelSet, type RedisClusterSet, type SentinelSet } from './redis-topologies.js';
import { openSessionStore } from '../storage/open.js';
import { MemorySessionStore } from '../storage/session-memory.js';
import { RedisSessionStore, type RedisSessionStoreOptions } from '../storage/session-redis.js';
import type { SentinelReport, SessionRecord, SessionStore } from '../storage/types.js';

// This file's private Redis topologies (the ports of test/session-lease.test.ts are apart).
const SENTINEL_BASE_PORT = 37100;
const CLUSTER_BASE_PORT = 37200;
const FAILOVER_BASE_PORT = 37000;

const rand = () => randomBytes(6).toString('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(20);
  }
}


function rec(jid: string, node: string, extra: Partial<SessionRecord> = {}): SessionRecord {
  return {
    jid,
    node,
    priority: 0,
    available: false,
    presence: null,
    interested: false,
    carbons: false,
    since: 1_700_000_000_000,
    ...extra,
  };
}

interface SessionBackend {
  name: string;
  probe?: () => Promise<void>;
  make(nodeId: string): SessionStore;
  /** The Redis servers (and sentinels) a store of this backend connects to. */
  ports?: () => Promise<number[]>;
}

const portsOf = (url: string): number[] => url.replace(/^[^/]*\/\//, '').split('/')[0]!.split(',').map((h) => Number(h.split(':').pop()));

/** Clients connected to a Redis server or sentinel, less the asking one and a sentinel's own links to its peers. */
async function clientsOf(port: number): Promise<number> {
  const c = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 1 });
  c.on('error', () => {});
  try {
    await c.connect();
    const me = await c.client('ID');
    const list = String(await c.client('LIST'));
    return list.split('\n').filter((l) => l.startsWith('id=') && !l.startsWith(`id=${me} `) && !/ name=sentinel-/.test(l)).length;
  } finally {
    c.disconnect();
  }
}

// Each test gets its own key space so runs and tests never see each other.
let prefix = '';
const fast = { heartbeatMs: 100, aliveTtlMs: 500, checkMs: 100 };
function redisStore(nodeId: string, extra: Partial<RedisSessionStoreOptions> = {}): RedisSessionStore {
  return new RedisSessionStore({ url: REDIS_URL, nodeId, prefix, ...extra });
}

// Private Sentinel and Cluster topologies (test/redis-topologies.ts), started on first use.
let sentinelSet: SentinelSet | null = null;
let clusterSet: RedisClusterSet | null = null;
const sessionBackends: SessionBackend[] = [
  { name: 'memory', make: (nodeId) => new MemorySessionStore(nodeId) },
  { name: 'Redis', probe: probeRedis, make: (nodeId) => redisStore(nodeId), ports: async () => portsOf(REDIS_URL) },
  {
    name: 'Redis Sentinel',
    probe: async () => { sentinelSet ??= await startSentinelSet(SENTINEL_BASE_PORT); },
    make: (nodeId) => redisStore(nodeId, { url: sentinelSet!.url }),
    ports: async () => [...portsOf(sentinelSet!.url), await sentinelSet!.masterPort()],
  },
  {
    name: 'Redis Cluster',
    probe: async () => { clusterSet ??= await startRedisCluster(CLUSTER_BASE_PORT); },
    make: (nodeId) => redisStore(nodeId, { url: clusterSet!.url }),
    ports: async () => portsOf(clusterSet!.url),
  },
];

describe('session store contract', function () {
  let stores: SessionStore[] = [];
  const track = <S extends SessionStore>(st: S): S => {
    stores.push(st);
    return st;
  };
  beforeEach(function () {
    prefix = `perch-test:${rand()}:`;
  });
  let cleaner: Redis | null = null;
  afterEach(async function () {
    for (const st of stores) await st.close();
    stores = [];
    // Hit counters and whatever a crashed store left behind.
    const keys = cleaner ? await cleaner.keys(`${prefix}*`) : [];
    if (keys.length > 0) await cleaner!.del(...keys);
  });
  after(async function () {
    cleaner?.disconnect();
    await sentinelSet?.stop();
    await clusterSet?.stop();
  });

  for (const backend of sessionBackends) {
    describe(backend.name, function () {
      let a: SessionStore;
      before(async function () {
        if (backend.name.startsWith('Redis ')) {
          requireRedisBinaries(this);
          this.timeout(60_000); // starting a Sentinel set or a Cluster
        }
        if (backend.probe) await requireService(this, backend.name, backend.name === 'Redis' ? REDIS_URL : 'loopback', backend.probe);
        if (backend.name === 'Redis' && !cleaner) {
          cleaner = redisClient();
          await cleaner.connect();
        }
      });
      beforeEach(async function () {
        a = track(backend.make('node-a'));
        await a.start();
      });

      it('put stores the record and returns the one it replaced', async function () {
        expect(a.nodeId).to.equal('node-a');
        const r1 = rec('u@example.com/phone', 'node-a', { available: true, priority: 5, presence: '<presence/>' });
        expect(await a.put(r1)).to.equal(null);
        expect(a.get('u@example.com/phone')).to.deep.equal(r1);
        const r2 = { ...r1, priority: -1, carbons: true, interested: true };
        expect(await a.put(r2)).to.deep.equal(r1);
        expect(a.get('u@example.com/phone')).to.deep.equal(r2);
        expect(a.count()).to.equal(1);
        expect(a.list()).to.deep.equal([r2]);
        expect(a.get('u@example.com/other')).to.equal(undefined);
      });

      it('finds resources by bare JID', async function () {
        await a.put(rec('u@example.com/a', 'node-a'));
        await a.put(rec('u@example.com/b', 'node-a'));
        await a.put(rec('u@example.com/c/with/slash', 'node-a'));
        await a.put(rec('v@example.com/a', 'node-a'));
        expect(a.resources('u@example.com').map((r) => r.jid).sort()).to.deep.equal([
          'u@example.com/a',
          'u@example.com/b',
          'u@example.com/c/with/slash',
        ]);
        expect(a.resources('v@example.com')).to.have.length(1);
        expect(a.resources('w@example.com')).to.deep.equal([]);
        expect(a.count()).to.equal(4);
      });

      it('hands out a resource list that later changes leave as it was, a replaced record in its place', async function () {
        await a.put(rec('u@example.com/a', 'node-a'));
        await a.put(rec('u@example.com/b', 'node-a'));
        const held = a.resources('u@example.com');
        await a.put(rec('u@example.com/c', 'node-a'));
        await a.put({ ...rec('u@example.com/a', 'node-a'), priority: 5 });
        await a.remove('u@example.com/b', 'node-a');
        expect(held.map((r) => r.jid)).to.deep.equal(['u@example.com/a', 'u@example.com/b']);
        expect(a.resources('u@example.com').map((r) => [r.jid, r.priority])).to.deep.equal([['u@example.com/a', 5], ['u@example.com/c', 0]]);
      });

      it('removes a record only for its owner node', async function () {
        await a.put(rec('u@example.com/a', 'node-a'));
        await a.put(rec('u@example.com/b', 'node-a'));
        await a.remove('u@example.com/a', 'node-x');
        expect(a.get('u@example.com/a')).to.not.equal(undefined);
        await a.remove('u@example.com/a', 'node-a');
        expect(a.get('u@example.com/a')).to.equal(undefined);
        expect(a.resources('u@example.com').map((r) => r.jid)).to.deep.equal(['u@example.com/b']);
        await a.remove('u@example.com/b', 'node-a');
        expect(a.resources('u@example.com')).to.deep.equal([]);
        expect(a.count()).to.equal(0);
        await a.remove('missing@example.com/x', 'node-a');
      });

      it('delivers send to its own node asynchronously', async function () {
        const got: string[] = [];
        a.onMessage((p) => got.push(`1:${p}`));
        a.onMessage((p) => got.push(`2:${p}`));
        const sent = a.send('node-a', 'hello');
        expect(got).to.deep.equal([]);
        await sent;
        await until(() => got.length === 2);
        expect(got).to.deep.equal(['1:hello', '2:hello']);
        let refused: unknown = null;
        await a.send('node-nobody', 'lost').catch((e: unknown) => { refused = e; });
        expect(refused, 'a send nobody can take is refused').to.be.instanceOf(Error);
        // One try: refused at once, not after the retries.
        const t0 = Date.now();
        refused = null;
        await a.send('node-nobody', 'lost', { retry: false }).catch((e: unknown) => { refused = e; });
        expect(refused, 'one try nobody takes is refused').to.be.instanceOf(Error);
        expect(Date.now() - t0, 'without retrying').to.be.below(300);
        await sleep(50);
        expect(got).to.have.length(2);
      });

      it('delivers a broadcast to its own node', async function () {
        const got: string[] = [];
        a.onMessage((p) => got.push(p));
        await a.broadcast('to everyone');
        await until(() => got.length === 1);
        expect(got).to.deep.equal(['to everyone']);
      });

      it('holdsLease says whether this node may count on a lease; reclaimLease takes a free one', async function () {
        expect(a.holdsLease('room')).to.equal(false);
        expect(await a.acquireLease('room', 300)).to.equal('node-a');
        expect(a.holdsLease('room')).to.equal(true);
        await sleep(350);
        // Unrenewed past its TTL: no longer this node's to count on.
        expect(a.holdsLease('room')).to.equal(false);
        expect(await a.reclaimLease('room', 5000)).to.equal('node-a');
        expect(a.holdsLease('room')).to.equal(true);
        expect(await a.leaseHolder('room')).to.equal('node-a');
        await a.releaseLease('room');
        expect(a.holdsLease('room')).to.equal(false);
      });

      it('counts hits until they expire or are reset', async function () {
        expect(await a.hit('login:1.2.3.4', 1)).to.equal(1);
        expect(await a.hit('login:1.2.3.4', 1)).to.equal(2);
        expect(await a.hit('login:1.2.3.4', 100)).to.equal(3);
        expect(await a.hit('login:5.6.7.8', 1)).to.equal(1);
        await sleep(1200);
        // The TTL runs from the first increment and is not extended by later ones.
        expect(await a.hit('login:1.2.3.4', 1)).to.equal(1);
        expect(await a.hit('reg', 60)).to.equal(1);
        expect(await a.hit('reg', 60)).to.equal(2);
        await a.resetHits('reg');
        expect(await a.hit('reg', 60)).to.equal(1);
        await a.resetHits('never-hit');
      });

      if (backend.ports) {
        // On Sentinel, QUIT alone left the failover detector's subscriptions to every sentinel open, reconnecting forever.
        it('close leaves no connection open to any Redis server or sentinel', async function () {
          this.timeout(15_000);
          const ports = await backend.ports!();
          const before = await Promise.all(ports.map(clientsOf));
          const b = backend.make('node-b');
          await b.start();
          await a.put(rec('u@example.com/a', 'node-a'));
          await b.put(rec('u@example.com/b', 'node-b'));
          const open = await Promise.all(ports.map(clientsOf));
          expect(open.reduce((x, y) => x + y), 'connections while open').to.be.above(before.reduce((x, y) => x + y));
          await b.close();
          let after = open;
          for (const until = Date.now() + 3000; Date.now() < until; await sleep(100)) {
            after = await Promise.all(ports.map(clientsOf));
            if (after.every((n, i) => n <= before[i]!)) break;
          }
          expect(Object.fromEntries(ports.map((p, i) => [p, after[i]])), 'connections after close, by port').to.deep.equal(Object.fromEntries(ports.map((p, i) => [p, before[i]])));
        });
      }
    });
  }

  describe('Redis cluster', function () {
    let redis: Redis;
    before(async function () {
      await requireService(this, 'Redis', REDIS_URL, probeRedis);
      if (!cleaner) {
        cleaner = redisClient();
        await cleaner.connect();
      }
      redis = cleaner;
    });

    async function pair(): Promise<[RedisSessionStore, RedisSessionStore]> {
      const a = track(redisStore('node-a', fast));
      const b = track(redisStore('node-b', fast));
      await Promise.all([a.start(), b.start()]);
      return [a, b];
    }

    it('shares records between nodes; resources span nodes', async function () {
      const [a, b] = await pair();
      await a.put(rec('u@example.com/a', 'node-a'));
      await b.put(rec('u@example.com/b', 'node-b', { available: true }));
      await until(() => a.count() === 2 && b.count() === 2);
      for (const st of [a, b]) {
        expect(st.resources('u@example.com').map((r) => `${r.jid} ${r.node}`).sort()).to.deep.equal([
          'u@example.com/a node-a',
          'u@example.com/b node-b',
        ]);
      }
      expect(b.get('u@example.com/a')).to.deep.equal(rec('u@example.com/a', 'node-a'));
    });

    it('put returns the previous owner record across nodes; remove only by owner', async function () {
      const [a, b] = await pair();
      const ra = rec('u@example.com/r', 'node-a');
      await a.put(ra);
      const rb = rec('u@example.com/r', 'node-b', { priority: 9 });
      expect(await b.put(rb)).to.deep.equal(ra);
      await until(() => a.get('u@example.com/r')?.node === 'node-b');
      // node-a's stale clean-up must not remove the session node-b took over.
      await a.remove('u@example.com/r', 'node-a');
      await sleep(100);
      expect(a.get('u@example.com/r')).to.deep.equal(rb);
      expect(b.get('u@example.com/r')).to.deep.equal(rb);
      await a.remove('u@example.com/r', 'node-b');
      await until(() => b.get('u@example.com/r') === undefined);
      expect(a.get('u@example.com/r')).to.equal(undefined);
    });

    it('a node started later loads the existing table', async function () {
      const [a] = await pair();
      await a.put(rec('u@example.com/a', 'node-a'));
      await a.put(rec('v@example.com/a', 'node-a'));
      const c = track(redisStore('node-c', fast));
      await c.start();
      expect(c.list().map((r) => r.jid).sort()).to.deep.equal(['u@example.com/a', 'v@example.com/a']);
      expect(c.resources('u@example.com')).to.have.length(1);
    });

    it('delivers send payloads between nodes', async function () {
      const [a, b] = await pair();
      const gotA: string[] = [];
      const gotB: string[] = [];
      a.onMessage((p) => gotA.push(p));
      b.onMessage((p) => gotB.push(p));
      await a.send('node-b', 'to b');
      await b.send('node-a', 'to a');
      await b.send('node-b', 'to self');
      await until(() => gotA.length === 1 && gotB.length === 2);
      expect(gotA).to.deep.equal(['to a']);
      expect(gotB.sort()).to.deep.equal(['to b', 'to self']);
    });

    it('a payload sent again after its node resubscribed arrives before one sent later', async function () {
      const a = track(redisStore('node-a', fast));
      await a.start();
      // Nobody listens on node-b's channel yet (a node resubscribing after Redis came back).
      const first = a.send('node-b', 'first');
      await sleep(120);
      const b = track(redisStore('node-b', fast));
      const got: string[] = [];
      b.onMessage((p) => got.push(p));
      await b.start();
      // Before, the second went out at once while the first waited for its next try.
      const second = a.send('node-b', 'second');
      await Promise.all([first, second]);
      await until(() => got.length === 2);
      expect(got).to.deep.equal(['first', 'second']);
    });

    it('a payload that gives up on its node takes the ones queued behind it along, so none overtakes it', async function () {
      const a = track(redisStore('node-a', { ...fast, sendRetryMs: 300 }));
      await a.start();
      // Nobody listens on node-b's channel: the first gives up at 300 ms, the second waits behind it.
      const outcome = (p: Promise<void>) => p.then(() => 'sent', () => 'failed');
      const first = outcome(a.send('node-b', 'first'));
      await sleep(150);
      const second = outcome(a.send('node-b', 'second'));
      expect(await first).to.equal('failed');
      // node-b listens again before the second's own deadline. Had it been sent now, it would arrive
      // ahead of the first, which its sender holds to send again later.
      const b = track(redisStore('node-b', fast));
      const got: string[] = [];
      b.onMessage((p) => got.push(p));
      await b.start();
      expect(await second).to.equal('failed');
      await sleep(100);
      expect(got).to.deep.equal([]);
    });

    it('delivers a broadcast to every node, the sender included', async function () {
      const [a, b] = await pair();
      const got: string[] = [];
      a.onMessage((p) => got.push(`a:${p}`));
      b.onMessage((p) => got.push(`b:${p}`));
      await a.broadcast('changed');
      await until(() => got.length === 2);
      expect(got.sort()).to.deep.equal(['a:changed', 'b:changed']);
    });

    it('shares hit counters between nodes', async function () {
      const [a, b] = await pair();
      expect(await a.hit('k', 10)).to.equal(1);
      expect(await b.hit('k', 10)).to.equal(2);
      await a.resetHits('k');
      expect(await b.hit('k', 10)).to.equal(1);
    });

    it('close removes the node records and its alive key', async function () {
      const [a, b] = await pair();
      await a.put(rec('u@example.com/a', 'node-a'));
      await b.put(rec('u@example.com/b', 'node-b'));
      await until(() => b.count() === 2);
      const lost: string[] = [];
      b.onNodeLost((node) => lost.push(node));
      await a.close();
      await until(() => b.count() === 1);
      expect(b.list().map((r) => r.jid)).to.deep.equal(['u@example.com/b']);
      expect(await redis.exists(`${prefix}alive:node-a`)).to.equal(0);
      expect(await redis.exists(`${prefix}alive:node-b`)).to.equal(1);
      await sleep(300);
      expect(lost).to.deep.equal([]);
    });

    it('detects a lost node once cluster-wide and removes its records', async function () {
      const [a, b] = await pair();
      const c = redisStore('node-c', fast);
      await c.start();
      await c.put(rec('u@example.com/c1', 'node-c'));
      await c.put(rec('v@example.com/c2', 'node-c'));
      await a.put(rec('u@example.com/a', 'node-a'));
      await until(() => a.count() === 3 && b.count() === 3);
      const lost: { by: string; node: string; jids: string[] }[] = [];
      a.onNodeLost((node, records) => lost.push({ by: 'a', node, jids: records.map((r) => r.jid).sort() }));
      let mirrorHadIt = false;
      b.onNodeLost((node, records) => {
        lost.push({ by: 'b', node, jids: records.map((r) => r.jid).sort() });
        mirrorHadIt ||= b.get('u@example.com/c1') !== undefined;
      });
      c.crash();
      await until(() => lost.length > 0, 5000);
      await sleep(400);
      expect(lost).to.have.length(1);
      expect(lost[0]!.node).to.equal('node-c');
      expect(lost[0]!.jids).to.deep.equal(['u@example.com/c1', 'v@example.com/c2']);
      // Handlers run after the records are gone from the detecting node's mirror.
      expect(mirrorHadIt).to.equal(false);
      await until(() => a.count() === 1 && b.count() === 1);
      expect(a.resources('u@example.com').map((r) => r.jid)).to.deep.equal(['u@example.com/a']);
      expect(await redis.hlen(`${prefix}sessions`)).to.equal(1);
    });

    /** What Redis restarted without persistence looks like to the nodes: every key of the cluster gone. */
    async function emptyRedis(): Promise<void> {
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length > 0) await redis.del(...keys);
    }

    it('writes every node\'s records back when Redis comes back empty; the mirrors never lose them', async function () {
      const [a, b] = await pair();
      const resets: string[] = [];
      a.onReset((r) => { resets.push(`a:${r.kind}:${r.records.map((x) => x.jid).join(',')}`); });
      b.onReset((r) => { resets.push(`b:${r.kind}:${r.records.map((x) => x.jid).join(',')}`); });
      await a.put(rec('u@example.com/a', 'node-a'));
      await b.put(rec('v@example.com/b', 'node-b'));
      await until(() => a.count() === 2 && b.count() === 2);
      await emptyRedis();
      // Routing reads the mirror: at no point does a node lose a session, its own or another's.
      const deadline = Date.now() + 2000;
      while (Date.now() < deadline) {
        expect(a.count(), 'a mirror').to.equal(2);
        expect(b.count(), 'b mirror').to.equal(2);
        if ((await redis.hlen(`${prefix}sessions`)) === 2 && resets.length === 2) break;
        await sleep(20);
      }
      expect(resets.sort()).to.deep.equal(['a:empty:u@example.com/a', 'b:empty:v@example.com/b']);
      expect(await redis.hlen(`${prefix}sessions`)).to.equal(2);
      expect(await redis.exists(`${prefix}alive:node-a`)).to.equal(1);
      await sleep(1200);
      expect(a.resources('v@example.com').map((r) => r.node)).to.deep.equal(['node-b']);
      expect(b.resources('u@example.com').map((r) => r.node)).to.deep.equal(['node-a']);
    });

    it('after Redis came back empty the previous holder of a lease gets it back first', async function () {
      const a = track(redisStore('node-a', { ...fast, recoveryWindowMs: 800 }));
      const b = track(redisStore('node-b', { ...fast, recoveryWindowMs: 800 }));
      await Promise.all([a.start(), b.start()]);
      expect(await a.acquireLease('room', 10_000)).to.equal('node-a');
      a.onReset(async () => {
        // As the MUC service does: after a while (others may ask meanwhile), it takes its rooms back.
        await sleep(200);
        expect(await a.reclaimLease('room', 10_000)).to.equal('node-a');
      });
      await emptyRedis();
      await sleep(150);
      // b asks for the free lease during the recovery window: it waits, then finds a holding it.
      expect(await b.acquireLease('room', 10_000)).to.equal('node-a');
      expect(await a.renewLease('room', 10_000)).to.equal(true);
      expect(a.holdsLease('room')).to.equal(true);
    });

    it('a lease Redis lost is not taken by another node before any node noticed Redis came back empty', async function () {
      // Nobody beats in time: the first to find out is b, asking for the lease.
      const a = track(redisStore('node-a', { ...fast, heartbeatMs: 60_000, recoveryWindowMs: 800 }));
      const b = track(redisStore('node-b', { ...fast, heartbeatMs: 60_000, recoveryWindowMs: 800 }));
      await Promise.all([a.start(), b.start()]);
      a.onReset(async () => { await a.reclaimLease('room', 10_000); });
      expect(await a.acquireLease('room', 10_000)).to.equal('node-a');
      await emptyRedis();
      const asked = b.acquireLease('room', 10_000);
      // a still counts on its lease and finds out at its next renewal, as a room owner does each second.
      await sleep(200);
      expect(await a.renewLease('room', 10_000)).to.equal(true);
      expect(await asked).to.equal('node-a');
      expect(await a.leaseHolder('room')).to.equal('node-a');
      expect(b.holdsLease('room')).to.equal(false);
    });

    it('renewLease on a lease Redis lost (not lapsed) recovers first instead of giving the lease up', async function () {
      const a = track(redisStore('node-a', { ...fast, heartbeatMs: 60_000 }));
      await a.start();
      a.onReset(async () => { await a.reclaimLease('room', 10_000); });
      expect(await a.acquireLease('room', 10_000)).to.equal('node-a');
      await emptyRedis();
      expect(await a.renewLease('room', 10_000)).to.equal(true);
      expect(await a.leaseHolder('room')).to.equal('node-a');
    });

    it('reports the records other nodes removed while it was taken for lost', async function () {
      // a's heartbeat is slow: deleting its alive key makes it look lost to b.
      const a = track(redisStore('node-a', { ...fast, heartbeatMs: 60_000 }));
      const b = track(redisStore('node-b', fast));
      await Promise.all([a.start(), b.start()]);
      const dropped: string[] = [];
      a.onReset((r) => { if (r.kind === 'dropped') dropped.push(...r.records.map((x) => x.jid)); });
      await a.put(rec('u@example.com/a', 'node-a'));
      await until(() => b.count() === 1);
      await redis.del(`${prefix}alive:node-a`);
      await until(() => dropped.length === 1, 3000);
      expect(dropped).to.deep.equal(['u@example.com/a']);
      expect(a.get('u@example.com/a')).to.equal(undefined);
    });

    it('after a cut, reports the sessions other nodes removed before it reports Redis up again', async function () {
      // Up first, a node takes stanzas from sessions the cluster has ended (a room's owner elsewhere
      // refuses them to a session it cannot reach, and the sender's count says handled).
      const proxy = new FaultProxy(0, Number(new URL(REDIS_URL).port || 6379));
      await proxy.listen();
      try {
        const a = track(redisStore('node-a', { url: `redis://127.0.0.1:${proxy.port}`, heartbeatMs: 100, aliveTtlMs: 500, checkMs: 60_000 }));
        const b = track(redisStore('node-b', fast));
        await Promise.all([a.start(), b.start()]);
        const events: string[] = [];
        a.onHealth((h) => { events.push(h.up ? 'up' : 'down'); });
        a.onReset((r) => { events.push(...r.records.map((x) => `${r.kind} ${x.jid}`)); });
        await a.put(rec('u@example.com/a', 'node-a'));
        await until(() => b.count() === 1);
        await proxy.cut('refuse');
        // b takes a for lost once a's alive key runs out.
        await until(() => b.count() === 0, 5000);
        await proxy.heal();
        await until(() => events.includes('up'), 10_000);
        expect(events).to.deep.equal(['down', 'dropped u@example.com/a', 'up']);
      } finally {
        await proxy.close();
      }
    });

    it('a silent connection fails what waits on it when the watchdog notices, what was queued behind it too', async function () {
      const proxy = new FaultProxy(0, Number(new URL(REDIS_URL).port || 6379));
      await proxy.listen();
      try {
        const a = track(redisStore('node-a', { url: `redis://127.0.0.1:${proxy.port}`, heartbeatMs: 500, stallMs: 1000, aliveTtlMs: 30_000, checkMs: 60_000 }));
        const b = track(redisStore('node-b', fast));
        await Promise.all([a.start(), b.start()]);
        let downAt = 0;
        a.onHealth((h) => { if (!h.up && downAt === 0) downAt = Date.now(); });
        await proxy.cut('silence');
        // A command stuck on the silent socket, then a send in a later turn: auto-pipelining holds it in
        // the next batch, behind the stuck one.
        const stuck = a.stateGetAll('k').then(() => 'answered', () => 'failed');
        await new Promise((r) => setImmediate(r));
        const sent = a.send('node-b', 'while silent').then(() => 'sent', () => 'failed');
        expect(await sent).to.equal('failed');
        expect(await stuck).to.equal('failed');
        expect(downAt, 'the watchdog noticed').to.be.greaterThan(0);
        // Before, the send waited in the reconnecting connection's queue for the next watchdog.
        expect(Date.now() - downAt, 'ms from the watchdog to the send failing').to.be.lessThan(500);
      } finally {
        await proxy.close();
      }
    });

    it('a reload after a reconnect neither drops nor reports sessions being bound or ended meanwhile', async function () {
      const [a] = await pair();
      const reports: string[] = [];
      a.onReset((r) => { reports.push(...r.records.map((x) => `${r.kind} ${x.jid}`)); });
      for (let i = 0; i < 20; i++) await a.put(rec(`old${i}@example.com/r`, 'node-a'));
      // What the subscriber's reconnection runs, here while binds and unbinds are in flight.
      const resync = (a as unknown as { resync(): Promise<void> }).resync.bind(a);
      const writes: Promise<unknown>[] = [];
      for (let i = 0; i < 40; i++) {
        writes.push(a.put(rec(`new${i}@example.com/r`, 'node-a')));
        if (i < 20) writes.push(a.remove(`old${i}@example.com/r`, 'node-a'));
        if (i % 10 === 0) writes.push(resync());
      }
      await Promise.all(writes);
      await resync();
      expect(reports).to.deep.equal([]);
      expect(a.count()).to.equal(40);
      expect(await redis.hlen(`${prefix}sessions`)).to.equal(40);
    });

    it('writes back its records Redis lost without another node removing them (a failover to a replica that missed them)', async function () {
      const [a, b] = await pair();
      const reports: string[] = [];
      a.onReset((r) => { reports.push(...r.records.map((x) => `${r.kind} ${x.jid}`)); });
      await a.put(rec('u@example.com/a', 'node-a'));
      await until(() => b.count() === 1);
      // What the promoted replica lacks: the record, with no change published and no node's removal.
      await redis.hdel(`${prefix}sessions`, 'u@example.com/a');
      await (a as unknown as { resync(): Promise<void> }).resync();
      expect(reports).to.deep.equal([]);
      expect(await redis.hlen(`${prefix}sessions`)).to.equal(1);
      expect(a.get('u@example.com/a')?.node).to.equal('node-a');
      expect(b.get('u@example.com/a')?.node).to.equal('node-a');
    });

    it('takes a lease back on renewal when Redis lost it while its holder still counted on it', async function () {
      const [a, b] = await pair();
      expect(await a.acquireLease('room', 10_000)).to.equal('node-a');
      await redis.del(`${prefix}lease:room`);
      expect(await a.renewLease('room', 10_000)).to.equal(true);
      expect(await b.leaseHolder('room')).to.equal('node-a');
      // A lease this node no longer counts on stays gone.
      expect(await a.acquireLease('short', 50)).to.equal('node-a');
      await sleep(80);
      expect(await a.renewLease('short', 10_000)).to.equal(false);
      expect(await a.leaseHolder('short')).to.equal(null);
    });

    it('a restarted node drops the records its previous process left', async function () {
      const c = redisStore('node-c', fast);
      await c.start();
      await c.put(rec('u@example.com/c', 'node-c'));
      c.crash();
      const c2 = track(redisStore('node-c', fast));
      await c2.start();
      expect(c2.count()).to.equal(0);
      expect(await redis.hlen(`${prefix}sessions`)).to.equal(0);
    });
  });

  // ioredis's failover detector watches every sentinel through clients with no error listener: a
  // sentinel down printed "[ioredis] Unhandled error event" at each attempt and told the server nothing.
  describe('Redis Sentinel: a sentinel lost and found again', function () {
    it('is reported down once and up again, and ioredis prints nothing', async function () {
      requireRedisBinaries(this);
      this.timeout(60_000);
      sentinelSet ??= await startSentinelSet(SENTINEL_BASE_PORT);
      const [first, ...rest] = portsOf(sentinelSet.url);
      // The first sentinel as the store is given it: through a proxy this test cuts.
      const proxy = new FaultProxy(0, first!);
      await proxy.listen();
      const address = `127.0.0.1:${proxy.port}`;
      const url = `redis+sentinel://${[address, ...rest.map((p) => `127.0.0.1:${p}`)].join(',')}/perchmaster`;
      const printed: string[] = [];
      const consoleError = console.error;
      console.error = (...args: unknown[]) => { printed.push(args.map(String).join(' ')); };
      try {
        const store = track(redisStore('node-s', { url }));
        const reports: SentinelReport[] = [];
        store.onSentinel((r) => reports.push(r));
        await store.start();
        await sleep(500); // the detector subscribed on every sentinel
        await proxy.cut('refuse');
        await until(() => reports.length > 0, 5000);
        expect(reports[0]).to.include({ address, up: false });
        expect(reports[0]!.error).to.be.a('string');
        // Still down through several attempts: one report.
        await sleep(2500);
        expect(reports).to.have.length(1);
        // The store itself never noticed: its master answered throughout.
        await store.put(rec('u@example.com/s', 'node-s'));
        await proxy.heal();
        await until(() => reports.length > 1, 10_000);
        expect(reports[1]).to.include({ address, up: true });
        expect(reports[1]!.downMs).to.be.above(2000);
        expect(reports).to.have.length(2);
      } finally {
        console.error = consoleError;
        await proxy.close();
      }
      expect(printed.filter((l) => l.includes('Unhandled error event'))).to.deep.equal([]);
    });
  });

  describe('Redis Sentinel failover to a replica that missed the last writes', function () {
    let set: SentinelSet | null = null;
    before(async function () {
      requireRedisBinaries(this);
      this.timeout(60_000);
      set = await startSentinelSet(FAILOVER_BASE_PORT, { replicaBehindProxy: true });
    });
    after(async function () {
      await set?.stop();
    });

    it('writes back the sessions and takes back the leases the new master lacks; nothing is reported dropped', async function () {
      this.timeout(60_000);
      const opts = { url: set!.url, heartbeatMs: 300, checkMs: 300 };
      const a = track(redisStore('node-a', opts));
      const b = track(redisStore('node-b', opts));
      await Promise.all([a.start(), b.start()]);
      const resets: string[] = [];
      a.onReset((r) => { resets.push(...r.records.map((x) => `${r.kind} ${x.jid}`)); });
      await a.put(rec('u@example.com/early', 'node-a'));
      expect(await a.acquireLease('early-room', 20_000)).to.equal('node-a');
      await sleep(300); // replicated
      await set!.cutReplica();
      await a.put(rec('u@example.com/late', 'node-a'));
      expect(await a.acquireLease('late-room', 20_000)).to.equal('node-a');
      await until(() => b.count() === 2);
      await set!.killMaster();
      // The promoted replica has the early record only; a finds its late one missing and writes it back.
      const fresh = new Redis(await set!.masterPort(), '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 1 });
      try {
        await fresh.connect();
        const deadline = Date.now() + 15_000;
        while ((await fresh.hlen(`${prefix}sessions`)) < 2 && Date.now() < deadline) await sleep(100);
        expect(await fresh.hkeys(`${prefix}sessions`)).to.have.members(['u@example.com/early', 'u@example.com/late']);
        expect(await a.renewLease('late-room', 20_000)).to.equal(true);
        expect(await fresh.get(`${prefix}lease:late-room`)).to.equal('node-a');
        expect(await a.renewLease('early-room', 20_000)).to.equal(true);
      } finally {
        fresh.disconnect();
      }
      expect(resets).to.deep.equal([]);
      expect(a.count()).to.equal(2);
      expect(b.get('u@example.com/late')?.node).to.equal('node-a');
    });
  });

  describe('openSessionStore', function () {
    it('returns a started memory store without Redis', async function () {
      const st = track(await openSessionStore({ redisUrl: null, nodeId: 'solo' }));
      expect(st).to.be.instanceOf(MemorySessionStore);
      expect(st.nodeId).to.equal('solo');
      await st.put(rec('u@example.com/a', 'solo'));
      expect(st.count()).to.equal(1);
    });
  });
});
