// redisUrl names one Redis server, a master watched by Sentinel, or a Redis Cluster; a URL that names
// none of them stops the server with the reason.
import { expect } from 'chai';
import { errorOf, withConfig } from './config-kit.js';
import { RedisKeys, parseRedisUrl } from '../storage/redis-connection.js';

describe('config: redisUrl', function () {
  const base = 'domain: example.com\ndataDir: /tmp/perch-config-redis\n';

  it('accepts a server, a Sentinel set and a Cluster', async function () {
    for (const url of ['redis://127.0.0.1:6379', 'rediss://r.example.com:6380/2', 'redis+sentinel://s1:26379,s2:26379,s3:26379/mymaster', 'redis+cluster://c1:7000,c2:7001']) {
      expect((await withConfig(`${base}redisUrl: "${url}"\n`)).redisUrl).to.equal(url);
    }
  });

  it('says what is wrong with a URL it cannot use', async function () {
    expect(await errorOf(`${base}redisUrl: "http://r:6379"\n`)).to.match(/^config: redisUrl: must be a redis:\/\/, rediss:\/\/, redis\+sentinel:/);
    expect(await errorOf(`${base}redisUrl: "redis+sentinel://s1:26379,s2:26379"\n`)).to.equal(
      'config: redisUrl: redis+sentinel:// needs the master name as its path: redis+sentinel://h1:p1,h2:p2/mymaster');
    expect(await errorOf(`${base}redisUrl: "redis+cluster://c1,c2:7001"\n`)).to.equal(
      'config: redisUrl: "c1" is not host:port (every cluster address needs its port)');
    expect(await errorOf(`${base}redisUrl: "redis+cluster://c1:7000/0"\n`)).to.match(/takes no path/);
    expect(await errorOf(`${base}redisUrl: "redis+sentinel://s1:99999/m"\n`)).to.match(/"s1:99999" is not host:port/);
  });

  it('reads addresses, master name, database and credentials', function () {
    expect(parseRedisUrl('redis+sentinel://:s%40cret@127.0.0.1:26379,[::1]:26380/my%20master/3')).to.deep.equal({
      kind: 'sentinel', sentinels: [{ host: '127.0.0.1', port: 26379 }, { host: '::1', port: 26380 }], name: 'my master', db: 3, password: 's@cret',
    });
    expect(parseRedisUrl('redis+cluster://u:p@c1:7000,c2:7001')).to.deep.equal({
      kind: 'cluster', nodes: [{ host: 'c1', port: 7000 }, { host: 'c2', port: 7001 }], username: 'u', password: 'p',
    });
  });
});

describe('Redis key names', function () {
  it('are plain on one server and Sentinel, hash-tagged by family and by entity on a Cluster', function () {
    const plain = new RedisKeys('perch:', false);
    expect([plain.sessions, plain.changes, plain.alive('a'), plain.lease('muc:c.example:room'), plain.state('muc:c.example:room')]).to.deep.equal([
      'perch:sessions', 'perch:sessions:changes', 'perch:alive:a', 'perch:lease:muc:c.example:room', 'perch:state:muc:c.example:room']);
    const cluster = new RedisKeys('perch:', true);
    expect([cluster.sessions, cluster.changes, cluster.epoch, cluster.recovering, cluster.alive('a'), cluster.droppedMark('a')]).to.deep.equal([
      '{perch:}sessions', '{perch:}sessions:changes', '{perch:}epoch', '{perch:}recovering', '{perch:}alive:a', '{perch:}dropped:a']);
    // A room's lease and its occupants together, each room on its own slot.
    expect([cluster.lease('muc:c.example:room'), cluster.state('muc:c.example:room')]).to.deep.equal([
      'perch:lease:{muc:c.example:room}', 'perch:state:{muc:c.example:room}']);
    expect(cluster.node('a')).to.equal('perch:node:a');
  });
});
