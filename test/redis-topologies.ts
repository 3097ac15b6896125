// Private Redis topologies on loopback ports, started by the tests that need them: a master with a
// replica watched by three sentinels, and a three-master Redis Cluster. Every process is a child of
// the test (killed by its pid when it stops); nothing touches the shared Redis. Without redis-server
// the suites skip with a warning, except under CI=true where they fail.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { FaultProxy } from '../conformance/faults/services.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Why the topologies cannot run here, or null. */
export function redisBinariesMissing(): string | null {
  // Sentinel is redis-server --sentinel: the one binary serves both.
  const r = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return `redis-server missing: ${r.error?.message ?? r.stderr}`;
  const cli = spawnSync('redis-cli', ['--version'], { encoding: 'utf8' });
  if (cli.error || cli.status !== 0) return `redis-cli missing: ${cli.error?.message ?? cli.stderr}`;
  return null;
}

/** Skips the suite (or, under CI=true, fails it) when redis-server, sentinel mode or redis-cli is missing. */
export function requireRedisBinaries(ctx: Mocha.Context): void {
  const why = redisBinariesMissing();
  if (!why) return;
  if (process.env.CI === 'true') throw new Error(`Redis Sentinel and Cluster tests need redis-server and redis-cli in CI: ${why}`);
  console.warn(`    ${why}: skipping the Sentinel and Cluster suites`);
  ctx.skip();
}

/** Sends one command over RESP and returns the raw reply. */
export function redisCommand(port: number, ...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let out = '';
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`no reply from ${port}`)); }, 3000);
    s.once('connect', () => s.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`));
    s.on('data', (d) => {
      out += d.toString();
      // Enough for the simple, bulk and short array replies these tests read.
      if (/\r\n$/.test(out) && !(out.startsWith('$') && out.split('\r\n').length < 3)) {
        clearTimeout(timer);
        s.destroy();
        resolve(out);
      }
    });
    s.once('error', (e) => { clearTimeout(timer); reject(e); });
  });
}

// A test run that ends without its after hooks (mocha --exit, a crash) must not leave servers behind.
const everyProc = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of everyProc) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
});

class Procs {
  private readonly procs = new Map<number, ChildProcess>();
  constructor(readonly dir: string, readonly base: number) {}

  /**
   * Starts redis-server on the next free port of the topology's block (base..base+99) and returns it.
   * The machine's ephemeral range covers the test ports, so an outgoing connection of any process may
   * hold one: such a port is skipped. args may name further ports with '{port+N}' (the next free ones).
   */
  async start(args: string[], conf?: (port: number) => string): Promise<number> {
    for (let attempt = 1; ; attempt++) {
      const port = this.nextPort();
      const extra = new Map<string, number>();
      const argv = args.map((a) => a.replace(/\{port\+(\d+)\}/g, (_, n: string) => {
        if (!extra.has(n)) extra.set(n, this.nextPort());
        return String(extra.get(n));
      }));
      try {
        await this.startOnce(port, argv, conf?.(port));
        return port;
      } catch (err) {
        if (attempt >= 20 || !(err instanceof Error) || !err.message.includes('exited')) throw err;
      }
    }
  }

  /** A port of the block for something else than redis-server (it may be taken: the caller tries another). */
  freePort(): number {
    return this.nextPort();
  }

  private next = 0;
  private nextPort(): number {
    if (this.next >= 100) throw new Error(`no free port left in ${this.base}..${this.base + 99}`);
    return this.base + this.next++;
  }

  private async startOnce(port: number, args: string[], conf?: string): Promise<void> {
    const argv = conf !== undefined ? [await this.writeConf(port, conf), ...args] : args;
    const proc = spawn('redis-server', [...argv, '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir],
      { stdio: 'ignore' });
    this.procs.set(port, proc);
    everyProc.add(proc);
    proc.once('exit', () => everyProc.delete(proc));
    const until = Date.now() + 10_000;
    while (Date.now() < until) {
      if (proc.exitCode !== null) throw new Error(`redis-server on ${port} exited with ${proc.exitCode} (port in use?)`);
      if ((await redisCommand(port, 'PING').catch(() => '')).startsWith('+PONG')) return;
      await sleep(30);
    }
    throw new Error(`redis-server on ${port} did not start`);
  }

  private async writeConf(port: number, text: string): Promise<string> {
    const file = join(this.dir, `sentinel-${port}.conf`);
    await writeFile(file, text);
    return file;
  }

  async kill(port: number): Promise<void> {
    const proc = this.procs.get(port);
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGKILL');
    await exited;
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.procs.keys()].map((p) => this.kill(p)));
    await rm(this.dir, { recursive: true, force: true });
  }
}

export interface SentinelSet {
  url: string;
  /**
   * With replicaBehindProxy: from now on nothing the master writes reaches the replica (the link stays
   * open, as over a network that drops packets), so a failover promotes a replica without the last writes.
   */
  cutReplica(): Promise<void>;
  /** The master's port now (asked of a sentinel). */
  masterPort(): Promise<number>;
  /** SIGKILLs the current master (once a replica can take over); resolves once the sentinels name another one. */
  killMaster(): Promise<number>;
  /**
   * SENTINEL FAILOVER: the replica promoted, the old master kept and made its replica (its clients'
   * connections stay open to a server that soon refuses writes). Resolves with the new master's port
   * once the sentinels name it; a later failover waits until the old master replicates from it.
   */
  manualFailover(): Promise<number>;
  /** Resolves once a replica of the master is in sync and every sentinel names the master (a failover can promote it). */
  replicaReady(): Promise<void>;
  /** Starts one more replica of the current master (after a kill left none). */
  addReplica(): Promise<number>;
  stop(): Promise<void>;
}

/**
 * A master, its replica and three sentinels on free ports of base..base+99, master name 'perchmaster'.
 * replicaBehindProxy: the replica reaches the master through a proxy that cutReplica() silences.
 */
export async function startSentinelSet(base: number, opts: { replicaBehindProxy?: boolean } = {}): Promise<SentinelSet> {
  const procs = new Procs(await mkdtemp(join(tmpdir(), 'perch-sentinel-')), base);
  const name = 'perchmaster';
  const sentinels: number[] = [];
  let proxy: FaultProxy | null = null;
  try {
    const master = await procs.start([]);
    if (opts.replicaBehindProxy) {
      proxy = new FaultProxy(0, master);
      await proxy.listen();
    }
    const replica = await procs.start(['--replicaof', '127.0.0.1', String(proxy?.port ?? master)]);
    for (let i = 0; i < 3; i++) {
      sentinels.push(await procs.start(['--sentinel'], () => [
        `sentinel monitor ${name} 127.0.0.1 ${master} 2`,
        `sentinel down-after-milliseconds ${name} 1000`,
        // Sentinel points a replica that replicates from another address (the proxy) back at the
        // master after twice this: long enough for a test that needs the proxy.
        `sentinel failover-timeout ${name} ${opts.replicaBehindProxy ? 120_000 : 4000}`,
        `sentinel parallel-syncs ${name} 1`,
        '',
      ].join('\n')));
    }
    // The replica in sync and known to the sentinels: a failover can promote it.
    const until = Date.now() + 20_000;
    for (;;) {
      const info = await redisCommand(replica, 'INFO', 'replication');
      const seen = await redisCommand(sentinels[0]!, 'SENTINEL', 'REPLICAS', name).catch(() => '');
      if (info.includes('master_link_status:up') && seen.includes(String(replica))) break;
      if (Date.now() > until) throw new Error('the replica or the sentinels did not come up');
      await sleep(100);
    }
  } catch (err) {
    await proxy?.close();
    await procs.stopAll();
    throw err;
  }
  const masterPort = async () => {
    const reply = await redisCommand(sentinels[0]!, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name);
    return Number(reply.split('\r\n')[4]);
  };
  const newMaster = async (old: number) => {
    const until = Date.now() + 30_000;
    for (;;) {
      const now = await masterPort().catch(() => old);
      if (now !== old) return now;
      if (Date.now() > until) throw new Error('no failover within 30 s');
      await sleep(100);
    }
  };
  // A replica of master in sync (asked of the replica itself: the sentinels' view lags a failover by
  // seconds), and every sentinel naming master: a failover now can promote it.
  const replicaReady = async (master: number) => {
    const until = Date.now() + 60_000;
    for (;;) {
      const primary = await Promise.all(sentinels.map((p) => redisCommand(p, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name).catch(() => '')));
      const listed = await redisCommand(sentinels[0]!, 'SENTINEL', 'REPLICAS', name).catch(() => '');
      const ports = [...listed.matchAll(/\r\nport\r\n\$\d+\r\n(\d+)\r\n/g)].map((m) => Number(m[1])).filter((p) => p !== master);
      let inSync = false;
      for (const port of ports) {
        const info = await redisCommand(port, 'INFO', 'replication').catch(() => '');
        const upstream = [master, ...(proxy ? [proxy.port] : [])];
        if (info.includes('role:slave') && upstream.some((p) => info.includes(`master_port:${p}\r\n`)) && info.includes('master_link_status:up')) inSync = true;
      }
      if (inSync && primary.every((r) => r.includes(`\r\n${master}\r\n`))) return;
      if (Date.now() > until) throw new Error('no replica ready for a failover within 60 s');
      await sleep(200);
    }
  };
  return {
    url: `redis+sentinel://${sentinels.map((p) => `127.0.0.1:${p}`).join(',')}/${name}`,
    async cutReplica() {
      if (!proxy) throw new Error('cutReplica needs replicaBehindProxy');
      await proxy.cut('silence');
    },
    masterPort,
    async killMaster() {
      const old = await masterPort();
      await replicaReady(old);
      await procs.kill(old);
      return newMaster(old);
    },
    replicaReady: async () => replicaReady(await masterPort()),
    async addReplica() {
      const master = await masterPort();
      const port = await procs.start(['--replicaof', '127.0.0.1', String(master)]);
      await replicaReady(master);
      return port;
    },
    async manualFailover() {
      const old = await masterPort();
      await replicaReady(old);
      const reply = await redisCommand(sentinels[0]!, 'SENTINEL', 'FAILOVER', name);
      if (!reply.startsWith('+OK')) throw new Error(`SENTINEL FAILOVER: ${reply.trim()}`);
      return newMaster(old);
    },
    stop: async () => {
      await proxy?.close();
      await procs.stopAll();
    },
  };
}

export interface RedisClusterSet {
  url: string;
  ports: number[];
  stop(): Promise<void>;
}

/** Three masters (and their cluster buses) on free ports of base..base+99, no replicas, every slot assigned. */
export async function startRedisCluster(base: number): Promise<RedisClusterSet> {
  const procs = new Procs(await mkdtemp(join(tmpdir(), 'perch-cluster-')), base);
  const ports: number[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      // The bus port is the client port + 10000 unless named: kept in the caller's range.
      ports.push(await procs.start(['--cluster-enabled', 'yes', '--cluster-port', '{port+1}', '--cluster-config-file', `nodes-${base}-${i}.conf`, '--cluster-node-timeout', '2000']));
    }
    const made = spawnSync('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'],
      { encoding: 'utf8', timeout: 30_000 });
    if (made.status !== 0) throw new Error(`redis-cli --cluster create failed: ${made.stdout}${made.stderr}`);
    const until = Date.now() + 20_000;
    for (;;) {
      const states = await Promise.all(ports.map((p) => redisCommand(p, 'CLUSTER', 'INFO')));
      if (states.every((s) => s.includes('cluster_state:ok'))) break;
      if (Date.now() > until) throw new Error('the cluster did not reach cluster_state:ok');
      await sleep(100);
    }
  } catch (err) {
    await procs.stopAll();
    throw err;
  }
  return {
    url: `redis+cluster://${ports.map((p) => `127.0.0.1:${p}`).join(',')}`,
    ports,
    stop: () => procs.stopAll(),
  };
}
