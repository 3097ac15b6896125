// Perch nodes on a three-master Redis Cluster (private, on loopback ports this suite starts with
// redis-cli --cluster create): one-to-one and room messages cross the nodes (the fault kit's clients
// and checks, with no fault: every acknowledged message archived and delivered exactly once), the
// nodes' channels are sharded (SSUBSCRIBE on the master of each channel's slot, no plain channel at
// all) and the session table's keys share one slot.
import { expect } from 'chai';
import { Cluster } from 'ioredis';
import { IN_CI, randomName, useClusterDatabase } from './harness.js';
import { formatTable } from './faults/round.js';
import type { Fault } from './faults/faults.js';
import { TopologyCluster } from './redis-topology-round.js';
import { redisBinariesMissing, redisCommand, startRedisCluster, type RedisClusterSet } from '../test/redis-topologies.js';

const PORT_BASE = 37600;

const noFault: Fault = { name: 'cluster-traffic', description: 'no fault: traffic across nodes', async inject() {} };

describe('conformance: Redis Cluster (three masters, sharded pub/sub)', function () {
  this.timeout(120_000);
  const db = useClusterDatabase('perch_rcluster_', 'Redis Cluster suite');
  let redis: RedisClusterSet | undefined;
  let cluster: TopologyCluster | undefined;

  before(async function () {
    const missing = redisBinariesMissing();
    if (missing) {
      if (IN_CI) throw new Error(`the Redis Cluster suite needs redis-server and redis-cli (CI=true): ${missing}`);
      console.warn(`    skipping the Redis Cluster suite: ${missing}`);
      this.skip();
    }
    redis = await startRedisCluster(PORT_BASE);
    cluster = new TopologyCluster(redis.url, db.url, randomName('rcl'));
    await cluster.start();
  });

  after(async function () {
    this.timeout(60_000);
    await cluster?.close();
    await redis?.stop();
    await db.drop();
  });

  it('one-to-one and room messages cross the nodes, each acknowledged one delivered exactly once', async function () {
    const r = await cluster!.round(noFault);
    const why = `${formatTable([r])}\nlost: ${r.detail.lostExamples.join('; ')}\n${r.detail.notes.join('\n')}\n${cluster!.warnings().slice(-20).join('\n')}`;
    expect(r.acked, `no message was acknowledged at all\n${why}`).to.be.greaterThan(10);
    expect(r.lost, `acknowledged messages lost\n${why}`).to.equal(0);
    expect(r.duplicated, `acknowledged messages duplicated\n${why}`).to.equal(0);
    expect(r.reordered, `room messages seen out of the archive's order\n${why}`).to.equal(0);
    expect(Object.keys(r.errors), `errors to senders\n${why}`).to.deep.equal([]);
  });

  it('subscribes with sharded pub/sub on the master of each channel and keeps the session table in one slot', async function () {
    const shardChannels: string[] = [];
    for (const port of redis!.ports) {
      expect(await redisCommand(port, 'PUBSUB', 'CHANNELS'), `plain channels on ${port}`).to.equal('*0\r\n');
      const reply = await redisCommand(port, 'PUBSUB', 'SHARDCHANNELS');
      shardChannels.push(...reply.split('\r\n').filter((l) => l.startsWith('perch') || l.startsWith('{perch')));
    }
    for (const id of cluster!.nodeIds) expect(shardChannels, shardChannels.join(" ")).to.include(`perch:node:${id}`);
    expect(shardChannels).to.include('{perch:}sessions:changes');
    const c = new Cluster(redis!.ports.map((port) => ({ host: '127.0.0.1', port })), { lazyConnect: true });
    try {
      await c.connect();
      expect(await c.hlen('{perch:}sessions')).to.equal(0); // the round's clients have gone
      const slots = new Set(await Promise.all(['{perch:}sessions', '{perch:}epoch', `{perch:}alive:${cluster!.nodeIds[0]}`]
        .map((k) => c.call('CLUSTER', 'KEYSLOT', k))));
      expect(slots.size).to.equal(1);
      expect(await c.exists('{perch:}epoch')).to.equal(1);
      // Rooms' leases, each tagged with its room: the round's two rooms (still loaded) on their own slots.
      const leases: string[] = [];
      for (const node of c.nodes('master')) leases.push(...(await node.keys('perch:lease:{muc:*')));
      expect(leases.length, leases.join(' ')).to.be.at.least(2);
    } finally {
      c.disconnect();
    }
  });
});
