// Message Archive Management (XEP-0313, urn:xmpp:mam:2) on the wire: the query a client sends, the
// form that advertises the supported filters, the result messages and the closing <fin/>. Includes
// the #extended fields (before-id, after-id, ids, flip-page) and full-text search (XEP-0431).
import { Element } from './xml.js';
import { NS } from './namespaces.js';
import { StanzaError, type StanzaErrorCondition } from './errors.js';
import { parseForm, buildForm, formType, type DataForm, type FormField } from './forms.js';
import { tryParseJid } from './jid.js';
import { parseRsm, buildRsmResult, type RsmRequest, type RsmResult } from './rsm.js';
import { parseDateTime, formatDateTime } from './datetime.js';

export { parseDateTime, formatDateTime };

/** NS.mam under its old name, still imported by the room code. */
export const MAM_NS = NS.mam;
/** The XEP-0431 query field, in Clark notation (XEP-0068). */
export const FULLTEXT_FIELD = `{${NS.fulltext}}fulltext`;

export interface MamQuery {
  queryid?: string;
  /** Reserved for pubsub archives (XEP-0442). */
  node?: string;
  start?: Date;
  end?: Date;
  /** Normalized JID the messages must be to or from. */
  with?: string;
  beforeId?: string;
  afterId?: string;
  ids?: string[];
  fulltext?: string;
  /** Values of the additional fields the caller accepted, by field name. */
  extra?: Record<string, string[]>;
  rsm: RsmRequest;
  /** Send the page newest first (§4.3.4); the page itself is unchanged. */
  flipPage: boolean;
}

export class MamError extends StanzaError {
  constructor(condition: StanzaErrorCondition, text: string) {
    super(condition, text);
    this.name = 'MamError';
  }
}

function fail(condition: StanzaErrorCondition, text: string): never {
  throw new MamError(condition, text);
}

/** The field's single value; no value or an empty one counts as not filtering. */
function singleValue(field: FormField): string | undefined {
  if (field.values.length > 1) fail('bad-request', `field ${field.var ?? ''} takes one value`);
  const v = field.values[0];
  return v === undefined || v === '' ? undefined : v;
}

function dateValue(field: FormField): Date | undefined {
  const v = singleValue(field);
  if (v === undefined) return undefined;
  const d = parseDateTime(v);
  if (!d) fail('bad-request', `invalid timestamp in field ${field.var ?? ''}`);
  return d;
}

/**
 * Reads a <query xmlns='urn:xmpp:mam:2'/> (XEP-0313 §4). Throws MamError (or RsmError, both
 * StanzaErrors) for: a form that is malformed, not of type submit or of another FORM_TYPE, invalid
 * timestamps or JID (bad-request), and fields the server does not know (feature-not-implemented,
 * §4.1.5). `extraFields` names further fields the caller advertised and accepts.
 */
export function parseMamQuery(query: Element, extraFields: readonly string[] = []): MamQuery {
  if (query.name !== 'query' || query.ns !== NS.mam) fail('bad-request', 'not a MAM query');
  const q: MamQuery = {
    rsm: parseRsm(query.getChild('set', NS.rsm)),
    flipPage: query.getChild('flip-page', NS.mam) !== undefined,
  };
  if (query.attrs.queryid !== undefined) q.queryid = query.attrs.queryid;
  if (query.attrs.node !== undefined) q.node = query.attrs.node;

  const x = query.getChild('x', NS.dataForms);
  if (!x) return q;
  let form: DataForm;
  try {
    form = parseForm(x);
  } catch (e) {
    fail('bad-request', (e as Error).message);
  }
  if (form.type !== 'submit') fail('bad-request', `unexpected form type: ${form.type}`);
  const formTypeField = form.fields.find((f) => f.var === 'FORM_TYPE');
  if (formTypeField && formType(form) !== NS.mam) fail('bad-request', 'FORM_TYPE must be ' + NS.mam);

  const extras = new Set(extraFields);
  for (const field of form.fields) {
    const name = field.var;
    if (name === undefined || name === 'FORM_TYPE') continue; // fixed fields carry no filter
    switch (name) {
      case 'start': {
        const d = dateValue(field);
        if (d) q.start = d;
        break;
      }
      case 'end': {
        const d = dateValue(field);
        if (d) q.end = d;
        break;
      }
      case 'with': {
        const v = singleValue(field);
        if (v === undefined) break;
        const jid = tryParseJid(v);
        if (!jid) fail('bad-request', 'invalid JID in field with');
        q.with = jid.toString();
        break;
      }
      case 'before-id': {
        const v = singleValue(field);
        if (v !== undefined) q.beforeId = v;
        break;
      }
      case 'after-id': {
        const v = singleValue(field);
        if (v !== undefined) q.afterId = v;
        break;
      }
      case 'ids': {
        const ids = field.values.filter((v) => v !== '');
        if (ids.length > 0) q.ids = ids;
        break;
      }
      case FULLTEXT_FIELD: {
        // XEP-0431 §2.2: only a non-empty value asks for a search.
        const v = singleValue(field);
        if (v !== undefined) q.fulltext = v;
        break;
      }
      default:
        if (!extras.has(name)) fail('feature-not-implemented', `unsupported field: ${name}`);
        (q.extra ??= {})[name] = field.values;
    }
  }
  return q;
}

/**
 * The answer to an IQ get of an empty query (XEP-0313 §4.1.5): every field queries accept, none
 * marked required. `extraFields` are appended after the standard ones.
 */
export function mamQueryForm(extraFields: FormField[] = []): Element {
  const form: DataForm = {
    type: 'form',
    fields: [
      { var: 'FORM_TYPE', type: 'hidden', values: [NS.mam] },
      { var: 'with', type: 'jid-single', values: [] },
      { var: 'start', type: 'text-single', values: [] },
      { var: 'end', type: 'text-single', values: [] },
      { var: 'before-id', type: 'text-single', values: [] },
      { var: 'after-id', type: 'text-single', values: [] },
      { var: 'ids', type: 'list-multi', values: [] },
      { var: FULLTEXT_FIELD, type: 'text-single', values: [] },
      ...extraFields.map((f) => ({ ...f, required: false })),
    ],
  };
  const x = buildForm(form);
  // The list of ids is open: the server lists no options, the <validate/> says so (XEP-0122).
  const ids = x.getChildren('field').find((f) => f.attrs.var === 'ids')!;
  ids.c('validate', { xmlns: NS.xdataValidate, datatype: 'xs:string' }).c('open');
  const query = new Element('query', { xmlns: NS.mam });
  query.append(x);
  return query;
}

export interface MamResultParams {
  /** The querying entity. */
  to: string;
  /** The archive's address, when not the querying account's own. */
  from?: string;
  /** Echoed when the query carried one (§4.2). */
  queryid?: string;
  /** The archive UID of the message. */
  id: string;
  /** When the message was archived. */
  stamp: Date;
  /** The archived message stanza. */
  forwarded: Element;
}

/** One result message (XEP-0313 §4.2) wrapping the archived stanza in XEP-0297 <forwarded/>. */
export function mamResultMessage(p: MamResultParams): Element {
  const attrs: Record<string, string> = { to: p.to };
  if (p.from !== undefined) attrs.from = p.from;
  const message = new Element('message', attrs, [], NS.client);
  const resultAttrs: Record<string, string> = { xmlns: NS.mam };
  if (p.queryid !== undefined) resultAttrs.queryid = p.queryid;
  resultAttrs.id = p.id;
  const forwarded = message.c('result', resultAttrs).c('forwarded', { xmlns: NS.forward });
  forwarded.c('delay', { xmlns: NS.delay, stamp: formatDateTime(p.stamp) });
  // A copy: the stored element stays as it is. XEP-0297 carries the stanza in jabber:client, and
  // the namespace has to be written out since its parent is in another one.
  const archived = p.forwarded.clone();
  const { xmlns: _original, ...attrsWithoutNs } = archived.attrs;
  archived.attrs = { xmlns: NS.client, ...attrsWithoutNs };
  archived.ns = NS.client;
  forwarded.append(archived);
  return message;
}

export interface MamFinParams {
  /** The page reaches the end of the results (§4.3.2). */
  complete: boolean;
  /** False when the results may still change (§4.3.2); true is the default and not written. */
  stable?: boolean;
  rsm: RsmResult;
}

/** The <fin/> payload of the IQ result that ends a query (XEP-0313 §4). */
export function mamFin(p: MamFinParams): Element {
  const attrs: Record<string, string> = { xmlns: NS.mam };
  if (p.complete) attrs.complete = 'true';
  if (p.stable === false) attrs.stable = 'false';
  const fin = new Element('fin', attrs);
  fin.append(buildRsmResult(p.rsm));
  return fin;
}
