// Join history (XEP-0045 §7.2.14): a per-room cache of the newest archived messages, filled from the
// archive when a room is loaded, so a join costs no query. The joiner's maxstanzas, maxchars, seconds
// and since are applied to it, each message with an XEP-0203 delay from the room.
import { withDelay } from '../../../protocol/delay.js';
import { escapeAttr } from '../../../protocol/xml.js';
import type { HistoryRequest } from '../../../protocol/muc.js';
import type { ArchivedMessage, ComplianceEvent } from '../../../storage/types.js';
import { badValue } from '../option.js';
import type { RoomFeature } from '../events.js';
import type { Room } from '../room.js';

export const MAX_HISTORY = 500;
const FIELD = 'muc#maxhistoryfetch';

interface Entry {
  /** The stanza as broadcast, without 'to'. */
  xml: string;
  stamp: Date;
  /** The stanza with its delay, made at the first join that sends it (the same for every joiner). */
  delayed?: string;
}

/** History for a joiner, oldest first, each with a delay stamp. */
export function historyFor(room: Room, cache: readonly Entry[], req: HistoryRequest | undefined): string[] {
  const decided = room.hooks.decide('history/count', { room, requested: req?.maxstanzas });
  let n = Math.min(decided ?? (room.config.historyLength as number), cache.length);
  if (decided === undefined && req?.maxstanzas !== undefined) n = Math.min(n, req.maxstanzas);
  if (n === 0) return [];
  let since = req?.since?.getTime() ?? -Infinity;
  if (req?.seconds !== undefined) since = Math.max(since, Date.now() - req.seconds * 1000);
  const out: string[] = [];
  let chars = 0;
  for (let i = cache.length - 1; i >= 0 && out.length < n; i--) {
    const h = cache[i]!;
    if (h.stamp.getTime() < since) break;
    const xml = h.delayed ??= withDelay(h.xml, 'message', room.jid, h.stamp);
    if (req?.maxchars !== undefined) {
      chars += xml.length;
      if (chars > req.maxchars) break;
    }
    out.push(xml);
  }
  return out.reverse();
}

export const history: RoomFeature = {
  name: 'history',
  init(hooks, ctx) {
    const caches = new WeakMap<Room, Entry[]>();
    const cacheOf = (room: Room): Entry[] => {
      let c = caches.get(room);
      if (!c) caches.set(room, c = []);
      return c;
    };
    hooks.option({
      key: 'historyLength', field: FIELD, type: 'text-single', order: 17,
      label: `Maximum number of history messages returned by the room (1-${MAX_HISTORY})`,
      initial: () => 30,
      write: (c) => [String(c.historyLength)],
      read: (c, values) => {
        const n = Number(values[0]);
        if (!Number.isInteger(n) || n < 1 || n > MAX_HISTORY) throw badValue(FIELD, `a number from 1 to ${MAX_HISTORY}`);
        c.historyLength = n;
      },
    });
    // Subject changes (archived without a body) are not join history; other messages without a body
    // (reactions, retractions: see interactions.ts) are, as they were when committed.
    const historyOf = (entries: readonly ArchivedMessage[]): Entry[] =>
      entries.filter((e) => !e.retracted && (e.body !== null || !e.stanza.includes('<subject'))).map((e) => ({ xml: e.stanza, stamp: e.stamp }));
    const read = async (room: Room): Promise<Entry[]> => historyOf(await ctx.server.stores.archive.lastN(room.jid, MAX_HISTORY));
    hooks.prepare((room, newest) => {
      caches.set(room, historyOf(newest));
    }, { newest: MAX_HISTORY });
    // Read again in the room's order: messages committed meanwhile wait behind the slot, so none is lost or doubled.
    hooks.on('archive/rewritten', ({ room }) => {
      const slot = room.slot();
      read(room).then((fresh) => room.release(slot, () => caches.set(room, fresh)), (err: unknown) => {
        ctx.log.error('muc: re-reading the join history failed', { err, room: room.jid });
        room.release(slot, () => caches.set(room, []));
      });
      return undefined;
    });
    hooks.on('message/committed', ({ room, xml, stamp, subjectChange }) => {
      if (subjectChange) return undefined;
      const cache = cacheOf(room);
      cache.push({ xml, stamp });
      if (cache.length > MAX_HISTORY + 100) caches.set(room, cache.slice(-MAX_HISTORY));
      return undefined;
    });
    hooks.on('message/retracted', ({ room, id }) => {
      const marker = `id='${id}' by='${escapeAttr(room.jid)}'`;
      caches.set(room, cacheOf(room).filter((h) => !h.xml.includes(marker)));
      return undefined;
    });
    // Before the subject, which ends the join (§7.2.15).
    hooks.on('occupant/joined', ({ room, occupant, full, history: req }) => {
      const out = historyFor(room, cacheOf(room), req);
      if (out.length === 0) return undefined;
      const send = () => { for (const h of out) room.deliver(full, h, 'message'); };
      const sending = { room, occupant, full, count: out.length, compliance: [] as ComplianceEvent[] };
      hooks.build('history/sending', sending);
      if (sending.compliance.length === 0) {
        room.emit(send);
        return undefined;
      }
      // Sent once its record commits; without the record the joiner gets no history (the join stands).
      const slot = room.slot();
      ctx.writer.capture(sending.compliance).then(() => room.release(slot, send), (err: unknown) => {
        ctx.log.error('muc: join history record failed; history not sent', { err, room: room.jid });
        room.release(slot, () => {});
      });
      return undefined;
    }, 10);
    hooks.on('disco/info', ({ room, fields }) => {
      fields.push({ var: FIELD, type: 'text-single', label: 'Maximum number of history messages returned by room', values: [String(room.config.historyLength)] });
      return undefined;
    }, 80);
  },
};
