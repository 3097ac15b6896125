// Black-box harness: runs the real `perch start` as a child process and talks to it over sockets.
import { spawn, type ChildProcess } from 'node:child_process';
import { expect } from 'chai';
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import net from 'node:net';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { Redis } from 'ioredis';
import { openDataStores } from '../storage/open.js';
import { addUser } from '../src/accounts.js';
import { client as xmppClient, xml as xmppXml } from '@xmpp/client';
import type { XmppClient, XmppElement } from '@xmpp/client';

// The test servers use self-signed certificates and @xmpp/client has no per-connection TLS options.
process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';

/** The repository root, from dist/conformance/harness.js. */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const IN_CI = process.env.CI === 'true';

export interface ServerOptions {
  /** Node processes (`perch start --workers`); 1 unless given. */
  workers?: number;
  /** Accounts created before start: username → password. */
  users?: Record<string, string>;
  /** Accounts (among `users`) marked disabled before start. */
  disabledUsers?: string[];
  admins?: string[];
  registration?: boolean;
  /** Default true, as in production. */
  requireStartTls?: boolean;
  databaseUrl?: string;
  redisUrl?: string;
  nodeId?: string;
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
  /** Extra YAML for a config file passed with --config. */
  configYaml?: string;
  /** Reuse a data directory (kept on stop) instead of a fresh one. */
  dataDir?: string;
  /** Skip creating users (another node already did, on a shared database). */
  skipUserCreation?: boolean;
  startTimeoutMs?: number;
  /** Extra environment for the server process (test hooks). */
  env?: Record<string, string>;
}

export interface ServerPorts { c2s: number; c2sDirectTls: number; component: number; metrics: number; upload?: number; websocket?: number; websocketPlain?: number }

export interface RunningServer {
  ports: ServerPorts;
  domain: string;
  dataDir: string;
  process: ChildProcess;
  /** Every line the server logged (stdout and stderr). */
  logs: string[];
  /** Resolves with the exit code once the process exits. */
  exited: Promise<number | null>;
  stop(): Promise<number | null>;
  kill(): Promise<void>;
}

const running = new Set<RunningServer>();
// A crashed test run must not leave servers behind.
process.on('exit', () => {
  for (const s of running) s.process.kill('SIGKILL');
});

export function randomName(prefix: string): string {
  return `${prefix}${randomBytes(4).toString('hex')}`;
}

export async function createUsers(opts: { databaseUrl?: string; dataDir: string; domain?: string },
  users: Record<string, string>, disabled: string[] = []): Promise<void> {
  const stores = await openDataStores({ databaseUrl: opts.databaseUrl ?? null, dataDir: opts.dataDir });
  try {
    for (const [name, password] of Object.entries(users)) {
      const r = await addUser(stores, opts.domain ?? 'localhost', name, password, 4096);
      if (r === 'invalid') throw new Error(`harness: invalid user ${name}`);
    }
    for (const name of disabled) await stores.users.setDisabled(name, true);
  } finally {
    await stores.db.close();
  }
}

// An initialised, migrated PGlite directory (plus the generated TLS certificate once a server made
// one), copied for every server: initialising PGlite takes seconds, copying it does not.
let template: Promise<string> | null = null;
function templateDir(): Promise<string> {
  template ??= (async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'perch-conf-template-'));
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
    const stores = await openDataStores({ databaseUrl: null, dataDir: dir });
    await stores.db.close();
    return dir;
  })();
  return template;
}

async function freshDataDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'perch-conf-'));
  await cp(await templateDir(), dir, { recursive: true });
  return dir;
}

export async function startServer(opts: ServerOptions = {}): Promise<RunningServer> {
  const ownDir = opts.dataDir === undefined;
  const dataDir = opts.dataDir ?? (opts.databaseUrl ? await mkdtemp(path.join(tmpdir(), 'perch-conf-')) : await freshDataDir());
  if (opts.users && !opts.skipUserCreation) {
    await createUsers({ databaseUrl: opts.databaseUrl, dataDir }, opts.users, opts.disabledUsers);
  }
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PERCH_DATA_DIR: dataDir,
    // Port 0: the OS picks free ports, and the server logs the ones it got.
    PERCH_C2S_PORT: '0',
    PERCH_C2S_TLS_PORT: '0',
    PERCH_COMPONENT_PORT: '0',
    PERCH_METRICS_PORT: '0',
    PERCH_UPLOAD_PORT: '0',
    PERCH_WEBSOCKET_PORT: '0',
    PERCH_REQUIRE_STARTTLS: String(opts.requireStartTls ?? true),
    PERCH_REGISTRATION: String(opts.registration ?? false),
    PERCH_LOG_LEVEL: opts.logLevel ?? 'info',
  };
  delete env.PERCH_CONFIG;
  delete env.PERCH_DOMAIN;
  delete env.DATABASE_URL;
  delete env.REDIS_URL;
  delete env.PERCH_NODE_ID;
  delete env.PERCH_ADMINS;
  delete env.NODE_TLS_REJECT_UNAUTHORIZED;
  if (opts.admins?.length) env.PERCH_ADMINS = opts.admins.join(',');
  if (opts.databaseUrl) env.DATABASE_URL = opts.databaseUrl;
  if (opts.redisUrl) env.REDIS_URL = opts.redisUrl;
  if (opts.nodeId) env.PERCH_NODE_ID = opts.nodeId;
  Object.assign(env, opts.env);
  // One node per server started here (on PostgreSQL and Redis the default is one per core): a test
  // that wants workers says how many.
  delete env.PERCH_WORKERS;
  if (opts.workers !== undefined) env.PERCH_WORKERS = String(opts.workers);
  else if (opts.databaseUrl && opts.redisUrl) env.PERCH_WORKERS = '1';
  const args = [path.join(REPO_ROOT, 'dist/src/cli.js')];
  // Always a config file, so that a perch.yaml in the working directory is never picked up.
  const configFile = path.join(dataDir, `perch-${randomBytes(3).toString('hex')}.yaml`);
  await writeFile(configFile, opts.configYaml ?? '{}\n');
  args.push('--config', configFile, 'start');
  const child = spawn(process.execPath, args, { env, cwd: dataDir, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: string[] = [];
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let onLine: ((line: string) => void) | null = null;
  for (const stream of [child.stdout!, child.stderr!]) {
    let partial = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      partial += chunk;
      const lines = partial.split('\n');
      partial = lines.pop()!;
      for (const line of lines) {
        logs.push(line);
        onLine?.(line);
      }
    });
  }
  const ports = await new Promise<ServerPorts>((resolve, reject) => {
    // A server that did not start in time is killed: nothing else would stop it.
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`server did not start in time; logs:\n${logs.join('\n')}`)); },
      opts.startTimeoutMs ?? 30000);
    onLine = (line) => {
      if (!line.includes('"msg":"perch started"')) return;
      clearTimeout(timer);
      const rec = JSON.parse(line) as { ports: ServerPorts };
      resolve(rec.ports);
    };
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before starting; logs:\n${logs.join('\n')}`));
    });
  });
  onLine = null;
  if (!opts.databaseUrl && template) {
    const tpl = await template;
    if (!existsSync(path.join(tpl, 'tls')) && existsSync(path.join(dataDir, 'tls'))) {
      await cp(path.join(dataDir, 'tls'), path.join(tpl, 'tls'), { recursive: true }).catch(() => {});
    }
  }
  const cleanup = async () => {
    running.delete(server);
    if (ownDir) await rm(dataDir, { recursive: true, force: true }).catch(() => {});
  };
  const server: RunningServer = {
    ports, domain: 'localhost', dataDir, process: child, logs, exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 15000);
        await exited;
        clearTimeout(timer);
      }
      await cleanup();
      return child.exitCode;
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
      await cleanup();
    },
  };
  running.add(server);
  return server;
}

// --- raw sockets ------------------------------------------------------------------------------

export interface RawConnection {
  socket: net.Socket;
  /** Everything received so far (after the last upgrade or clear). */
  readonly text: string;
  send(xml: string | Buffer): void;
  /**
   * Waits until the text received after the previous match satisfies the pattern; returns the
   * matching part (the regex match or the whole unread text for a predicate) and moves past it.
   */
  waitFor(pattern: RegExp | ((unread: string) => boolean), timeoutMs?: number): Promise<string>;
  /** Resolves when the socket closes. */
  closed: Promise<void>;
  isClosed(): boolean;
  /** STARTTLS upgrade of the socket (after <proceed/>); received text starts afresh. */
  upgrade(): Promise<void>;
  close(): void;
}

export function connectRaw(port: number, opts: { tls?: 'direct'; host?: string } = {}): Promise<RawConnection> {
  const host = opts.host ?? '127.0.0.1';
  return new Promise((resolve, reject) => {
    const socket: net.Socket = opts.tls === 'direct'
      ? tls.connect({ host, port, rejectUnauthorized: false, servername: 'localhost', ALPNProtocols: ['xmpp-client'] })
      : net.connect({ host, port });
    socket.once(opts.tls === 'direct' ? 'secureConnect' : 'connect', () => {
      socket.off('error', reject);
      resolve(makeRaw(socket));
    });
    socket.once('error', reject);
  });
}

function makeRaw(initial: net.Socket): RawConnection {
  let text = '';
  let cursor = 0;
  let closed = false;
  const waiters = new Set<() => void>();
  const notify = () => { for (const w of [...waiters]) w(); };
  let resolveClosed!: () => void;
  const closedPromise = new Promise<void>((r) => (resolveClosed = r));
  const attach = (s: net.Socket) => {
    s.setEncoding('utf8');
    s.on('data', (d: string) => { text += d; notify(); });
    s.on('error', () => {});
    s.on('close', () => { closed = true; resolveClosed(); notify(); });
  };
  const raw: RawConnection = {
    socket: initial,
    get text() { return text; },
    send(xml) {
      if (!raw.socket.destroyed) raw.socket.write(xml);
    },
    waitFor(pattern, timeoutMs = 5000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const unread = text.slice(cursor);
          if (pattern instanceof RegExp) {
            const m = pattern.exec(unread);
            if (m) {
              cursor += m.index + m[0].length;
              return done(() => resolve(m[0]));
            }
          } else if (pattern(unread)) {
            cursor = text.length;
            return done(() => resolve(unread));
          }
          if (closed) done(() => reject(new Error(`connection closed while waiting for ${String(pattern)}; received: ${unread}`)));
        };
        const timer = setTimeout(() => done(() => reject(new Error(`timed out waiting for ${String(pattern)}; received: ${text.slice(cursor)}`))), timeoutMs);
        const done = (f: () => void) => { clearTimeout(timer); waiters.delete(check); f(); };
        waiters.add(check);
        check();
      });
    },
    closed: closedPromise,
    isClosed: () => closed,
    upgrade() {
      return new Promise((resolve, reject) => {
        const plain = raw.socket;
        plain.removeAllListeners('data');
        plain.removeAllListeners('close');
        const secure = tls.connect({ socket: plain, rejectUnauthorized: false, servername: 'localhost' });
        secure.once('secureConnect', () => {
          text = '';
          cursor = 0;
          raw.socket = secure;
          attach(secure);
          resolve();
        });
        secure.once('error', reject);
      });
    },
    close() {
      raw.socket.destroy();
    },
  };
  attach(initial);
  return raw;
}

export const STREAM_HEADER = (to = 'localhost', extra = '') =>
  `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='${to}' version='1.0'${extra}>`;

/** Opens a stream and returns the <stream:features/> element text. */
export async function openStream(raw: RawConnection, to = 'localhost'): Promise<string> {
  raw.send(STREAM_HEADER(to));
  return raw.waitFor(/<stream:features[\s\S]*?(<\/stream:features>|<stream:features\/>)/, 5000);
}

/** Opens a stream and negotiates STARTTLS when offered. Returns the features after TLS. */
export async function openSecureStream(raw: RawConnection): Promise<string> {
  const features = await openStream(raw);
  if (!features.includes('<starttls')) return features;
  raw.send(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`);
  await raw.waitFor(/<proceed[^>]*\/>/);
  await raw.upgrade();
  return openStream(raw);
}

/** Waits for a stream error and returns its condition name. */
export async function streamErrorCondition(raw: RawConnection, timeoutMs = 5000): Promise<string> {
  const err = await raw.waitFor(/<stream:error>[\s\S]*?<\/stream:error>/, timeoutMs);
  const m = /<([a-z-]+) xmlns=['"]urn:ietf:params:xml:ns:xmpp-streams['"]/.exec(err);
  return m ? m[1]! : err;
}

export interface RawSession extends RawConnection { jid: string }

/** STARTTLS, SASL PLAIN and resource binding over a raw socket. */
export async function rawLogin(port: number, user: string, password: string, resource?: string): Promise<RawSession> {
  const raw = await connectRaw(port);
  await openSecureStream(raw);
  const plain = Buffer.from(`\0${user}\0${password}`).toString('base64');
  raw.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${plain}</auth>`);
  const outcome = await raw.waitFor(/<success[^>]*(\/>|>[\s\S]*?<\/success>)|<failure[\s\S]*?<\/failure>/);
  if (!outcome.startsWith('<success')) throw new Error(`authentication failed: ${outcome}`);
  await openStream(raw);
  const res = resource === undefined ? '' : `<resource>${resource}</resource>`;
  raw.send(`<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>${res}</bind></iq>`);
  const bound = await raw.waitFor(/<iq[^>]*id=['"]bind1['"][\s\S]*?<\/iq>/);
  const jid = /<jid>([^<]+)<\/jid>/.exec(bound)?.[1];
  if (!jid) throw new Error(`bind failed: ${bound}`);
  return Object.assign(raw, { jid });
}

// --- @xmpp/client -----------------------------------------------------------------------------

export { xmppXml as xml };
export type { XmppClient, XmppElement };

export interface LoggedIn {
  xmpp: XmppClient;
  jid: string;
  /** Every stanza received, in order. */
  received: XmppElement[];
  /** Waits for a received stanza (already received ones count, once each) matching the predicate. */
  waitFor(pred: (el: XmppElement) => boolean, timeoutMs?: number): Promise<XmppElement>;
  /** Resolves once a stanza-level check has seen nothing matching for the given time. */
  expectNone(pred: (el: XmppElement) => boolean, ms?: number): Promise<void>;
  stop(): Promise<void>;
  /** Drops the TCP connection without closing the stream. */
  drop(): void;
  /** Stream errors received. */
  errors: string[];
  disconnected: Promise<void>;
}

export async function login(port: number, user: string, password: string,
  opts: { resource?: string; domain?: string } = {}): Promise<LoggedIn> {
  const xmpp = xmppClient({
    service: `xmpp://127.0.0.1:${port}`, domain: opts.domain ?? 'localhost', username: user, password,
    ...(opts.resource !== undefined ? { resource: opts.resource } : {}),
    // The library waits 2 s for each step of the login; two nodes, PostgreSQL and CLI processes on
    // two shared cores have stalled a step past that once in a full CI run.
    timeout: 10_000,
  });
  xmpp.reconnect.stop();
  const received: XmppElement[] = [];
  const consumed = new Set<XmppElement>();
  const waiters = new Set<() => void>();
  const errors: string[] = [];
  let resolveDisconnected!: () => void;
  const disconnected = new Promise<void>((r) => (resolveDisconnected = r));
  xmpp.on('stanza', (el: XmppElement) => {
    received.push(el);
    for (const w of [...waiters]) w();
  });
  xmpp.on('error', (err: Error & { condition?: string }) => {
    if (err.condition) errors.push(err.condition);
    for (const w of [...waiters]) w();
  });
  xmpp.on('offline', () => resolveDisconnected());
  xmpp.on('disconnect', () => resolveDisconnected());
  const jid = await xmpp.start();
  const session: LoggedIn = {
    xmpp, jid: jid.toString(), received, errors, disconnected,
    waitFor(pred, timeoutMs = 5000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const el = received.find((e) => !consumed.has(e) && pred(e));
          if (el) {
            consumed.add(el);
            clearTimeout(timer);
            waiters.delete(check);
            resolve(el);
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`${session.jid}: timed out; received:\n${received.filter((e) => !consumed.has(e)).map(String).join('\n')}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    async expectNone(pred, ms = 500) {
      await new Promise((r) => setTimeout(r, ms));
      const el = received.find((e) => !consumed.has(e) && pred(e));
      if (el) throw new Error(`${session.jid}: unexpected stanza ${String(el)}`);
    },
    async stop() {
      try {
        await Promise.race([xmpp.stop(), new Promise((r) => setTimeout(r, 3000))]);
      } catch {
        // already closed
      }
    },
    drop() {
      xmpp.socket?.socket?.destroy();
    },
  };
  return session;
}

/**
 * Accounts handed out one per test, so that tests never share rosters or archives, and the clients a
 * test logged in (stopped after it). Every account's password is 'pw'.
 */
export class AccountPool {
  readonly names: string[];
  readonly clients: LoggedIn[] = [];
  private next = 0;

  constructor(prefix: string, size: number) {
    this.names = Array.from({ length: size }, (_, i) => randomName(`${prefix}${i}`));
  }

  /** username → password, for startServer. */
  users(extra: string[] = []): Record<string, string> {
    return Object.fromEntries([...this.names, ...extra].map((u) => [u, 'pw']));
  }

  fresh(): string {
    const u = this.names[this.next++];
    if (!u) throw new Error('test user pool exhausted');
    return u;
  }

  async connect(port: number, user: string, resource?: string): Promise<LoggedIn> {
    const c = await login(port, user, 'pw', resource === undefined ? {} : { resource });
    this.clients.push(c);
    return c;
  }

  async stopClients(): Promise<void> {
    await Promise.all(this.clients.splice(0).map((c) => c.stop()));
  }
}

/** Sends an IQ get/set and resolves with the result; rejects with the error reply (its `condition` set). */
export function iq(c: LoggedIn, type: 'get' | 'set', payload: XmppElement, to?: string): Promise<XmppElement> {
  return c.xmpp.iqCaller.request(xmppXml('iq', { type, ...(to ? { to } : {}) }, payload), 10000);
}

/** The error condition of an IQ that must fail. */
export async function iqError(c: LoggedIn, type: 'get' | 'set', payload: XmppElement, to?: string): Promise<string> {
  try {
    await iq(c, type, payload, to);
  } catch (e) {
    return (e as { condition?: string }).condition ?? String(e);
  }
  throw new Error('expected an error reply');
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// --- the perch CLI, run as an operator would ------------------------------------------------------

export interface CliResult { code: number | null; stdout: string; stderr: string }

/** Runs `perch ...` as an operator would, on the data directory (and database) of a server. */
export function perch(args: string[], opts: { dataDir: string; databaseUrl?: string; stdin?: string; env?: Record<string, string> }): Promise<CliResult> {
  const env: NodeJS.ProcessEnv = { ...process.env, PERCH_DATA_DIR: opts.dataDir, PERCH_LOG_LEVEL: 'error', ...opts.env };
  for (const k of ['PERCH_CONFIG', 'PERCH_DOMAIN', 'DATABASE_URL', 'REDIS_URL', 'PERCH_NODE_ID', 'PERCH_ADMINS']) delete env[k];
  if (opts.databaseUrl) env.DATABASE_URL = opts.databaseUrl;
  const child = spawn(process.execPath, [path.join(REPO_ROOT, 'dist/src/cli.js'), ...args], { env, cwd: opts.dataDir });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  child.stdin.end(opts.stdin ?? '');
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
}

export function expectOk(r: CliResult): CliResult {
  expect(r.code, `perch failed:\n${r.stdout}\n${r.stderr}`).to.equal(0);
  return r;
}

// --- a PostgreSQL database of a suite's own ------------------------------------------------------------

export const PG_ADMIN_URL = process.env.CONFORMANCE_PG_URL ?? 'postgres://root@127.0.0.1:5432/test';

/**
 * Creates a database for the enclosing describe() before its tests and drops it after; `url` is its
 * address. Without PostgreSQL the suite is skipped, except under CI=true, where it fails.
 */
export function useTestDatabase(prefix: string): { url: string } {
  const db = { url: '' };
  const name = randomName(prefix);
  before(async function () {
    const admin = new pg.Client({ connectionString: PG_ADMIN_URL, connectionTimeoutMillis: 3000 });
    try {
      await admin.connect();
      await admin.query(`CREATE DATABASE ${name}`);
    } catch (e) {
      if (IN_CI) throw e;
      console.warn(`    skipping (no PostgreSQL): ${(e as Error).message}`);
      this.skip();
    } finally {
      await admin.end().catch(() => {});
    }
    const u = new URL(PG_ADMIN_URL);
    u.pathname = `/${name}`;
    db.url = u.toString();
  });
  after(async () => {
    if (!db.url) return;
    const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {});
    await admin.end();
  });
  return db;
}

/**
 * For the suites that start several nodes on the shared PostgreSQL and Redis (what: how their skip or
 * failure names them): before the suite's own hooks, checks both answer (skips the suite when they do
 * not, fails it under CI=true) and creates a database of its own; the suite's after() calls drop() once
 * its nodes are stopped.
 */
export function useClusterDatabase(prefix: string, what: string): { url: string; drop(): Promise<void> } {
  const name = randomName(prefix);
  const db = {
    url: '',
    async drop() {
      if (!db.url) return;
      db.url = '';
      const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
      await admin.connect();
      try {
        await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await admin.end();
      }
    },
  };
  before(async function () {
    const missing = await servicesAvailable();
    if (missing) {
      if (IN_CI) throw new Error(`${what} need PostgreSQL and Redis (CI=true): ${missing}`);
      console.warn(`    skipping the ${what}: ${missing}`);
      this.skip();
    }
    const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE ${name}`);
    } finally {
      await admin.end();
    }
    const u = new URL(PG_ADMIN_URL);
    u.pathname = `/${name}`;
    db.url = u.toString();
  });
  return db;
}

/** Redis for the suites that start several nodes. */
export const CLUSTER_REDIS_URL = process.env.CONFORMANCE_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Why the cluster suites cannot run here (PostgreSQL or Redis unreachable), or null when both answer. */
export async function servicesAvailable(): Promise<string | null> {
  const client = new pg.Client({ connectionString: PG_ADMIN_URL, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
  } catch (e) {
    return `PostgreSQL at ${PG_ADMIN_URL}: ${(e as Error).message}`;
  } finally {
    await client.end().catch(() => {});
  }
  const redis = new Redis(CLUSTER_REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null, connectTimeout: 3000 });
  redis.on('error', () => {});
  try {
    await redis.connect();
    await redis.ping();
  } catch (e) {
    return `Redis at ${CLUSTER_REDIS_URL}: ${(e as Error).message}`;
  } finally {
    redis.disconnect();
  }
  return null;
}
