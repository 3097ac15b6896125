// What an export run hands to a format, and what every format derives from it the same way: the run's
// conversations (one per room), file names, the time triple, a user's stable id and URI. Pure functions:
// a run repeated after a crash renders the same bytes.
import { createHash } from 'node:crypto';
import type { ComplianceConfig, CompliancePresence, ComplianceRecord } from '../../storage/types.js';

export interface RoomDetails {
  jid: string;
  name: string;
  description: string;
  category: string | null;
  privacy: string | null;
  /** History kept (the category's chat-history switch). */
  logged: boolean;
}
export interface UserDetails {
  jid: string;
  name: string | null;
  email: string | null;
}

export interface ExportInput {
  /** The run's number: part of every file name, so a repeated run replaces its own files. */
  runId: number;
  /** The period the run covers: from the previous run's end to this run's opening. */
  periodStart: Date;
  periodEnd: Date;
  /** The run's events in id order. */
  events: ComplianceRecord[];
  /** Who was in each room when the period started (the previous run's present list). */
  presentAtStart: Record<string, CompliancePresence[]>;
  /**
   * Details of the rooms and users the events name. A room's name and history switch are used
   * whenever the room is here (Channel name and islogged); its description, category and privacy only
   * with addRoomDetails. A user's name and email are used only with addUserDetails.
   */
  rooms: Map<string, RoomDetails>;
  users: Map<string, UserDetails>;
  /** The deployment's domain, for URIs and the internal/federated flag. */
  domain: string;
  config: ComplianceConfig;
}

export interface ExportFile {
  /** A file name without directory, e.g. perch-compliance-000042.xml. */
  name: string;
  content: string;
}

export interface ExportOutput {
  files: ExportFile[];
  /** Who is in each room when the period ends: the next run's presentAtStart. */
  presentAtEnd: Record<string, CompliancePresence[]>;
}

/** Who is present in each room after the events, starting from presentAtStart (joins add, parts remove). */
export function presenceAfter(start: Record<string, CompliancePresence[]>, events: ComplianceRecord[]): Record<string, CompliancePresence[]> {
  const rooms = new Map<string, Map<string, CompliancePresence>>();
  for (const [room, list] of Object.entries(start)) rooms.set(room, new Map(list.map((p) => [`${p.actor}/${p.nick ?? ''}`, p])));
  for (const e of events) {
    if (e.room === null || (e.kind !== 'join' && e.kind !== 'part')) continue;
    let m = rooms.get(e.room);
    if (!m) rooms.set(e.room, (m = new Map()));
    const key = `${e.actor}/${e.nick ?? ''}`;
    if (e.kind === 'join') m.set(key, { actor: e.actor, nick: e.nick });
    else m.delete(key);
  }
  const out: Record<string, CompliancePresence[]> = {};
  for (const [room, m] of rooms) if (m.size > 0) out[room] = [...m.values()];
  return out;
}

/** One room's part of a run (room null: the actions outside any room, e.g. a download by link). */
export interface RoomConversation {
  room: string | null;
  /** The room's events in id order. */
  events: ComplianceRecord[];
  /** Present when the period started and when it ended. */
  presentAtStart: CompliancePresence[];
  presentAtEnd: CompliancePresence[];
}

/**
 * The run's conversations: rooms in the order of their first event, then (withPresenceOnly) rooms that
 * had people present but no event, by JID; the conversation outside rooms comes last.
 */
export function conversationsOf(input: ExportInput, presentAtEnd: Record<string, CompliancePresence[]>, withPresenceOnly: boolean): RoomConversation[] {
  const byRoom = new Map<string, RoomConversation>();
  let outside: RoomConversation | null = null;
  const make = (room: string | null): RoomConversation => ({
    room, events: [],
    presentAtStart: room === null ? [] : input.presentAtStart[room] ?? [],
    presentAtEnd: room === null ? [] : presentAtEnd[room] ?? [],
  });
  for (const e of input.events) {
    let c: RoomConversation | undefined;
    if (e.room === null) c = outside ??= make(null);
    else if (!(c = byRoom.get(e.room))) byRoom.set(e.room, (c = make(e.room)));
    c.events.push(e);
  }
  const out = [...byRoom.values()];
  if (withPresenceOnly) {
    const idle = Object.keys(input.presentAtStart).filter((r) => !byRoom.has(r) && input.presentAtStart[r]!.length > 0).sort();
    for (const r of idle) out.push(make(r));
  }
  if (outside) out.push(outside);
  return out;
}

// File names ---------------------------------------------------------------------------------------------

export const FILE_PREFIX = 'perch-compliance-';
/** The suffix of the file that holds the actions outside any room (a room's suffix always has an '@'). */
export const OUTSIDE_ROOMS = 'outside-rooms';

/**
 * A room JID as a file-name part that is the same on every run and never the same for two rooms: lower
 * case letters, digits, '.', '-' and '@' stay; every other UTF-8 byte (upper case, '_' included) becomes
 * '_' and two hex digits. Very long names keep their first 100 characters and a hash of the whole.
 */
export function roomFilePart(room: string | null): string {
  if (room === null) return OUTSIDE_ROOMS;
  let s = '';
  for (const b of Buffer.from(safeString(room), 'utf8')) {
    const c = String.fromCharCode(b);
    s += /[a-z0-9.@-]/.test(c) ? c : `_${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  if (s.length > 120) s = `${s.slice(0, 100)}-${createHash('sha256').update(room).digest('hex').slice(0, 16)}`;
  return s;
}

/** The base name (no extension) of a run's file: the whole run, or one room's part of it. */
export function fileBase(runId: number, room?: string | null): string {
  const run = FILE_PREFIX + String(runId).padStart(6, '0');
  return room === undefined ? run : `${run}-${roomFilePart(room)}`;
}

// Values -------------------------------------------------------------------------------------------------

/** Lone UTF-16 surrogates replaced by U+FFFD, so the string can be encoded (URIs, hashes, UTF-8). */
export function safeString(s: string): string {
  return s.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');
}

/** .NET ticks (100 ns since 0001-01-01) at the Unix epoch. */
const EPOCH_TICKS = 621355968000000000n;

export interface TimeTriple {
  /** Milliseconds since 1970. */
  since1970: string;
  /** ISO 8601 with seven fractional digits (100 ns, as .NET writes it) and Z. */
  string: string;
  /** .NET ticks. */
  long: string;
}

export function timeTriple(d: Date): TimeTriple {
  const ms = d.getTime();
  return {
    since1970: String(ms),
    string: `${d.toISOString().slice(0, -1)}0000Z`,
    long: String(BigInt(ms) * 10000n + EPOCH_TICKS),
  };
}

/** The user is of this deployment: their domain is the deployment's or a subdomain of it. */
export function isInternal(actor: string, domain: string): boolean {
  if (actor === '') return false;
  const d = actor.slice(actor.lastIndexOf('@') + 1).toLowerCase();
  const own = domain.toLowerCase();
  return d === own || d.endsWith(`.${own}`);
}

/** A bare JID as an xmpp: URI (RFC 5122: the parts percent-encoded where a URI needs it). */
export function xmppUri(jid: string, query?: string): string {
  const at = jid.lastIndexOf('@');
  const enc = (s: string) => encodeURIComponent(safeString(s));
  const path = at < 0 ? enc(jid) : `${enc(jid.slice(0, at))}@${enc(jid.slice(at + 1))}`;
  return `xmpp:${path}${query ? `?${query}` : ''}`;
}

/**
 * A user's id in the XML (the original's xs:int): the first 31 bits of SHA-256 of the bare JID, so the
 * same user has the same id in every run and file; 0 is the unknown user. Not guaranteed unique: the URI
 * is the key.
 */
export function userId(actor: string): number {
  if (actor === '') return 0;
  const n = createHash('sha256').update(safeString(actor)).digest().readUInt32BE(0) & 0x7fffffff;
  return n === 0 ? 1 : n;
}

/** The room's name: its details' name, else the JID's localpart. */
export function roomName(input: ExportInput, room: string): string {
  const d = input.rooms.get(room);
  if (d && d.name !== '') return d.name;
  const at = room.indexOf('@');
  return at < 0 ? room : room.slice(0, at);
}

/** The events that moved a file (uploads and downloads). */
export function transfersOf(events: ComplianceRecord[]): ComplianceRecord[] {
  return events.filter((e) => e.kind === 'upload' || e.kind === 'download');
}

/** JSON with object keys sorted at every level, so a detail object serialises the same every time. */
export function canonicalJson(v: unknown): string {
  return JSON.stringify(sortKeys(v));
}

export function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v !== null && typeof v === 'object' && !(v instanceof Date)) {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) out[k] = sortKeys((v as Record<string, unknown>)[k]);
    return out;
  }
  return v;
}
