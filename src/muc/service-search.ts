// Search across rooms: the MAM query (XEP-0313) sent to a MUC service's own JID searches every room
// of the service the requester may read, newest first. A governed service's rooms follow
// src/pchat/access.ts canRead (enabled rooms, categories keeping history, readers by the rules); a
// plain room is readable when it is persistent, public, neither members-only nor password-protected,
// or when the requester's affiliation is member or above, never when outcast. Rooms the requester may
// not read take no part at all: no message, no count, no name. Each result's forwarded message comes
// from room@service/nick and carries the room's <stanza-id by='room'/>; the result's id (the RSM
// cursor) is an opaque token naming the archive row, the room and the stanza id.
import { Element } from '../../protocol/xml.js';
import { NS } from '../../protocol/namespaces.js';
import { StanzaError } from '../../protocol/errors.js';
import { tryParseJid, type Jid } from '../../protocol/jid.js';
import { parseMamQuery, mamQueryForm } from '../../protocol/mam.js';
import { parseSearch, searchFieldNames, searchFormFields, authorJid } from '../../protocol/search.js';
import type { ArchivedMessage, ArchiveQueryResult, ArchiveSearch, ComplianceEvent, RoomRecord } from '../../storage/types.js';
import type { Module, Server } from '../context.js';
import { canRead, affiliationOf } from '../pchat/access.js';
import { serviceModel } from './governed.js';
import { mucServices } from './module.js';
import { sendMamPage } from '../mam-query.js';
import type { MucService } from './service.js';

const DEFAULT_PAGE = 50;
const MAX_PAGE = 100;
/** Standard fields that address one archive's messages; across rooms, authors and rooms say that. */
const SINGLE_ARCHIVE_FIELDS = ['with', 'before-id', 'after-id', 'ids'];
const ROOM_PAGE = 1000;

/** A room the requester may read. */
export interface ReadableRoom {
  jid: string;
  /** The requester may see real JIDs there (authors match by real bare JID). */
  realJids: boolean;
  /** Lower-case category of a governed room. */
  category?: string;
}

async function storedRooms(server: Server, domain: string): Promise<RoomRecord[]> {
  const out: RoomRecord[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await server.stores.rooms.list(domain, { limit: ROOM_PAGE, ...(after !== undefined ? { after } : {}) });
    out.push(...page);
    if (page.length < ROOM_PAGE) return out;
    after = page[page.length - 1]!.name;
  }
}

const RANK: Record<string, number> = { outcast: -1, none: 0, member: 1, admin: 2, owner: 3 };

/** Every room of the service whose archive the user may read. */
export async function readableRooms(server: Server, domain: string, bare: string): Promise<ReadableRoom[]> {
  const g = serviceModel(server, domain);
  const governed = g?.service.governed ? g : undefined;
  const [records, subject] = await Promise.all([
    storedRooms(server, domain),
    governed ? governed.model.subjectOf(bare) : Promise.resolve(undefined),
  ]);
  const admin = server.isAdmin(bare);
  const out: ReadableRoom[] = [];
  const seen = new Set<string>();
  if (governed && subject) {
    const stored = new Map(records.map((r) => [r.name, r]));
    for (const record of governed.service.rooms.values()) {
      seen.add(record.room);
      const category = governed.service.categoryOf(record);
      if (!category || !canRead(subject, record, category)) continue;
      const aff = affiliationOf(subject, record, category);
      const whois = stored.get(record.room)?.config.whois;
      out.push({ jid: `${record.room}@${domain}`, realJids: whois === 'anyone' || aff === 'owner' || subject.admin, category: category.name.toLowerCase() });
    }
  }
  for (const r of records) {
    if (seen.has(r.name)) continue; // governed: the rules above decided
    const c = r.config;
    const aff = admin ? 'owner' : (r.affiliations[bare] ?? 'none');
    const rank = RANK[aff] ?? 0;
    if (rank < 0) continue;
    const open = r.persistent && c.public !== false && c.membersOnly !== true && !c.password && c.locked !== true;
    if (!open && rank < RANK.member!) continue;
    out.push({ jid: `${r.name}@${domain}`, realJids: c.whois === 'anyone' || rank >= RANK.admin! });
  }
  return out;
}

/** The RSM cursor and result id of an entry: the archive row, its room and stanza id, opaque to clients. */
export function searchCursor(e: Pick<ArchivedMessage, 'id' | 'archive' | 'stanzaId'>): string {
  return Buffer.from(`${e.id} ${e.archive} ${e.stanzaId}`, 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): { id: number; archive: string; stanzaId: string } | null {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const m = /^(\d{1,15}) (\S+) (.+)$/s.exec(text);
  if (!m) return null;
  return { id: Number(m[1]), archive: m[2]!, stanzaId: m[3]! };
}

/** The MAM form of a service: the standard fields that apply across rooms, XEP-0431's and ours. */
export function serviceSearchForm(): Element {
  const query = mamQueryForm(searchFormFields(true));
  const x = query.getChild('x', NS.dataForms)!;
  x.children = x.children.filter((c) => typeof c === 'string' || !SINGLE_ARCHIVE_FIELDS.includes(c.attrs.var ?? ''));
  return query;
}

/** Runs a MAM query across the readable rooms; sends the results and returns the <fin/>. */
export async function answerServiceSearch(
  server: Server, domain: string, payload: Element, from: Jid,
  beforeSend?: (result: ArchiveQueryResult, page: number) => Promise<void>,
): Promise<Element> {
  const q = parseMamQuery(payload, searchFieldNames(true));
  if (q.node !== undefined) throw new StanzaError('item-not-found', 'this archive has no nodes');
  if (q.with !== undefined || q.beforeId !== undefined || q.afterId !== undefined || q.ids !== undefined) {
    throw new StanzaError('feature-not-implemented', 'across rooms, search by authors and rooms; with, before-id, after-id and ids address one room\'s archive');
  }
  const search = parseSearch(q.extra);
  const bare = from.bareString();
  let rooms = await readableRooms(server, domain, bare);
  if (search.category !== undefined) {
    const category = search.category.toLowerCase();
    rooms = rooms.filter((r) => r.category === category);
  }
  if (search.rooms) {
    const wanted = new Set(search.rooms);
    rooms = rooms.filter((r) => wanted.has(r.jid));
  }
  const archives = rooms.map((r) => r.jid);
  const readable = new Set(archives);

  const s: ArchiveSearch = { limit: Math.min(q.rsm.max ?? DEFAULT_PAGE, MAX_PAGE) };
  if (q.start) s.start = q.start;
  if (q.end) s.end = q.end;
  if (q.fulltext !== undefined) s.fulltext = q.fulltext;
  if (search.text) s.match = search.text;
  if (search.authors) {
    const realJids = search.authors.map(authorJid).filter((j): j is string => j !== null);
    const occupants: string[] = [];
    for (const v of search.authors) {
      const full = tryParseJid(v);
      if (full && !full.isBare() && readable.has(full.bareString())) occupants.push(full.toString());
      else for (const a of archives) occupants.push(`${a}/${v}`);
    }
    const seeing = rooms.filter((r) => r.realJids).map((r) => r.jid);
    s.authors = { realJids, occupants, ...(seeing.length < archives.length ? { realJidArchives: seeing } : {}) };
  }
  // A cursor must name a row of a room searched now: anything else is unknown (item-not-found),
  // whether the row is missing or in a room the requester may not read.
  const row = async (cursor: string): Promise<number> => {
    const c = decodeCursor(cursor);
    const e = c && readable.has(c.archive) ? await server.stores.archive.get(c.archive, c.stanzaId) : null;
    if (!c || !e || e.id !== c.id) throw new StanzaError('item-not-found', 'no such message in the searched rooms');
    return e.id;
  };
  if (q.rsm.after !== undefined) s.after = await row(q.rsm.after);
  if (q.rsm.before !== undefined) s.before = q.rsm.before === true ? true : await row(q.rsm.before);
  if (q.rsm.index !== undefined) s.index = q.rsm.index;

  const result = await server.stores.archive.search(archives, s);
  if (beforeSend) await beforeSend(result, s.limit);
  return sendMamPage(server, from.toString(), result, { from: domain, flipPage: q.flipPage, queryid: q.queryid, resultId: searchCursor });
}

function register(server: Server, service: MucService): void {
  service.serviceIq(NS.mam, async ({ type, payload, from }) => {
    if (!payload.is('query', NS.mam)) throw new StanzaError('feature-not-implemented', 'the service answers MAM queries only');
    if (type === 'get') return serviceSearchForm();
    return answerServiceSearch(server, service.domain, payload, from, async (result, page) => {
      const search = { service: service.domain, from, payload, page, results: result.entries.length, compliance: [] as ComplianceEvent[] };
      service.hooks.build('service/search', search);
      if (search.compliance.length === 0) return;
      try {
        await service.writer.capture(search.compliance);
      } catch (err) {
        server.log.error('muc: search record failed; search refused', { err });
        throw new StanzaError('internal-server-error', 'the search could not be recorded');
      }
    });
  });
  service.hooks.on('service/disco-info', ({ features }) => {
    features.push(NS.fulltext, NS.search);
    return undefined;
  });
}

export const serviceSearchModule: Module = {
  name: 'muc-service-search',
  init(server) {
    for (const service of mucServices(server).values()) register(server, service);
  },
};
