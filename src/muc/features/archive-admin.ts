// An administrator's rewrite of room archives (clear, remove or replace messages: src/pchat/content-ops.ts)
// reaches the rooms through the model's published changes, so whichever node holds a room hears it: in
// the room's order, the room's keepers of archived content re-read it (the join history), then the
// occupants get each notice (XEP-0425, by the room) once the archive already has the change.
import { randomUUID } from 'node:crypto';
import { buildAdminNotice } from '../../../protocol/moderation.js';
import type { RoomFeature } from '../events.js';
import { serviceModel } from '../governed.js';

export const archiveAdmin: RoomFeature = {
  name: 'archive-admin',
  init(hooks, ctx) {
    serviceModel(ctx.server, ctx.domain)?.model.onChange((change) => {
      if (change.kind !== 'content' || change.service !== ctx.domain || !change.content) return;
      const content = change.content;
      for (const name of change.names ?? []) {
        const room = ctx.loadedRoom(name);
        if (!room) continue; // not held here: it reads its archive when loaded
        ctx.inRoomOrder(name, () => {
          hooks.after('archive/rewritten', { room });
          const targets = room.sessions();
          if (targets.length === 0) return;
          for (const n of content.notices ?? []) {
            const notice = buildAdminNotice(randomUUID(), { room: room.jid, id: n.id, reason: content.reason, ...(n.replacement !== undefined ? { replacement: n.replacement } : {}) });
            room.send(targets, notice.toString(), 'message');
          }
        });
      }
    });
  },
};
