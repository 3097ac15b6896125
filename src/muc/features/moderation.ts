// Message moderation (XEP-0425, versions 1 and 0): a moderator retracts a message; the archive keeps a
// tombstone from the author, and occupants get the notice once the archive has it (in the room's order).
import { randomUUID } from 'node:crypto';
import { StanzaError } from '../../../protocol/errors.js';
import { NS } from '../../../protocol/namespaces.js';
import { parseStanzaString } from '../../../protocol/xml-stream.js';
import { parseModerate, buildModerationNotice, buildTombstone } from '../../../protocol/moderation.js';
import type { RoomFeature, IqHandle } from '../events.js';

export const moderation: RoomFeature = {
  name: 'moderation',
  init(hooks, ctx) {
    // Answered once the archive has the tombstone (result) or has no such message (error).
    const moderate: IqHandle = ({ room, payload, occupant, reply, fail }) => {
      if (occupant?.role !== 'moderator') throw new StanzaError('forbidden', 'only moderators may retract messages');
      const req = parseModerate(payload);
      const moderator = { by: `${room.jid}/${occupant.nick}`, occupantId: occupant.occupantId };
      const notice = buildModerationNotice(room.jid, randomUUID(), req, moderator).toString();
      const archive = ctx.server.stores.archive;
      const slot = room.slot();
      void (async () => {
        // XEP-0425 §7: the archive keeps the author's message, its content replaced by <retracted/>.
        const original = (await archive.query(room.jid, { ids: [req.id], limit: 1 })).entries[0];
        if (!original) return false;
        return archive.retract(room.jid, req.id, buildTombstone(parseStanzaString(original.stanza), req, moderator, new Date()).toString());
      })().then((found) => {
        if (!found) {
          room.release(slot, () => fail(new StanzaError('item-not-found', 'no such message in this room')));
          return;
        }
        hooks.after('message/retracted', { room, id: req.id });
        const targets = room.sessions();
        room.release(slot, () => {
          for (const t of targets) room.deliver(t, notice, 'message');
          reply();
        });
      }, (err) => {
        ctx.log.error('muc: retraction failed', { err, room: room.jid });
        room.release(slot, () => fail(new StanzaError('internal-server-error')));
      });
      return undefined;
    };
    hooks.iq('set', NS.moderate, moderate);
    hooks.iq('set', NS.fasten, moderate);
    hooks.on('disco/info', ({ features }) => { features.push(NS.moderate, NS.moderate0); return undefined; }, 80);
  },
};
