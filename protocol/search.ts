// Search fields of a MAM query beyond XEP-0431's fulltext, in our namespace urn:x-perch:search:0
// (Clark notation, XEP-0068, as XEP-0431 names its field): the text and how it matches (all words,
// any word, the exact phrase; case-sensitive or not), authors (real bare JIDs or nicks), and, across
// the rooms of a MUC service, a category and a list of rooms. Pure: parses the values the MAM parser
// collected (MamQuery.extra) into a typed request, and lists the fields for the MAM form.
import { NS } from './namespaces.js';
import { StanzaError } from './errors.js';
import { tryParseJid } from './jid.js';
import type { FormField } from './forms.js';

const f = (name: string) => `{${NS.search}}${name}`;

/** The field names (vars), in Clark notation. */
export const SEARCH_FIELD = {
  text: f('text'),
  match: f('match'),
  caseSensitive: f('case-sensitive'),
  authors: f('authors'),
  category: f('category'),
  rooms: f('rooms'),
} as const;

export type SearchMode = 'all' | 'any' | 'exact';
const MODES: readonly SearchMode[] = ['all', 'any', 'exact'];

/** Longest text searched, and most authors and rooms in one query. */
export const SEARCH_LIMITS = { text: 1000, authors: 50, rooms: 1000 } as const;

export interface SearchRequest {
  /** The text and how it matches; absent when the query has no (non-blank) text. */
  text?: { text: string; mode: SearchMode; caseSensitive: boolean };
  /**
   * Authors, one or several: a value with a local part and a domain (user@host) names a real bare JID,
   * anything else a nick. Where the requester may not see real JIDs, a JID is taken as a nick too.
   */
  authors?: string[];
  /** Across rooms only: rooms of this category (compared without case). */
  category?: string;
  /** Across rooms only: these room JIDs (bare, normalised), among those the requester may read. */
  rooms?: string[];
}

function fail(text: string): never {
  throw new StanzaError('bad-request', text);
}

function single(values: string[] | undefined, name: string): string | undefined {
  if (!values) return undefined;
  if (values.length > 1) fail(`field ${name} takes one value`);
  const v = values[0];
  return v === undefined || v === '' ? undefined : v;
}

/** XEP-0004 booleans: 1/true and 0/false. */
function boolean(values: string[] | undefined, name: string): boolean | undefined {
  const v = single(values, name);
  if (v === undefined) return undefined;
  if (v === '1' || v === 'true') return true;
  if (v === '0' || v === 'false') return false;
  return fail(`field ${name} is a boolean (0, 1, false or true)`);
}

/** The field names a query accepts: in a room, or across the rooms of a service. */
export function searchFieldNames(acrossRooms: boolean): string[] {
  const { text, match, caseSensitive, authors, category, rooms } = SEARCH_FIELD;
  return acrossRooms ? [text, match, caseSensitive, authors, category, rooms] : [text, match, caseSensitive, authors];
}

/**
 * Reads our fields from MamQuery.extra (unknown fields were refused by the MAM parser already).
 * Throws StanzaError bad-request for: several values in a single field, a match mode other than
 * all, any or exact, a case-sensitive value that is no boolean, a text over SEARCH_LIMITS.text
 * characters, too many authors or rooms, an invalid room JID, and match or case-sensitive without text.
 */
export function parseSearch(extra: Record<string, string[]> | undefined): SearchRequest {
  const out: SearchRequest = {};
  if (!extra) return out;
  const text = single(extra[SEARCH_FIELD.text], SEARCH_FIELD.text);
  const modeValue = single(extra[SEARCH_FIELD.match], SEARCH_FIELD.match);
  const caseSensitive = boolean(extra[SEARCH_FIELD.caseSensitive], SEARCH_FIELD.caseSensitive);
  if (modeValue !== undefined && !(MODES as readonly string[]).includes(modeValue)) fail(`field ${SEARCH_FIELD.match}: one of ${MODES.join(', ')}`);
  if (text !== undefined && text.length > SEARCH_LIMITS.text) fail(`field ${SEARCH_FIELD.text}: at most ${SEARCH_LIMITS.text} characters`);
  if (text !== undefined && text.trim() !== '') {
    out.text = { text, mode: (modeValue ?? 'all') as SearchMode, caseSensitive: caseSensitive ?? false };
  } else if (modeValue !== undefined || caseSensitive !== undefined) {
    fail(`fields ${SEARCH_FIELD.match} and ${SEARCH_FIELD.caseSensitive} apply to a text: give ${SEARCH_FIELD.text}`);
  }

  const authors = [...new Set((extra[SEARCH_FIELD.authors] ?? []).map((v) => v.trim()).filter((v) => v !== ''))];
  if (authors.length > SEARCH_LIMITS.authors) fail(`field ${SEARCH_FIELD.authors}: at most ${SEARCH_LIMITS.authors} values`);
  if (authors.length > 0) out.authors = authors;

  const category = single(extra[SEARCH_FIELD.category], SEARCH_FIELD.category);
  if (category !== undefined) out.category = category;

  const roomValues = (extra[SEARCH_FIELD.rooms] ?? []).filter((v) => v !== '');
  if (roomValues.length > SEARCH_LIMITS.rooms) fail(`field ${SEARCH_FIELD.rooms}: at most ${SEARCH_LIMITS.rooms} values`);
  if (roomValues.length > 0) {
    out.rooms = [...new Set(roomValues.map((v) => {
      const jid = tryParseJid(v);
      if (!jid || !jid.isBare() || !jid.local) fail(`field ${SEARCH_FIELD.rooms}: not a room JID: ${v}`);
      return jid.toString();
    }))];
  }
  return out;
}

/** An author value naming a real bare JID (user@host), normalised; null for a nick. */
export function authorJid(value: string): string | null {
  const jid = tryParseJid(value);
  return jid && jid.isBare() && jid.local ? jid.toString() : null;
}

/** The fields listed in the MAM form (XEP-0313 §4.1.5), after the standard ones. */
export function searchFormFields(acrossRooms: boolean): FormField[] {
  const fields: FormField[] = [
    { var: SEARCH_FIELD.text, type: 'text-single', label: 'Text to search for', values: [] },
    {
      var: SEARCH_FIELD.match, type: 'list-single', label: 'Match all words, any word, or the exact text', values: ['all'],
      options: MODES.map((value) => ({ value })),
    },
    { var: SEARCH_FIELD.caseSensitive, type: 'boolean', label: 'Case-sensitive', values: ['0'] },
    { var: SEARCH_FIELD.authors, type: 'text-multi', label: 'Authors (bare JIDs or nicks)', values: [] },
  ];
  if (acrossRooms) {
    fields.push(
      { var: SEARCH_FIELD.category, type: 'text-single', label: 'Only rooms of this category', values: [] },
      { var: SEARCH_FIELD.rooms, type: 'jid-multi', label: 'Only these rooms', values: [] },
    );
  }
  return fields;
}
