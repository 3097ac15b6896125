// Compliance capture in rooms: while capture is enabled, each join, leave, post, history read (join
// history and archive queries: BACKCHAT) and search is recorded in the same commit as the action, and
// a record that cannot be written fails the action. The room core raises build events that carry a
// list of records (occupant/persist, message/persist, history/sending, archive/reading,
// service/search); this file adds to them and the core writes what is there with its own write, so a
// room with capture off takes today's path untouched. Leaves cannot be refused: their records are
// written in the next group commit, and a failure is logged and counted.
import client from 'prom-client';
import { Element } from '../../protocol/xml.js';
import { NS } from '../../protocol/namespaces.js';
import { parseForm } from '../../protocol/forms.js';
import { parseRsm } from '../../protocol/rsm.js';
import { SEARCH_FIELD } from '../../protocol/search.js';
import { interactionOf } from '../../protocol/interactions.js';
import type { ComplianceEvent, ComplianceKind } from '../../storage/types.js';
import type { Module, Server } from '../context.js';
import type { RoomFeature } from '../muc/events.js';
import { mucServices } from '../muc/module.js';
import { complianceState } from './state.js';

const FULLTEXT_FIELD = `{${NS.fulltext}}fulltext`;
const SEARCH_PREFIX = `{${NS.search}}`;

function record(kind: ComplianceKind, room: string | null, actor: string, nick: string | null, content: string,
  detail: Record<string, unknown> | null = null, messageId: string | null = null, stamp = new Date()): ComplianceEvent {
  return { kind, stamp, room, actor, nick, content, messageId, detail };
}

/** What a MAM query asked for: its form fields (FORM_TYPE left out) and its RSM paging. */
export function describeQuery(payload: Element): { fields: Record<string, string[]>; rsm: Record<string, unknown>; queryid?: string } {
  const fields: Record<string, string[]> = {};
  const x = payload.getChild('x', NS.dataForms);
  if (x) {
    try {
      for (const f of parseForm(x).fields) if (f.var !== undefined && f.var !== 'FORM_TYPE') fields[f.var] = f.values;
    } catch {
      // The query parser refused malformed forms already; nothing else to record.
    }
  }
  let rsm: Record<string, unknown> = {};
  try {
    rsm = { ...parseRsm(payload.getChild('set', NS.rsm)) };
  } catch {
    rsm = {};
  }
  return { fields, rsm, ...(payload.attrs.queryid !== undefined ? { queryid: payload.attrs.queryid } : {}) };
}

/** A query that searches (XEP-0431 full text or our search fields) rather than reads a stretch of history. */
export function isSearch(fields: Record<string, string[]>): boolean {
  for (const [name, values] of Object.entries(fields)) {
    if (!values.some((v) => v !== '')) continue;
    if (name === FULLTEXT_FIELD || name.startsWith(SEARCH_PREFIX)) return true;
  }
  return false;
}

/** The query as text: the searched words, else the fields that filter, as name=value. */
function queryText(fields: Record<string, string[]>): string {
  const words = fields[FULLTEXT_FIELD]?.[0] || fields[SEARCH_FIELD.text]?.[0];
  if (words) return words;
  return Object.entries(fields).filter(([, v]) => v.some((x) => x !== '')).map(([k, v]) => `${k}=${v.join(',')}`).join(' ');
}

/** The record of a MAM read: backchat, or search when it carries search fields. */
function readRecord(room: string | null, actor: string, nick: string | null, payload: Element, page: number, results: number,
  extra: Record<string, unknown> = {}): ComplianceEvent {
  const q = describeQuery(payload);
  const detail = { ...extra, fields: q.fields, page, rsm: q.rsm, results, ...(q.queryid !== undefined ? { queryid: q.queryid } : {}) };
  if (isSearch(q.fields)) return record('search', room, actor, nick, queryText(q.fields), detail);
  const filter = queryText(q.fields);
  return record('backchat', room, actor, nick, `archive query: ${results} messages${filter ? ` (${filter})` : ''}`, detail);
}

/** The capture's room feature: installed on every MUC service of a server with capture available. */
export function captureFeature(server: Server, failures: client.Counter<'kind'>): RoomFeature {
  // The state object is read once: the on/off test on the post path is a field read.
  const state = complianceState(server);
  const on = () => state.enabled;
  return {
    name: 'compliance-capture',
    init(hooks, ctx) {
      // Another session of a present occupant is not a user entering the room: only the first is a JOIN
      // (and the last session's departure the PART), as the original recorded users, not connections.
      hooks.on('occupant/persist', ({ room, jid, bare, nick, existing, compliance }) => {
        if (on() && !existing) compliance.push(record('join', room.jid, bare, nick, '', { jid: jid.toString() }));
        return undefined;
      });
      hooks.on('occupant/left', ({ room, occupant, full }) => {
        if (!on()) return undefined;
        ctx.writer.capture([record('part', room.jid, occupant.bare, occupant.nick, '', { jid: full })]).catch((err: unknown) => {
          failures.inc({ kind: 'part' });
          ctx.log.error('compliance: a departure could not be recorded', { err, room: room.jid, actor: occupant.bare });
        });
        return undefined;
      });
      hooks.on('message/persist', (ev) => {
        if (on() && ev.body) {
          // A correction or a retraction (with its fallback text) is a post too, marked with what it changes.
          const i = interactionOf(ev.stanza);
          const detail = i?.kind === 'correction' ? { replaces: i.id } : i?.kind === 'retraction' ? { retracts: i.id } : null;
          ev.compliance.push(record('chat', ev.room.jid, ev.occupant.bare, ev.occupant.nick, ev.body.text(), detail, ev.stanzaId, ev.stamp));
        }
        return undefined;
      });
      hooks.on('history/sending', ({ room, occupant, full, count, compliance }) => {
        if (on()) compliance.push(record('backchat', room.jid, occupant.bare, occupant.nick, `join history: ${count} messages`, { jid: full, messages: count }));
        return undefined;
      });
      hooks.on('archive/reading', ({ room, bare, occupant, payload, page, results, compliance }) => {
        if (on()) compliance.push(readRecord(room.jid, bare, occupant?.nick ?? null, payload, page, results));
        return undefined;
      });
      hooks.on('service/search', ({ service, from, payload, page, results, compliance }) => {
        if (on()) compliance.push(readRecord(null, from.bareString(), null, payload, page, results, { service }));
        return undefined;
      });
    },
  };
}

export const complianceCaptureModule: Module = {
  name: 'compliance-capture',
  init(server) {
    const failures = new client.Counter({
      name: 'perch_compliance_capture_failures_total', labelNames: ['kind'], registers: [server.metrics.registry],
      help: 'Compliance records that could not be written for actions that cannot be refused (departures)',
    });
    const feature = captureFeature(server, failures);
    for (const service of mucServices(server).values()) feature.init(service.hooks, service);
  },
};
