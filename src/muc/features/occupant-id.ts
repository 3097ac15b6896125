// Occupant identifiers (XEP-0421): every presence and message from an occupant carries the room's
// stable, anonymous id for its user (room core: occupantIdFor), so clients can tell users apart
// across nick changes without seeing real JIDs.
import { MUC_NS } from '../../../protocol/muc.js';
import type { RoomFeature } from '../events.js';

export const occupantId: RoomFeature = {
  name: 'occupant-id',
  init(hooks) {
    hooks.on('presence/build', ({ occupant, presence }) => {
      presence.c('occupant-id', { xmlns: MUC_NS.occupantId, id: occupant.occupantId });
      return undefined;
    }, 10);
    hooks.on('message/build', ({ occupant, out }) => {
      out.c('occupant-id', { xmlns: MUC_NS.occupantId, id: occupant.occupantId });
      return undefined;
    });
    hooks.on('disco/info', ({ features }) => { features.push(MUC_NS.occupantId); return undefined; }, 90);
  },
};
