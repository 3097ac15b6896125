// The export format (docs/export-format.md): JSON Lines, gzipped. A header line, one record per line
// in a fixed order of kinds (what a record refers to comes before it), and a trailer with the counts.
// Here: the record types, the line codec (record <-> JSON, bytes as base64, times as ISO strings) and
// the check of every line an import reads.
import { open } from 'node:fs/promises';
import type {
  CategoryRecord, ChatPolicyRecord, ChatRoomRecord, ChatServiceSettings, RoomAffiliation, RosterItem, StoredScram,
} from '../../storage/types.js';
import type { PubsubAffiliation, PubsubSubscriptionState } from '../../storage/sql-pubsub.js';

export const FORMAT = 'perch-export';
/** What this server writes; it reads these too (version 1: before the pubsub kinds). */
export const VERSION = 2;
export const READ_VERSIONS: readonly number[] = [1, 2];

export const LEVELS = ['all', 'users', 'directory', 'categories', 'rooms', 'content', 'pubsub'] as const;
export type Level = (typeof LEVELS)[number];

/** Record kinds in the order a file holds them; each kind belongs to one level. */
export const KINDS = [
  'user', 'roster-item', 'roster-pending', 'user-data', 'offline',
  'group', 'org-unit', 'user-org-unit',
  'addin', 'settings', 'policy', 'category',
  'chat-room', 'muc-room', 'invitation',
  'pubsub-node', 'pubsub-affiliation', 'pubsub-subscription', 'pubsub-item',
  'message',
] as const;
export type Kind = (typeof KINDS)[number];

export const KIND_LEVEL: Record<Kind, Exclude<Level, 'all'>> = {
  'user': 'users', 'roster-item': 'users', 'roster-pending': 'users', 'user-data': 'users', 'offline': 'users',
  'group': 'directory', 'org-unit': 'directory', 'user-org-unit': 'directory',
  'addin': 'categories', 'settings': 'categories', 'policy': 'categories', 'category': 'categories',
  'chat-room': 'rooms', 'muc-room': 'rooms', 'invitation': 'users',
  // PEP nodes (service: an account's bare JID) travel with level users, the pubsub service's with
  // level pubsub (see pubsubLevel).
  'pubsub-node': 'users', 'pubsub-affiliation': 'users', 'pubsub-subscription': 'users', 'pubsub-item': 'users',
  // Personal archives travel with level users, room archives with level content (see messageLevel).
  'message': 'content',
};

export interface Header {
  format: typeof FORMAT;
  version: number;
  created: string;
  domain: string;
  level: Level;
  scope: string[];
  since: string | null;
}

export type Scram = { salt: string; iterations: number; storedKey: string; serverKey: string };

export type DataRecord =
  // sha256 null: an account imported with SCRAM-SHA-1 keys only (XEP-0227), until its next password.
  | { type: 'user'; username: string; disabled: boolean; createdAt: string; sha1: Scram; sha256: Scram | null }
  | ({ type: 'roster-item'; username: string } & RosterItem)
  | { type: 'roster-pending'; username: string; jid: string; stanza: string }
  | { type: 'user-data'; username: string; kind: string; key: string; value: string }
  | { type: 'offline'; username: string; stanza: string; stamp: string }
  | { type: 'group'; name: string; description: string; members: string[] }
  | { type: 'org-unit'; path: string; description: string }
  | { type: 'user-org-unit'; user: string; path: string }
  | { type: 'addin'; service: string; name: string; url: string }
  | ({ type: 'settings'; service: string } & ChatServiceSettings)
  | ({ type: 'policy' } & ChatPolicyRecord)
  | ({ type: 'category' } & Omit<CategoryRecord, never>)
  // The room's own `type` (normal or auditorium) travels as roomType: `type` names the record's kind.
  | ({ type: 'chat-room' } & Omit<ChatRoomRecord, 'createdAt' | 'type'> & { roomType: ChatRoomRecord['type']; createdAt: string })
  | {
    type: 'muc-room'; service: string; name: string; config: Record<string, unknown>; affiliations: Record<string, RoomAffiliation>;
    subject: { text: string; nick: string; stamp: string } | null; createdAt: string; persistent: boolean;
  }
  | { type: 'invitation'; user: string; service: string; room: string; inviter: string; at: string }
  // Publish-subscribe (XEP-0060): service is an account's bare JID (PEP) or the pubsub service's domain.
  | { type: 'pubsub-node'; service: string; node: string; owner: string; config: Record<string, string | string[]>; createdAt: string }
  | { type: 'pubsub-affiliation'; service: string; node: string; jid: string; affiliation: PubsubAffiliation }
  | { type: 'pubsub-subscription'; service: string; node: string; jid: string; state: PubsubSubscriptionState }
  // Items of a node come in publish order, oldest first.
  | { type: 'pubsub-item'; service: string; node: string; id: string; publisher: string; payload: string; stamp: string }
  | {
    type: 'message'; archive: string; stanzaId: string; stamp: string; fromJid: string; realJid: string | null;
    body: string | null; stanza: string; retracted: boolean;
  };

export interface Trailer { type: 'end'; counts: Partial<Record<Kind, number>> }

export function scramOut(s: StoredScram): Scram;
export function scramOut(s: StoredScram | null): Scram | null;
export function scramOut(s: StoredScram | null): Scram | null {
  return s && ({ salt: s.salt.toString('base64'), iterations: s.iterations, storedKey: s.storedKey.toString('base64'), serverKey: s.serverKey.toString('base64') });
}
export function scramIn(s: Scram): StoredScram;
export function scramIn(s: Scram | null): StoredScram | null;
export function scramIn(s: Scram | null): StoredScram | null {
  return s && ({ salt: Buffer.from(s.salt, 'base64'), iterations: s.iterations, storedKey: Buffer.from(s.storedKey, 'base64'), serverKey: Buffer.from(s.serverKey, 'base64') });
}

/** A line of the file that cannot be imported: where and why. */
export class FormatError extends Error {
  constructor(readonly line: number, readonly reason: string) {
    super(`line ${line}: ${reason}`);
  }
}

// --- checking a line ------------------------------------------------------------------------------

type Check = (v: unknown) => boolean;
const str: Check = (v) => typeof v === 'string';
const nonEmpty: Check = (v) => typeof v === 'string' && v.length > 0;
const bool: Check = (v) => typeof v === 'boolean';
const int: Check = (v) => Number.isSafeInteger(v) && (v as number) >= 0;
const strOrNull: Check = (v) => v === null || typeof v === 'string';
const strings: Check = (v) => Array.isArray(v) && v.every((x) => typeof x === 'string');
const stringsOrNull: Check = (v) => v === null || strings(v);
const time: Check = (v) => typeof v === 'string' && !Number.isNaN(Date.parse(v));
const oneOf = (...values: string[]): Check => (v) => typeof v === 'string' && values.includes(v);
const object: Check = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);
const base64: Check = (v) => typeof v === 'string' && /^[A-Za-z0-9+/]*={0,2}$/.test(v);
const scram: Check = (v) => object(v) && shapeError(v as Record<string, unknown>, { salt: base64, iterations: int, storedKey: base64, serverKey: base64 }) === null;
const affiliations: Check = (v) => object(v) && Object.values(v as object).every(oneOf('owner', 'admin', 'member', 'outcast'));
const nodeConfig: Check = (v) => object(v) && Object.values(v as object).every((x) => typeof x === 'string' || strings(x));
const subject: Check = (v) => v === null || (object(v) && shapeError(v as Record<string, unknown>, { text: str, nick: str, stamp: time }) === null);

const SHAPES: Record<Kind, Record<string, Check>> = {
  'user': { username: nonEmpty, disabled: bool, createdAt: time, sha1: scram, sha256: (v) => v === null || scram(v) },
  'roster-item': { username: nonEmpty, jid: nonEmpty, name: strOrNull, subscription: oneOf('none', 'to', 'from', 'both'), askOut: bool, approved: bool, groups: strings },
  'roster-pending': { username: nonEmpty, jid: nonEmpty, stanza: str },
  'user-data': { username: nonEmpty, kind: nonEmpty, key: str, value: str },
  'offline': { username: nonEmpty, stanza: str, stamp: time },
  'group': { name: nonEmpty, description: str, members: strings },
  'org-unit': { path: nonEmpty, description: str },
  'user-org-unit': { user: nonEmpty, path: nonEmpty },
  'addin': { service: nonEmpty, name: nonEmpty, url: str },
  'settings': { service: nonEmpty, defaultHistory: int, maxFileSizeKb: int, participantUpdateLimit: int, roomManagementUrl: str },
  'policy': { scope: oneOf('global', 'group', 'user'), subject: str, enabled: bool },
  'category': {
    service: nonEmpty, name: nonEmpty, description: str, allowed: strings, denied: strings, creators: strings,
    invitations: bool, fileUpload: bool, chatHistory: bool, editing: bool,
  },
  'chat-room': {
    service: nonEmpty, room: nonEmpty, category: nonEmpty, name: nonEmpty, description: str, privacy: oneOf('open', 'closed', 'secret'),
    roomType: oneOf('normal', 'auditorium'), invitations: oneOf('inherit', 'off'), disabled: bool, addin: strOrNull,
    members: stringsOrNull, managers: strings, presenters: strings, createdAt: time,
  },
  'muc-room': { service: nonEmpty, name: nonEmpty, config: object, affiliations, subject, createdAt: time, persistent: bool },
  'invitation': { user: nonEmpty, service: nonEmpty, room: nonEmpty, inviter: str, at: time },
  'pubsub-node': { service: nonEmpty, node: nonEmpty, owner: nonEmpty, config: nodeConfig, createdAt: time },
  'pubsub-affiliation': { service: nonEmpty, node: nonEmpty, jid: nonEmpty, affiliation: oneOf('owner', 'publisher', 'publish-only', 'member', 'outcast') },
  'pubsub-subscription': { service: nonEmpty, node: nonEmpty, jid: nonEmpty, state: oneOf('subscribed', 'pending', 'unconfigured') },
  'pubsub-item': { service: nonEmpty, node: nonEmpty, id: nonEmpty, publisher: str, payload: nonEmpty, stamp: time },
  'message': {
    archive: nonEmpty, stanzaId: nonEmpty, stamp: time, fromJid: str, realJid: strOrNull, body: strOrNull, stanza: str, retracted: bool,
  },
};

function shapeError(rec: Record<string, unknown>, shape: Record<string, Check>): string | null {
  for (const [field, check] of Object.entries(shape)) {
    if (!(field in rec)) return `missing field ${field}`;
    if (!check(rec[field])) return `field ${field} has a wrong value: ${JSON.stringify(rec[field])?.slice(0, 80)}`;
  }
  return null;
}

function parseObject(text: string, line: number): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new FormatError(line, `not JSON (${(e as Error).message})`);
  }
  if (!object(v)) throw new FormatError(line, 'not a JSON object');
  return v as Record<string, unknown>;
}

export function parseHeader(text: string): Header {
  const h = parseObject(text, 1);
  if (h.format !== FORMAT) throw new FormatError(1, `not a ${FORMAT} file (no header with format "${FORMAT}")`);
  if (!READ_VERSIONS.includes(h.version as number)) {
    throw new FormatError(1, `format version ${String(h.version)}; this server reads versions ${READ_VERSIONS.join(' and ')}`);
  }
  const err = shapeError(h, { created: time, domain: nonEmpty, level: oneOf(...LEVELS), scope: strings, since: (v) => v === null || time(v) });
  if (err) throw new FormatError(1, `header: ${err}`);
  return h as unknown as Header;
}

/** A record line, checked; the trailer comes back as such. */
export function parseLine(text: string, line: number): DataRecord | Trailer {
  const rec = parseObject(text, line);
  if (rec.type === 'end') {
    if (!object(rec.counts) || !Object.values(rec.counts as object).every(int)) throw new FormatError(line, 'trailer: counts must map kinds to numbers');
    return rec as unknown as Trailer;
  }
  if (typeof rec.type !== 'string' || !(KINDS as readonly string[]).includes(rec.type)) {
    throw new FormatError(line, `unknown record type ${JSON.stringify(rec.type)}`);
  }
  // Files written before categories had an editing policy: editing was allowed.
  if (rec.type === 'category' && !('editing' in rec)) rec.editing = true;
  const err = shapeError(rec, SHAPES[rec.type as Kind]);
  if (err) throw new FormatError(line, `${rec.type}: ${err}`);
  return rec as unknown as DataRecord;
}

/** A pubsub service's level: PEP services (an account's bare JID) go with the users, the pubsub service alone. */
export const pubsubLevel = (service: string): 'users' | 'pubsub' => (service.includes('@') ? 'users' : 'pubsub');

/** A node's records follow its pubsub-node record, node by node: the pubsub kinds share one rank. */
const NODE_OWNED = new Set<Kind>(['pubsub-affiliation', 'pubsub-subscription', 'pubsub-item']);
export const nodeOwned = (k: Kind): boolean => NODE_OWNED.has(k);

/** A user's records follow the user record, page by page: the user's kinds share one rank. */
const USER_OWNED = new Set<Kind>(['roster-item', 'roster-pending', 'user-data', 'offline']);
export const kindRank = (k: Kind): number => KINDS.indexOf(USER_OWNED.has(k) ? 'user' : NODE_OWNED.has(k) ? 'pubsub-node' : k);
export const userOwned = (k: Kind): boolean => USER_OWNED.has(k);

/** What a file starts with: a gzip stream, plain JSON Lines, XML, or something else. */
export async function sniff(path: string): Promise<'gzip' | 'jsonl' | 'xml' | 'unknown'> {
  const fh = await open(path, 'r');
  try {
    const { buffer, bytesRead } = await fh.read(Buffer.alloc(16), 0, 16, 0);
    const head = buffer.subarray(0, bytesRead);
    if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
    const text = head.toString('utf8').replace(/^\uFEFF/, '').trimStart();
    if (text.startsWith('{')) return 'jsonl';
    if (text.startsWith('<')) return 'xml';
    return 'unknown';
  } finally {
    await fh.close();
  }
}
