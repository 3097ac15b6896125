// The private services a fault-injection run owns: a PostgreSQL cluster (initdb + pg_ctl, run as the
// postgres user), a redis-server child process and one TCP proxy per node in front of that Redis, so a
// run can restart, empty or cut them without touching the shared services other suites use. Every
// service is stopped on process exit, even when the run fails half-way.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import net from 'node:net';
import pg from 'pg';

const cleanups = new Set<() => void>();
let exitHooked = false;
/** Runs fn (synchronous: it runs from the 'exit' handler too) once, at stop or at process exit. */
function onExit(fn: () => void): () => void {
  if (!exitHooked) {
    exitHooked = true;
    process.on('exit', () => { for (const f of [...cleanups]) f(); });
  }
  let done = false;
  const once = () => {
    if (done) return;
    done = true;
    cleanups.delete(once);
    try { fn(); } catch { /* best effort at exit */ }
  };
  cleanups.add(once);
  return once;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The PostgreSQL server binaries: $PG_BIN, else the newest /usr/lib/postgresql/<n>/bin. */
export function findPgBin(): string | null {
  if (process.env.PG_BIN) return existsSync(path.join(process.env.PG_BIN, 'pg_ctl')) ? process.env.PG_BIN : null;
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return null;
  const versions = readdirSync(root).filter((v) => existsSync(path.join(root, v, 'bin', 'pg_ctl')))
    .sort((a, b) => Number(b) - Number(a));
  return versions.length ? path.join(root, versions[0]!, 'bin') : null;
}

export function findRedisServer(): string | null {
  const r = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' });
  const p = r.stdout.trim();
  return r.status === 0 && p ? p : null;
}

/** Why the private services cannot be started here, or null. */
export function missingTools(): string | null {
  const missing: string[] = [];
  if (!findPgBin()) missing.push('PostgreSQL server binaries (initdb, pg_ctl; set PG_BIN)');
  if (!findRedisServer()) missing.push('redis-server');
  if (AS_ROOT && spawnSync('sh', ['-c', 'command -v runuser && id postgres'], { encoding: 'utf8' }).status !== 0) missing.push('runuser and a postgres user (initdb refuses to run as root)');
  return missing.length ? `missing: ${missing.join(', ')}` : null;
}

/** As root, PostgreSQL's tools run as the postgres user (initdb refuses root); otherwise as ourselves. */
const AS_ROOT = process.getuid?.() === 0;
function pgCommand(bin: string, args: string[]): [string, string[]] {
  return AS_ROOT ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
}

function asPostgres(bin: string, args: string[]): { status: number | null; out: string } {
  const r = spawnSync(...pgCommand(bin, args), { encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

export class PrivatePostgres {
  readonly url: string;
  private readonly stopAtExit: () => void;

  private constructor(private readonly bin: string, readonly dir: string, readonly port: number) {
    this.url = `postgres://postgres@127.0.0.1:${port}/perch`;
    this.stopAtExit = onExit(() => {
      asPostgres(path.join(bin, 'pg_ctl'), ['-D', dir, '-m', 'immediate', 'stop']);
      rmSync(dir, { recursive: true, force: true });
    });
  }

  static async start(port: number): Promise<PrivatePostgres> {
    const bin = findPgBin();
    if (!bin) throw new Error('PostgreSQL server binaries not found (set PG_BIN)');
    if (await canConnect(port)) throw new Error(`port ${port} is in use: another run, or set the port base`);
    const dir = mkdtempSync(path.join(tmpdir(), 'perch-faults-pg-'));
    if (AS_ROOT) chownSync(dir, ...postgresIds());
    const p = new PrivatePostgres(bin, dir, port);
    const init = asPostgres(path.join(bin, 'initdb'), ['-D', dir, '--auth=trust', '-U', 'postgres', '--no-sync']);
    if (init.status !== 0) throw new Error(`initdb failed: ${init.out}`);
    await p.pgCtl('start');
    const admin = new pg.Client({ connectionString: `postgres://postgres@127.0.0.1:${port}/postgres` });
    await admin.connect();
    try {
      await admin.query('CREATE DATABASE perch');
    } finally {
      await admin.end();
    }
    return p;
  }

  /** pg_ctl start/restart (-m fast) on the private cluster, waiting until it accepts connections. */
  async pgCtl(action: 'start' | 'restart'): Promise<void> {
    const args = ['-D', this.dir, '-w', '-t', '60', '-l', path.join(this.dir, 'server.log'),
      '-o', `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`];
    if (action === 'restart') args.push('-m', 'fast');
    args.push(action);
    // Asynchronously: the event loop (clients, proxies) must keep running while PostgreSQL restarts.
    const out = await new Promise<{ code: number | null; text: string }>((resolve) => {
      const child = spawn(...pgCommand(path.join(this.bin, 'pg_ctl'), args), { stdio: ['ignore', 'pipe', 'pipe'] });
      let text = '';
      child.stdout.on('data', (d: Buffer) => (text += d.toString()));
      child.stderr.on('data', (d: Buffer) => (text += d.toString()));
      child.once('close', (code) => resolve({ code, text }));
    });
    if (out.code !== 0) {
      const log = existsSync(path.join(this.dir, 'server.log')) ? readFileSync(path.join(this.dir, 'server.log'), 'utf8').slice(-2000) : '';
      throw new Error(`pg_ctl ${action} failed: ${out.text}\n${log}`);
    }
  }

  async query<T extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<T[]> {
    const c = new pg.Client({ connectionString: this.url });
    await c.connect();
    try {
      return (await c.query<T>(sql, params)).rows;
    } finally {
      await c.end();
    }
  }

  stop(): void {
    this.stopAtExit();
  }
}

function postgresIds(): [number, number] {
  const uid = Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout.trim());
  const gid = Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout.trim());
  return [uid, gid];
}

/** A redis-server child process without persistence: a restart brings it back empty. */
export class PrivateRedis {
  private child: ChildProcess | null = null;
  private readonly killAtExit: () => void;

  constructor(readonly port: number) {
    this.killAtExit = onExit(() => this.child?.kill('SIGKILL'));
  }

  async start(): Promise<void> {
    const bin = findRedisServer();
    if (!bin) throw new Error('redis-server not found');
    // Another Redis there (a run that did not end) would answer in place of ours.
    if (await canConnect(this.port)) throw new Error(`port ${this.port} is in use: another run, or set the port base`);
    const child = spawn(bin, ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--daemonize', 'no', '--protected-mode', 'no'], { stdio: 'ignore' });
    this.child = child;
    const until = Date.now() + 10_000;
    while (!(await canConnect(this.port))) {
      if (child.exitCode !== null || Date.now() > until) throw new Error(`redis-server did not start on ${this.port}`);
      await sleep(50);
    }
  }

  /** kill -9: everything in it is gone. */
  async kill(): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await exited;
  }

  async stop(): Promise<void> {
    await this.kill();
    this.killAtExit();
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/** What a cut does to the connections through a proxy, and to those made while it lasts. */
export type ProxyCut =
  /** Open connections dropped; the port stops listening, so new ones are refused. */
  | 'refuse'
  /** Open connections dropped; new ones accepted and closed at once. */
  | 'reset'
  /** Nothing passes either way and every connection stays open, new ones too: a network dropping packets. */
  | 'silence';

interface ProxiedPair { client: net.Socket; upstream: net.Socket | null }

/**
 * A TCP proxy to a local port for fault tests (a node's way to Redis): it passes traffic until cut,
 * and again once healed; a connection that was silenced goes on where it stopped. Port 0 listens on
 * any free port (`port` tells which once listening), and keeps it across cuts.
 */
export class FaultProxy {
  private server: net.Server | null = null;
  private readonly pairs = new Set<ProxiedPair>();
  private mode: ProxyCut | null = null;

  constructor(public port: number, private readonly target: number) {}

  async listen(): Promise<void> {
    const server = net.createServer((client) => this.accept(client));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => { server.off('error', reject); resolve(); });
    });
    this.server = server;
    this.port = (server.address() as net.AddressInfo).port;
  }

  private accept(client: net.Socket): void {
    client.on('error', () => {});
    if (this.mode === 'reset') { client.destroy(); return; }
    const pair: ProxiedPair = { client, upstream: null };
    this.pairs.add(pair);
    client.on('close', () => { pair.upstream?.destroy(); this.pairs.delete(pair); });
    if (this.mode === 'silence') client.pause();
    else this.connect(pair);
  }

  private connect(pair: ProxiedPair): void {
    const upstream = net.connect(this.target, '127.0.0.1');
    pair.upstream = upstream;
    upstream.on('error', () => {});
    upstream.on('close', () => pair.client.destroy());
    pair.client.pipe(upstream).pipe(pair.client);
  }

  async cut(mode: ProxyCut): Promise<void> {
    this.mode = mode;
    if (mode === 'silence') {
      for (const { client, upstream } of this.pairs) {
        client.unpipe();
        upstream?.unpipe();
        client.pause();
        upstream?.pause();
      }
      return;
    }
    for (const p of this.pairs) { p.client.destroy(); p.upstream?.destroy(); }
    this.pairs.clear();
    const server = this.server;
    if (mode === 'refuse' && server) {
      this.server = null;
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }

  async heal(): Promise<void> {
    const was = this.mode;
    this.mode = null;
    if (!this.server) await this.listen();
    if (was !== 'silence') return;
    for (const p of this.pairs) {
      if (!p.upstream) { this.connect(p); continue; }
      p.client.pipe(p.upstream).pipe(p.client);
      p.client.resume();
      p.upstream.resume();
    }
  }

  async close(): Promise<void> {
    await this.cut('refuse');
  }
}
