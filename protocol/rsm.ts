// Result Set Management (XEP-0059): the request <set/> a client sends to page through a result set,
// and the <set/> a responding entity returns to describe the page it sent.
import { Element } from './xml.js';
import { NS } from './namespaces.js';
import { StanzaError } from './errors.js';

export interface RsmRequest {
  /** Largest page wanted; 0 asks for the count alone (§2.7). */
  max?: number;
  /** UID of the item the page starts after (§2.2). */
  after?: string;
  /** UID of the item the page ends before, or true for an empty <before/>: the last page (§2.5). */
  before?: string | true;
  /** Position of the first item wanted, when no UID is known (§2.6). */
  index?: number;
}

export interface RsmResult {
  /** UID and position of the first item of the page; absent for an empty page (§2.2). */
  first?: { id: string; index?: number };
  /** UID of the last item of the page. */
  last?: string;
  /** Number of items in the full result set. */
  count?: number;
}

/** A malformed <set/> in a request: always bad-request. */
export class RsmError extends StanzaError {
  constructor(text: string) {
    super('bad-request', text);
    this.name = 'RsmError';
  }
}

/** xs:int (the schema's type for max and index): optional whitespace and '+', then digits. */
const NON_NEGATIVE_INT = /^[ \t\r\n]*\+?([0-9]+)[ \t\r\n]*$/;
const XS_INT_MAX = 2 ** 31 - 1;

function parseCount(e: Element): number {
  const text = e.text();
  const m = NON_NEGATIVE_INT.exec(text);
  // A leading '-' fails the pattern, so negatives and non-integers end here alike.
  if (!m) throw new RsmError(`<${e.name}/> must be a non-negative integer`);
  const n = Number(m[1]);
  if (n > XS_INT_MAX) throw new RsmError(`<${e.name}/> is out of range`);
  return n;
}

/**
 * Reads a request <set xmlns='http://jabber.org/protocol/rsm'/>; an absent set (or an element of
 * another namespace) is no paging request. An empty <after/> is the same as none: the page starts
 * before the first item (§2.2).
 */
export function parseRsm(set: Element | undefined): RsmRequest {
  const req: RsmRequest = {};
  if (!set || set.name !== 'set' || set.ns !== NS.rsm) return req;
  const max = set.getChild('max', NS.rsm);
  if (max) req.max = parseCount(max);
  const index = set.getChild('index', NS.rsm);
  if (index) req.index = parseCount(index);
  const after = set.getChild('after', NS.rsm);
  if (after) {
    const id = after.text();
    if (id !== '') req.after = id;
  }
  const before = set.getChild('before', NS.rsm);
  if (before) {
    const id = before.text();
    req.before = id === '' ? true : id;
  }
  return req;
}

/** The <set/> describing a returned page, children in the order of the XEP's examples. */
export function buildRsmResult(result: RsmResult): Element {
  const set = new Element('set', { xmlns: NS.rsm });
  if (result.first) {
    const attrs: Record<string, string> = {};
    if (result.first.index !== undefined) attrs.index = String(result.first.index);
    set.c('first', attrs).t(result.first.id);
  }
  if (result.last !== undefined) set.c('last').t(result.last);
  if (result.count !== undefined) set.c('count').t(String(result.count));
  return set;
}
