// Answers XEP-0313 queries against any archive (a user's own, or a room's): parses the <query/>,
// runs it on the archive store, sends one result message per entry and returns the closing <fin/>.
// The callers decide who may query.
import { Element } from '../protocol/xml.js';
import { NS } from '../protocol/namespaces.js';
import { StanzaError } from '../protocol/errors.js';
import { tryParseJid } from '../protocol/jid.js';
import { parseStanzaString } from '../protocol/xml-stream.js';
import { parseMamQuery, mamQueryForm, mamResultMessage, mamFin, formatDateTime } from '../protocol/mam.js';
import { parseSearch, searchFieldNames, searchFormFields, authorJid } from '../protocol/search.js';
import type { ArchivedMessage, ArchiveQuery, ArchiveQueryResult } from '../storage/types.js';
import type { IqRequest, Server } from './context.js';

export interface MamQueryOptions {
  /**
   * The archive's JID: a room JID or the user's bare JID. Result messages come from it (XEP-0313 §4.2
   * allows omitting 'from' for the user's own archive; the account's bare JID is what clients check
   * results against, so it is always set).
   */
  archive: string;
  /** `with` may match the sender's real bare JID (requester may see real JIDs in a room; always true for a personal archive). */
  realJids: boolean;
  /** Largest page the server returns (default 100); a query without <max/> gets at most 50. */
  maxPage?: number;
  /** Accept our search fields (urn:x-perch:search:0): a room's archive. */
  search?: boolean;
  /** Runs after the query and before any result is sent (page: the page size); a throw sends none. */
  beforeSend?: (result: ArchiveQueryResult, page: number) => Promise<void>;
}

const DEFAULT_MAX_PAGE = 100;
const DEFAULT_PAGE = 50;

/**
 * Parses the <query/>, runs it, sends one result <message/> per entry to req.from (via the router)
 * and returns the <fin/> element for the IQ result. Throws StanzaError (bad-request, item-not-found,
 * feature-not-implemented...) for bad queries.
 */
export async function answerMamQuery(server: Server, req: IqRequest, opts: MamQueryOptions): Promise<Element> {
  const q = parseMamQuery(req.payload, opts.search ? searchFieldNames(false) : []);
  const search = parseSearch(q.extra);
  // The node attribute addresses pubsub archives (XEP-0442); no archive here has nodes.
  if (q.node !== undefined) throw new StanzaError('item-not-found', 'this archive has no nodes');
  const maxPage = opts.maxPage ?? DEFAULT_MAX_PAGE;
  const limit = Math.min(q.rsm.max ?? DEFAULT_PAGE, maxPage);

  const aq: ArchiveQuery = { limit };
  if (q.start) aq.start = q.start;
  if (q.end) aq.end = q.end;
  if (q.with !== undefined) {
    // §4.1.1: a full JID matches exactly; a bare one every resource, i.e. the real bare JID. The
    // store keeps the full JID in fromJid and the bare one in realJid (see the archiving module).
    const jid = tryParseJid(q.with)!; // parseMamQuery normalised it
    if (!jid.isBare()) aq.with = { occupant: q.with };
    // No stored JID is empty: the filter matches nothing while the id checks below still apply.
    else aq.with = { realJid: opts.realJids ? q.with : '' };
  }
  if (q.afterId !== undefined) aq.afterId = q.afterId;
  if (q.beforeId !== undefined) aq.beforeId = q.beforeId;
  const ids = q.ids ? [...new Set(q.ids)] : undefined;
  if (ids) aq.ids = ids;
  if (q.fulltext !== undefined) aq.fulltext = q.fulltext;
  if (search.text) aq.match = search.text;
  if (search.authors) aq.authors = roomAuthors(opts.archive, search.authors, opts.realJids);
  if (q.rsm.after !== undefined) aq.after = q.rsm.after;
  if (q.rsm.before !== undefined) aq.before = q.rsm.before;
  if (q.rsm.index !== undefined) aq.index = q.rsm.index;

  const store = server.stores.archive;
  const result = await store.query(opts.archive, aq);
  // §4.3.3 (after/before) and §4.1.3 (after-id/before-id): an unknown UID is item-not-found.
  if (result.notFound) throw new StanzaError('item-not-found', 'no such message in this archive');
  // An ids query counts at most a few hundred rows, so its count is always there.
  if (ids && (result.count ?? 0) < ids.length) {
    // §4.1.3: so is an unknown UID in ids. Found ids may merely fail the other filters: ask again.
    const filtered = aq.start || aq.end || aq.with || aq.afterId !== undefined || aq.beforeId !== undefined || aq.fulltext !== undefined || aq.match !== undefined || aq.authors !== undefined;
    const existing = filtered ? (await store.query(opts.archive, { ids, limit: 0 })).count ?? 0 : result.count ?? 0;
    if (existing < ids.length) throw new StanzaError('item-not-found', 'no such message in this archive');
  }

  if (opts.beforeSend) await opts.beforeSend(result, limit);
  return sendMamPage(server, req.from.toString(), result, {
    from: opts.archive, flipPage: q.flipPage, queryid: q.queryid, resultId: (e) => e.stanzaId,
  });
}

/**
 * Sends a page of archive entries as MAM result messages to the requester and returns the closing
 * <fin/> (RSM first, last and count). Shared by every archive's query, a room's and a user's as the
 * service's search across rooms; resultId names each result (and so the RSM cursor).
 */
export function sendMamPage(server: Server, to: string, result: ArchiveQueryResult, opts: {
  from: string; flipPage: boolean; queryid: string | undefined; resultId: (e: ArchivedMessage) => string;
}): Element {
  // Straight to the requesting session when it has one: the results must reach it before the IQ
  // result, which the server sends it directly too.
  const rec = server.sessions.get(to);
  const send = (msg: Element) => {
    if (rec) server.router.deliverTo(rec, msg, 'message');
    else server.router.route(msg);
  };
  const page = opts.flipPage ? [...result.entries].reverse() : result.entries;
  for (const entry of page) {
    const stored = parseStanzaString(entry.stanza);
    if (!stored) {
      server.log.warn('unreadable archived stanza skipped', { archive: entry.archive, id: entry.stanzaId });
      continue;
    }
    send(mamResultMessage({ to, from: opts.from, id: opts.resultId(entry), stamp: entry.stamp, forwarded: stored, ...(opts.queryid !== undefined ? { queryid: opts.queryid } : {}) }));
  }

  const first = result.entries[0];
  const last = result.entries[result.entries.length - 1];
  return mamFin({
    complete: result.complete,
    rsm: {
      ...(first ? { first: { id: opts.resultId(first), ...(result.firstIndex !== undefined ? { index: result.firstIndex } : {}) } } : {}),
      ...(last ? { last: opts.resultId(last) } : {}),
      ...(result.count !== undefined ? { count: result.count } : {}),
    },
  });
}

/** The answer to <iq type='get'><query xmlns='urn:xmpp:mam:2'/></iq>: every field queries accept (§4.1.5, XEP-0431, ours when search). */
export function mamFormQuery(search = false): Element {
  return mamQueryForm(search ? searchFormFields(false) : []);
}

/**
 * The authors filter of a room's archive: a user@host value is a real bare JID where the requester
 * may see real JIDs, else a nick like any other value (room@service/value); an occupant JID of this
 * room stays one.
 */
export function roomAuthors(archive: string, values: string[], realJids: boolean): { realJids: string[]; occupants: string[] } {
  const out = { realJids: [] as string[], occupants: [] as string[] };
  for (const v of values) {
    const full = tryParseJid(v);
    if (full && !full.isBare() && full.bareString() === archive) out.occupants.push(full.toString());
    else if (realJids && authorJid(v)) out.realJids.push(authorJid(v)!);
    else out.occupants.push(`${archive}/${v}`);
  }
  return out;
}

/**
 * The answer to <iq type='get'><metadata xmlns='urn:xmpp:mam:2'/></iq> (§5, part of #extended):
 * the archive's first and last entries; an empty <metadata/> for an empty archive.
 */
export async function mamMetadata(server: Server, archive: string): Promise<Element> {
  const store = server.stores.archive;
  const [oldest, newest] = await Promise.all([
    store.query(archive, { limit: 1 }),
    store.query(archive, { before: true, limit: 1 }),
  ]);
  const metadata = new Element('metadata', { xmlns: NS.mam });
  const start = oldest.entries[0];
  const end = newest.entries[0];
  if (start && end) {
    metadata.c('start', { id: start.stanzaId, timestamp: formatDateTime(start.stamp) });
    metadata.c('end', { id: end.stanzaId, timestamp: formatDateTime(end.stamp) });
  }
  return metadata;
}
