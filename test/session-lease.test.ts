// Cluster lease contract, run against the in-process store and Redis. The Redis suite skips with a
// warning when Redis is unreachable, except in CI where it fails.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { REDIS_URL, probeRedis, redisClient } from './services.js';
import { MemoryLeases, MemorySessionStore } from '../storage/session-memory.js';
import { RedisSessionStore } from '../storage/session-redis.js';
import type { SessionStore } from '../storage/types.js';
import { requireRedisBinaries, startRedisCluster, startSentinelSet, type RedisClusterSet, type SentinelSet } from './redis-topologies.js';

// This file's private Redis topologies (apart from test/session-store-contract.test.ts's ports).
let sentinelSet: SentinelSet | null = null;
let clusterSet: RedisClusterSet | null = null;


const rand = () => randomBytes(6).toString('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


let redisProbe: Promise<void> | null = null;

/** Skips the suite when Redis is down, or fails it when running in CI. */
async function requireRedis(ctx: Mocha.Context): Promise<void> {
  redisProbe ??= probeRedis();
  try {
    await redisProbe;
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    if (process.env.CI === 'true') throw new Error(`Redis at ${REDIS_URL} is required in CI but unreachable: ${why}`);
    console.warn(`    Redis at ${REDIS_URL} unreachable (${why}): skipping its suites`);
    ctx.skip();
  }
}

interface LeaseBackend {
  name: string;
  needsRedis: boolean;
  /** Starts the private topology the backend runs on. */
  topology?: () => Promise<void>;
  /** Two stores standing for two nodes of one cluster. */
  pair(): [SessionStore, SessionStore];
}

// Each test gets its own key space so runs and tests never see each other.
let prefix = '';

const backends: LeaseBackend[] = [
  {
    name: 'memory',
    needsRedis: false,
    pair: () => {
      const leases = new MemoryLeases();
      return [new MemorySessionStore('node-a', leases), new MemorySessionStore('node-b', leases)];
    },
  },
  {
    name: 'Redis',
    needsRedis: true,
    pair: () => [
      new RedisSessionStore({ url: REDIS_URL, nodeId: 'node-a', prefix }),
      new RedisSessionStore({ url: REDIS_URL, nodeId: 'node-b', prefix }),
    ],
  },
  {
    name: 'Redis Sentinel',
    needsRedis: false,
    topology: async () => { sentinelSet ??= await startSentinelSet(37300); },
    pair: () => [
      new RedisSessionStore({ url: sentinelSet!.url, nodeId: 'node-a', prefix }),
      new RedisSessionStore({ url: sentinelSet!.url, nodeId: 'node-b', prefix }),
    ],
  },
  {
    name: 'Redis Cluster',
    needsRedis: false,
    topology: async () => { clusterSet ??= await startRedisCluster(37400); },
    pair: () => [
      new RedisSessionStore({ url: clusterSet!.url, nodeId: 'node-a', prefix }),
      new RedisSessionStore({ url: clusterSet!.url, nodeId: 'node-b', prefix }),
    ],
  },
];

describe('session store leases', function () {
  let cleaner: Redis | null = null;
  after(async function () {
    cleaner?.disconnect();
    await sentinelSet?.stop();
    await clusterSet?.stop();
  });

  for (const backend of backends) {
    describe(backend.name, function () {
      let a: SessionStore;
      let b: SessionStore;

      before(async function () {
        if (backend.topology) {
          requireRedisBinaries(this);
          this.timeout(60_000);
          await backend.topology();
        }
        if (!backend.needsRedis) return;
        await requireRedis(this);
        if (!cleaner) {
          cleaner = redisClient();
          await cleaner.connect();
        }
      });
      beforeEach(async function () {
        prefix = `perch-test:${rand()}:`;
        [a, b] = backend.pair();
        await Promise.all([a.start(), b.start()]);
      });
      afterEach(async function () {
        await Promise.all([a.close(), b.close()]);
        if (backend.needsRedis && cleaner) {
          const keys = await cleaner.keys(`${prefix}*`);
          if (keys.length > 0) await cleaner.del(...keys);
        }
      });

      it('acquires a free lease', async function () {
        expect(await a.leaseHolder('room')).to.equal(null);
        expect(await a.acquireLease('room', 5000)).to.equal('node-a');
        expect(await a.leaseHolder('room')).to.equal('node-a');
        expect(await b.leaseHolder('room')).to.equal('node-a');
        // Acquiring again by the holder keeps (renews) it.
        expect(await a.acquireLease('room', 5000)).to.equal('node-a');
      });

      it('shares state hashes between nodes', async function () {
        expect(await b.stateGetAll('room')).to.deep.equal({});
        await a.stateSet('room', 'alice', '{"role":"moderator"}');
        await a.stateSet('room', 'bob', 'x');
        expect(await b.stateGetAll('room')).to.deep.equal({ alice: '{"role":"moderator"}', bob: 'x' });
        await b.stateSet('room', 'bob', null);
        expect(await a.stateGetAll('room')).to.deep.equal({ alice: '{"role":"moderator"}' });
        await a.stateDelete('room');
        expect(await b.stateGetAll('room')).to.deep.equal({});
      });

      it('tells another node who holds the lease', async function () {
        expect(await a.acquireLease('room', 5000)).to.equal('node-a');
        expect(await b.acquireLease('room', 5000)).to.equal('node-a');
        expect(await a.leaseHolder('room')).to.equal('node-a');
        // Leases are independent of each other.
        expect(await b.acquireLease('other-room', 5000)).to.equal('node-b');
        expect(await a.leaseHolder('other-room')).to.equal('node-b');
      });

      it('renews only for the holder', async function () {
        await a.acquireLease('room', 5000);
        expect(await a.renewLease('room', 5000)).to.equal(true);
        expect(await b.renewLease('room', 5000)).to.equal(false);
        expect(await b.leaseHolder('room')).to.equal('node-a');
        expect(await b.renewLease('free-room', 5000)).to.equal(false);
        expect(await b.leaseHolder('free-room')).to.equal(null);
      });

      it('renews many leases in one call, each answered as renewLease would', async function () {
        const rooms = Array.from({ length: 1203 }, (_, i) => `room-${i}`);
        await Promise.all(rooms.map((r, i) => (i === 7 ? b : a).acquireLease(r, 200)));
        const answers = await a.renewLeases([...rooms, 'free-room'], 5000);
        expect(answers).to.have.length(rooms.length + 1);
        expect(answers.filter((ok) => !ok)).to.have.length(2);
        expect(answers[7]).to.equal(false);
        expect(answers[rooms.length]).to.equal(false);
        await sleep(350);
        // Extended past their first 200 ms, and node b's lease left alone.
        expect(await b.leaseHolder('room-1202')).to.equal('node-a');
        expect(await a.leaseHolder('room-7')).to.equal(null);
        expect(await b.leaseHolder('free-room')).to.equal(null);
      });

      it('renewal extends the lease', async function () {
        await a.acquireLease('room', 200);
        expect(await a.renewLease('room', 5000)).to.equal(true);
        await sleep(350);
        expect(await b.leaseHolder('room')).to.equal('node-a');
        expect(await b.acquireLease('room', 5000)).to.equal('node-a');
      });

      it('re-acquiring by the holder extends the lease', async function () {
        await a.acquireLease('room', 200);
        expect(await a.acquireLease('room', 5000)).to.equal('node-a');
        await sleep(350);
        expect(await b.acquireLease('room', 5000)).to.equal('node-a');
      });

      it('ignores a release by another node', async function () {
        await a.acquireLease('room', 5000);
        await b.releaseLease('room');
        expect(await a.leaseHolder('room')).to.equal('node-a');
        expect(await b.acquireLease('room', 5000)).to.equal('node-a');
        expect(await a.renewLease('room', 5000)).to.equal(true);
      });

      it('lets another node acquire after expiry', async function () {
        expect(await a.acquireLease('room', 200)).to.equal('node-a');
        await sleep(350);
        expect(await a.leaseHolder('room')).to.equal(null);
        expect(await b.acquireLease('room', 5000)).to.equal('node-b');
        // The former holder can neither renew nor release the new holder's lease.
        expect(await a.renewLease('room', 5000)).to.equal(false);
        await a.releaseLease('room');
        expect(await a.leaseHolder('room')).to.equal('node-b');
        expect(await a.acquireLease('room', 5000)).to.equal('node-b');
      });

      it('lets another node acquire after release', async function () {
        await a.acquireLease('room', 5000);
        await a.releaseLease('room');
        expect(await a.leaseHolder('room')).to.equal(null);
        expect(await b.acquireLease('room', 5000)).to.equal('node-b');
        expect(await a.leaseHolder('room')).to.equal('node-b');
        // Releasing a lease one does not hold is harmless.
        await a.releaseLease('room');
        await a.releaseLease('never-held');
        expect(await b.leaseHolder('room')).to.equal('node-b');
      });

      it('rejects a TTL that is not a positive number', async function () {
        for (const ttl of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
          let failed = false;
          try {
            await a.acquireLease('room', ttl);
          } catch (err) {
            failed = err instanceof RangeError;
          }
          expect(failed, `ttl ${ttl}`).to.equal(true);
        }
        expect(await a.leaseHolder('room')).to.equal(null);
      });

      if (backend.needsRedis) {
        it('stores the lease under the configured prefix with its TTL', async function () {
          await a.acquireLease('room', 5000);
          expect(await cleaner!.get(`${prefix}lease:room`)).to.equal('node-a');
          const ttl = await cleaner!.pttl(`${prefix}lease:room`);
          expect(ttl).to.be.within(1, 5000);
          await a.releaseLease('room');
          expect(await cleaner!.exists(`${prefix}lease:room`)).to.equal(0);
        });
      }
    });
  }
});
