// One YAML (or JSON) config file plus environment overrides, validated at start: a bad value stops
// the server with an error naming the key and why.
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import YAML from 'yaml';
import { tryParseJid } from '../protocol/jid.js';
import type { LogLevel } from './log.js';
import { RedisUrlError, parseRedisUrl } from '../storage/redis-connection.js';

export interface ListenerConfig { host: string; port: number }

export interface Config {
  domain: string;
  dataDir: string;
  databaseUrl: string | null;
  redisUrl: string | null;
  nodeId: string;
  logLevel: LogLevel;
  /**
   * Node processes `perch start` runs on this machine, sharing the listening ports (src/workers.ts):
   * 'auto' is one per core with PostgreSQL and Redis configured, else one (the embedded stores are
   * one process's).
   */
  workers: number | 'auto';
  listen: {
    c2s: ListenerConfig | null;
    c2sDirectTls: ListenerConfig | null;
    component: ListenerConfig | null;
    metrics: ListenerConfig | null;
    /** HTTPS for HTTP File Upload (XEP-0363); null turns the upload service off. */
    upload: ListenerConfig | null;
    /** HTTPS for WebSocket clients (RFC 7395) and XEP-0156 host-meta; null turns it off. */
    websocket: ListenerConfig | null;
    /** The same over plain HTTP, for a TLS-terminating proxy in front: loopback addresses only. */
    websocketPlain: ListenerConfig | null;
  };
  tls: { cert: string | null; key: string | null; requireStartTls: boolean };
  admins: string[];
  registration: { enabled: boolean };
  limits: {
    maxStanzaSize: number;
    maxDepth: number;
    /** Seconds an unauthenticated stream may stay open. */
    authTimeout: number;
    /** Bytes per second a connection may send, averaged over a short burst window. */
    bytesPerSecond: number;
    offlineMessages: number;
    /** Failed authentications per address and per account in ten minutes before refusing more. */
    authFailuresPerIp: number;
    authFailuresPerAccount: number;
  };
  ping: { idleSeconds: number; timeoutSeconds: number };
  streamManagement: { resumeSeconds: number };
  /** XEP-0114 components: domain → shared secret. */
  components: Record<string, string>;
  scramIterations: number;
  muc: MucConfig;
  upload: UploadConfig;
  websocket: {
    /** Origins browsers may connect from (scheme://host[:port]); empty means any. */
    allowedOrigins: string[];
    /** The wss: URL host-meta names; null means wss://<domain>:<websocket port>/xmpp-websocket. */
    publicUrl: string | null;
  };
  archive: {
    /** PostgreSQL text search configuration for full-text search: 'simple' (no stemming, any language) or a language such as 'english'. */
    fulltextLanguage: string;
    /** One-to-one archiving for accounts without preferences of their own: always (as Prosody), roster or never. */
    defaultPolicy: 'always' | 'roster' | 'never';
  };
  /** Where the company directory comes from besides the admin operations: an LDAP server (null: none). */
  directory: { ldap: LdapConfig | null };
  cluster: {
    /**
     * This node's client address as clients reach it (host, or host:port; without a port, the port the
     * c2s listener got). A draining node sends its clients to another node's with see-other-host;
     * null: clients are told system-shutdown and reconnect through the usual address.
     */
    publicAddress: string | null;
  };
}

/** The LDAP source of the directory (docs/directory.md). */
export interface LdapConfig {
  /** ldap://host:port or ldaps://host:port. */
  url: string;
  /** Bind DN and password (or a file holding it); null bindDn: anonymous. */
  bindDn: string | null;
  bindPassword: string | null;
  bindPasswordFile: string | null;
  baseDn: string;
  /** Where users and groups are searched (subtree); null: baseDn. */
  userBaseDn: string | null;
  groupBaseDn: string | null;
  userFilter: string;
  /** The attribute holding the username (the JID's localpart at this server's domain). */
  userIdAttribute: string;
  groupFilter: string;
  groupNameAttribute: string;
  /** member (DNs of users and groups: groupOfNames) or memberUid (usernames: posixGroup). */
  memberAttribute: 'member' | 'uniqueMember' | 'memberUid';
  /** Org units from the user's DN (ou= components, outermost first). */
  ouFromDn: boolean;
  /** Minutes between scheduled syncs; 0: only `perch directory sync`. */
  syncIntervalMinutes: number;
  /**
   * How the directory's users authenticate: 'local' (their Perch password), or 'ldap' (SASL PLAIN
   * over TLS checked by a bind as the user; SCRAM keeps checking the local password).
   */
  auth: 'local' | 'ldap';
  /** Milliseconds an LDAP operation may take. */
  timeoutMs: number;
}

export interface MucConfig {
  /** MUC services; null means one, conference.<domain>. An empty list turns rooms off. */
  services: { domain: string; name: string }[] | null;
  /** Who may create rooms. */
  roomCreation: 'anyone' | 'local' | 'admins';
  /** Flood limit per occupant: sustained groupchat messages per second, and the burst allowed. */
  messagesPerSecond: number;
  messageBurst: number;
  maxNickLength: number;
  /** An empty persistent room is unloaded from memory after this long without activity. */
  idleUnloadSeconds: number;
}

export interface UploadConfig {
  /** The service's JID; null means upload.<domain>. */
  domain: string | null;
  /** The URL base slots point at (scheme, host, port, optional path); null means https://<domain>:<upload port>. */
  publicUrl: string | null;
  /** Largest file not tied to a room (a room's limit is its chat service's max-file-size-kb). */
  maxFileSizeKb: number;
  /** Bytes a user may hold (stored files and open slots), in MB; null: no limit. */
  quotaPerUserMb: number | null;
  /** Bytes the whole service may hold, in MB; null: no limit. */
  quotaPerServiceMb: number | null;
  /** Days after which a file no archived message mentions is deleted; null: never. */
  expireUnreferencedDays: number | null;
  /** How long a slot's PUT URL stays valid. */
  slotSeconds: number;
}

export class ConfigError extends Error {
  constructor(readonly key: string, reason: string) {
    super(`config: ${key}: ${reason}`);
  }
}

export function defaultConfig(): Config {
  return {
    domain: 'localhost',
    dataDir: './data',
    databaseUrl: null,
    redisUrl: null,
    nodeId: 'auto',
    logLevel: 'info',
    workers: 'auto',
    listen: {
      c2s: { host: '0.0.0.0', port: 5222 },
      c2sDirectTls: { host: '0.0.0.0', port: 5223 },
      component: { host: '127.0.0.1', port: 5347 },
      metrics: { host: '127.0.0.1', port: 5280 },
      upload: { host: '0.0.0.0', port: 5281 },
      websocket: { host: '0.0.0.0', port: 5443 },
      websocketPlain: null,
    },
    tls: { cert: null, key: null, requireStartTls: true },
    admins: [],
    registration: { enabled: false },
    limits: {
      maxStanzaSize: 256 * 1024,
      maxDepth: 32,
      authTimeout: 30,
      bytesPerSecond: 1024 * 1024,
      offlineMessages: 500,
      authFailuresPerIp: 30,
      authFailuresPerAccount: 10,
    },
    ping: { idleSeconds: 300, timeoutSeconds: 60 },
    streamManagement: { resumeSeconds: 300 },
    components: {},
    scramIterations: 4096,
    websocket: { allowedOrigins: [], publicUrl: null },
    archive: { fulltextLanguage: 'simple', defaultPolicy: 'always' },
    directory: { ldap: null },
    cluster: { publicAddress: null },
    upload: {
      domain: null, publicUrl: null, maxFileSizeKb: 20000, quotaPerUserMb: 1024, quotaPerServiceMb: null,
      expireUnreferencedDays: 30, slotSeconds: 300,
    },
    muc: { services: null, roomCreation: 'local', messagesPerSecond: 10, messageBurst: 30, maxNickLength: 64, idleUnloadSeconds: 60 },
  };
}

type Plain = Record<string, unknown>;
const isPlain = (v: unknown): v is Plain => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Deep-merges `over` into `base`, rejecting keys the config does not have. */
function merge(base: Plain, over: Plain, prefix: string, open: Set<string>): Plain {
  const out: Plain = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (!(k in base) && !open.has(prefix)) throw new ConfigError(key, 'unknown key');
    const cur = base[k];
    if (isPlain(cur) && isPlain(v) && !open.has(key)) out[k] = merge(cur, v, key, open);
    else out[k] = v;
  }
  return out;
}

// Environment variables that override the file; the usual names for the two services.
const ENV: [string, string, 'string' | 'number' | 'boolean' | 'list'][] = [
  ['PERCH_DOMAIN', 'domain', 'string'],
  ['PERCH_DATA_DIR', 'dataDir', 'string'],
  ['DATABASE_URL', 'databaseUrl', 'string'],
  ['REDIS_URL', 'redisUrl', 'string'],
  ['PERCH_NODE_ID', 'nodeId', 'string'],
  ['PERCH_WORKERS', 'workers', 'string'],
  ['PERCH_PUBLIC_ADDRESS', 'cluster.publicAddress', 'string'],
  ['PERCH_LOG_LEVEL', 'logLevel', 'string'],
  ['PERCH_C2S_PORT', 'listen.c2s.port', 'number'],
  ['PERCH_C2S_TLS_PORT', 'listen.c2sDirectTls.port', 'number'],
  ['PERCH_COMPONENT_PORT', 'listen.component.port', 'number'],
  ['PERCH_METRICS_PORT', 'listen.metrics.port', 'number'],
  ['PERCH_UPLOAD_PORT', 'listen.upload.port', 'number'],
  ['PERCH_WEBSOCKET_PORT', 'listen.websocket.port', 'number'],
  ['PERCH_ADMINS', 'admins', 'list'],
  ['PERCH_REGISTRATION', 'registration.enabled', 'boolean'],
  ['PERCH_REQUIRE_STARTTLS', 'tls.requireStartTls', 'boolean'],
];

function setPath(obj: Plain, dotted: string, value: unknown): void {
  const parts = dotted.split('.');
  let cur = obj;
  for (const p of parts.slice(0, -1)) {
    if (!isPlain(cur[p])) cur[p] = {};
    cur = cur[p] as Plain;
  }
  cur[parts[parts.length - 1]!] = value;
}

export function loadConfig(file: string | null, env: NodeJS.ProcessEnv = process.env): Config {
  let raw: Plain = {};
  if (file) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      throw new ConfigError('(file)', `cannot read ${file}: ${(e as Error).message}`);
    }
    const parsed: unknown = YAML.parse(text);
    if (parsed !== null && parsed !== undefined && !isPlain(parsed)) throw new ConfigError('(file)', 'must be a mapping');
    raw = (parsed as Plain | null) ?? {};
  }
  const over: Plain = JSON.parse(JSON.stringify(raw));
  for (const [name, key, type] of ENV) {
    const v = env[name];
    if (v === undefined || v === '') continue;
    let value: unknown = v;
    if (type === 'number') value = Number(v);
    else if (type === 'boolean') value = /^(1|true|yes|on)$/i.test(v);
    else if (type === 'list') value = v.split(',').map((s) => s.trim()).filter(Boolean);
    setPath(over, key, value);
  }
  const merged = merge(defaultConfig() as unknown as Plain, over, '', new Set(['components'])) as unknown as Config;
  if (file && !path.isAbsolute(merged.dataDir) && raw.dataDir !== undefined) {
    merged.dataDir = path.resolve(path.dirname(file), merged.dataDir);
  }
  return validate(merged);
}

function num(key: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new ConfigError(key, `must be an integer from ${min} to ${max} (got ${JSON.stringify(v)})`);
  }
  return v;
}
function str(key: string, v: unknown, nullable = false): string | null {
  if (v === null && nullable) return null;
  if (typeof v !== 'string' || v === '') throw new ConfigError(key, `must be a non-empty string${nullable ? ' or null' : ''}`);
  return v;
}
function bool(key: string, v: unknown): boolean {
  if (typeof v !== 'boolean') throw new ConfigError(key, 'must be true or false');
  return v;
}

export function validate(c: Config): Config {
  const domain = str('domain', c.domain)!;
  const d = tryParseJid(domain);
  if (!d || d.local || d.resource) throw new ConfigError('domain', `not a valid domain name: ${domain}`);
  c.domain = d.domain;
  str('dataDir', c.dataDir);
  str('databaseUrl', c.databaseUrl, true);
  if (c.databaseUrl && !/^postgres(ql)?:\/\//.test(c.databaseUrl)) throw new ConfigError('databaseUrl', 'must be a postgres:// URL');
  str('redisUrl', c.redisUrl, true);
  if (c.redisUrl) {
    // One server, a Sentinel-watched master or a Redis Cluster (storage/redis-connection.ts reads them).
    try {
      parseRedisUrl(c.redisUrl);
    } catch (err) {
      if (err instanceof RedisUrlError) throw new ConfigError('redisUrl', err.message);
      throw err;
    }
  }
  str('nodeId', c.nodeId);
  if (c.nodeId === 'auto') c.nodeId = `node-${randomBytes(4).toString('hex')}`;
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(c.nodeId)) throw new ConfigError('nodeId', 'letters, digits, _ . - only');
  c.workers = validateWorkers(c);
  if (!['debug', 'info', 'warn', 'error'].includes(c.logLevel)) throw new ConfigError('logLevel', 'one of debug, info, warn, error');
  for (const name of ['c2s', 'c2sDirectTls', 'component', 'metrics', 'upload', 'websocket', 'websocketPlain'] as const) {
    const l = c.listen[name];
    if (l === null || l === undefined) { c.listen[name] = null; continue; }
    if (!isPlain(l)) throw new ConfigError(`listen.${name}`, 'must be {host, port} or null');
    str(`listen.${name}.host`, l.host);
    num(`listen.${name}.port`, l.port, 0, 65535);
  }
  str('tls.cert', c.tls.cert, true);
  str('tls.key', c.tls.key, true);
  if ((c.tls.cert === null) !== (c.tls.key === null)) throw new ConfigError('tls', 'cert and key go together');
  bool('tls.requireStartTls', c.tls.requireStartTls);
  if (!Array.isArray(c.admins)) throw new ConfigError('admins', 'must be a list of JIDs');
  c.admins = c.admins.map((a, i) => {
    const j = typeof a === 'string' ? tryParseJid(a) : null;
    if (!j || !j.local || j.resource) throw new ConfigError(`admins[${i}]`, `not a bare JID: ${String(a)}`);
    return j.bareString();
  });
  bool('registration.enabled', c.registration.enabled);
  num('limits.maxStanzaSize', c.limits.maxStanzaSize, 1024, 64 * 1024 * 1024);
  num('limits.maxDepth', c.limits.maxDepth, 4, 1000);
  num('limits.authTimeout', c.limits.authTimeout, 1, 3600);
  num('limits.bytesPerSecond', c.limits.bytesPerSecond, 1024, 1024 * 1024 * 1024);
  num('limits.offlineMessages', c.limits.offlineMessages, 0, 1_000_000);
  num('limits.authFailuresPerIp', c.limits.authFailuresPerIp, 1, 1_000_000);
  num('limits.authFailuresPerAccount', c.limits.authFailuresPerAccount, 1, 1_000_000);
  num('ping.idleSeconds', c.ping.idleSeconds, 5, 86400);
  num('ping.timeoutSeconds', c.ping.timeoutSeconds, 1, 3600);
  num('streamManagement.resumeSeconds', c.streamManagement.resumeSeconds, 0, 86400);
  num('scramIterations', c.scramIterations, 4096, 1_000_000);
  if (!isPlain(c.components)) throw new ConfigError('components', 'must map component domains to secrets');
  for (const [dom, secret] of Object.entries(c.components)) {
    const j = tryParseJid(dom);
    if (!j || j.local || j.resource) throw new ConfigError(`components.${dom}`, 'not a valid domain');
    str(`components.${dom}`, secret);
  }
  validateMuc(c);
  validateUpload(c);
  validateDirectory(c);
  validateWebSocket(c);
  if (!/^[a-z_]{1,63}$/.test(String(c.archive.fulltextLanguage))) {
    throw new ConfigError('archive.fulltextLanguage', 'a PostgreSQL text search configuration name such as simple or english');
  }
  if (!['always', 'roster', 'never'].includes(c.archive.defaultPolicy)) throw new ConfigError('archive.defaultPolicy', 'one of always, roster, never');
  return c;
}

/** The most worker processes one machine runs. */
export const MAX_WORKERS = 256;

/** A count (a number, or digits from the environment or --workers) or 'auto'. */
function validateWorkers(c: Config): number | 'auto' {
  const raw: unknown = c.workers;
  if (raw === 'auto') return 'auto';
  const n = typeof raw === 'string' && /^\d+$/.test(raw) ? Number(raw) : raw;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > MAX_WORKERS) {
    throw new ConfigError('workers', `must be auto or an integer from 1 to ${MAX_WORKERS} (got ${JSON.stringify(raw)})`);
  }
  if (n > 1 && (c.databaseUrl === null || c.redisUrl === null)) {
    const missing = [c.databaseUrl === null ? 'databaseUrl (PostgreSQL)' : null, c.redisUrl === null ? 'redisUrl (Redis)' : null].filter(Boolean).join(' and ');
    throw new ConfigError('workers', `${n} workers need PostgreSQL and Redis; ${missing} not configured: the embedded database (PGlite) is one process's and the in-process session store cannot be shared between processes`);
  }
  return n;
}

function validateMuc(c: Config): void {
  const m = c.muc;
  if (!isPlain(m)) throw new ConfigError('muc', 'must be a mapping');
  if (m.services === null) m.services = [{ domain: `conference.${c.domain}`, name: 'Chatrooms' }];
  if (!Array.isArray(m.services)) throw new ConfigError('muc.services', 'must be a list of {domain, name}');
  m.services = m.services.map((s: unknown, i) => {
    if (!isPlain(s)) throw new ConfigError(`muc.services[${i}]`, 'must be {domain, name}');
    const domain = str(`muc.services[${i}].domain`, s.domain)!;
    const j = tryParseJid(domain);
    if (!j || j.local || j.resource || j.domain === c.domain) throw new ConfigError(`muc.services[${i}].domain`, 'a domain other than the server\'s own');
    const name = s.name === undefined ? 'Chatrooms' : str(`muc.services[${i}].name`, s.name)!;
    return { domain: j.domain, name };
  });
  if (!['anyone', 'local', 'admins'].includes(m.roomCreation)) throw new ConfigError('muc.roomCreation', 'one of anyone, local, admins');
  num('muc.messagesPerSecond', m.messagesPerSecond, 1, 1_000_000);
  num('muc.messageBurst', m.messageBurst, 1, 1_000_000);
  num('muc.maxNickLength', m.maxNickLength, 1, 1023);
  num('muc.idleUnloadSeconds', m.idleUnloadSeconds, 1, 86400);
}

function validateDirectory(c: Config): void {
  if (!isPlain(c.directory)) throw new ConfigError('directory', 'must be a mapping');
  const raw = c.directory.ldap as unknown;
  if (raw === null || raw === undefined) { c.directory = { ldap: null }; return; }
  if (!isPlain(raw)) throw new ConfigError('directory.ldap', 'must be a mapping or null');
  const defaults: Omit<LdapConfig, 'url' | 'baseDn'> = {
    bindDn: null, bindPassword: null, bindPasswordFile: null, userBaseDn: null, groupBaseDn: null,
    userFilter: '(objectClass=inetOrgPerson)', userIdAttribute: 'uid',
    groupFilter: '(objectClass=groupOfNames)', groupNameAttribute: 'cn', memberAttribute: 'member',
    ouFromDn: true, syncIntervalMinutes: 60, auth: 'local', timeoutMs: 30_000,
  };
  for (const k of Object.keys(raw)) if (!(k in defaults) && k !== 'url' && k !== 'baseDn') throw new ConfigError(`directory.ldap.${k}`, 'unknown key');
  const l = { ...defaults, ...raw } as LdapConfig;
  const url = str('directory.ldap.url', l.url)!;
  if (!/^ldaps?:\/\/[^/]+\/?$/i.test(url)) throw new ConfigError('directory.ldap.url', 'an ldap://host:port or ldaps://host:port URL');
  str('directory.ldap.baseDn', l.baseDn);
  for (const k of ['bindDn', 'bindPassword', 'bindPasswordFile', 'userBaseDn', 'groupBaseDn'] as const) str(`directory.ldap.${k}`, l[k], true);
  if (l.bindPassword !== null && l.bindPasswordFile !== null) throw new ConfigError('directory.ldap.bindPassword', 'give bindPassword or bindPasswordFile, not both');
  for (const k of ['userFilter', 'groupFilter'] as const) {
    const f = str(`directory.ldap.${k}`, l[k])!;
    if (!f.startsWith('(') || !f.endsWith(')')) throw new ConfigError(`directory.ldap.${k}`, 'an LDAP filter in parentheses');
  }
  for (const k of ['userIdAttribute', 'groupNameAttribute'] as const) {
    if (!/^[A-Za-z][A-Za-z0-9-]*$/.test(str(`directory.ldap.${k}`, l[k])!)) throw new ConfigError(`directory.ldap.${k}`, 'an attribute name');
  }
  if (!['member', 'uniqueMember', 'memberUid'].includes(l.memberAttribute)) throw new ConfigError('directory.ldap.memberAttribute', 'one of member, uniqueMember, memberUid');
  bool('directory.ldap.ouFromDn', l.ouFromDn);
  num('directory.ldap.syncIntervalMinutes', l.syncIntervalMinutes, 0, 7 * 24 * 60);
  num('directory.ldap.timeoutMs', l.timeoutMs, 100, 600_000);
  if (!['local', 'ldap'].includes(l.auth)) throw new ConfigError('directory.ldap.auth', 'one of local, ldap');
  c.directory = { ldap: l };
}

/** A positive number (fractions allowed: quotas in MB, days) or null. */
function positive(key: string, v: unknown, max: number): number | null {
  if (v === null) return null;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || v > max) throw new ConfigError(key, `must be a number above 0 and at most ${max}, or null (got ${JSON.stringify(v)})`);
  return v;
}

function validateUpload(c: Config): void {
  const u = c.upload;
  if (!isPlain(u)) throw new ConfigError('upload', 'must be a mapping');
  if (u.domain !== null) {
    const domain = str('upload.domain', u.domain, true)!;
    const j = tryParseJid(domain);
    if (!j || j.local || j.resource || j.domain === c.domain) throw new ConfigError('upload.domain', "a domain other than the server's own");
    u.domain = j.domain;
  } else {
    u.domain = `upload.${c.domain}`;
  }
  if (c.muc.services?.some((s) => s.domain === u.domain)) throw new ConfigError('upload.domain', 'already a MUC service domain');
  if (u.publicUrl !== null) {
    const raw = str('upload.publicUrl', u.publicUrl, true)!;
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw new ConfigError('upload.publicUrl', `not a URL: ${raw}`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new ConfigError('upload.publicUrl', 'must be an https:// (or http:// behind a proxy) URL');
    if (url.search || url.hash) throw new ConfigError('upload.publicUrl', 'no query or fragment');
    u.publicUrl = url.toString().replace(/\/+$/, '');
  }
  num('upload.maxFileSizeKb', u.maxFileSizeKb, 1, 100 * 1024 * 1024);
  positive('upload.quotaPerUserMb', u.quotaPerUserMb, 1024 * 1024 * 1024);
  positive('upload.quotaPerServiceMb', u.quotaPerServiceMb, 1024 * 1024 * 1024);
  positive('upload.expireUnreferencedDays', u.expireUnreferencedDays, 36500);
  num('upload.slotSeconds', u.slotSeconds, 10, 86400);
}

/** Addresses only this host can reach: the plain WebSocket face must not be exposed without TLS. */
const LOOPBACK = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|::1|localhost|::ffff:127\.\d{1,3}\.\d{1,3}\.\d{1,3})$/i;

function validateWebSocket(c: Config): void {
  const p = c.listen.websocketPlain;
  if (p && !LOOPBACK.test(p.host)) throw new ConfigError('listen.websocketPlain.host', 'plain HTTP is for a proxy on this host: bind it to a loopback address (127.0.0.1 or ::1)');
  if (!isPlain(c.cluster)) throw new ConfigError('cluster', 'must be a mapping');
  const pub = str('cluster.publicAddress', c.cluster.publicAddress, true);
  if (pub !== null && pub !== undefined && !/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/.test(pub)) {
    throw new ConfigError('cluster.publicAddress', `host or host:port, got ${pub}`);
  }
  const w = c.websocket;
  if (!isPlain(w)) throw new ConfigError('websocket', 'must be a mapping');
  if (!Array.isArray(w.allowedOrigins)) throw new ConfigError('websocket.allowedOrigins', 'must be a list of origins (empty for any)');
  w.allowedOrigins.forEach((o, i) => {
    str(`websocket.allowedOrigins.${i}`, o);
    if (!/^https?:\/\/[^/]+\/?$/i.test(o)) throw new ConfigError(`websocket.allowedOrigins.${i}`, `an origin is scheme://host[:port], got ${o}`);
  });
  if (w.publicUrl !== null) {
    const raw = str('websocket.publicUrl', w.publicUrl, true)!;
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw new ConfigError('websocket.publicUrl', `not a URL: ${raw}`);
    }
    if (url.protocol !== 'wss:' && url.protocol !== 'ws:') throw new ConfigError('websocket.publicUrl', 'must be a wss:// (or ws:// for testing) URL');
    w.publicUrl = url.toString();
  }
}
