// The room's archive (XEP-0313 on the room JID): who may read it (archive/pre-read: banned users
// never; members-only and hidden rooms add their rules), and real JIDs only for those who may see them.
import { tryParseJid } from '../../../protocol/jid.js';
import { StanzaError } from '../../../protocol/errors.js';
import { NS } from '../../../protocol/namespaces.js';
import { MAM_NS, MAM_EXTENDED_NS, FULLTEXT_NS } from '../../../protocol/mam.js';
import { answerMamQuery, mamFormQuery } from '../../mam-query.js';
import type { RoomFeature, RoomIq } from '../events.js';
import { AFF_RANK } from '../membership.js';

export const roomArchive: RoomFeature = {
  name: 'room-archive',
  init(hooks, ctx) {
    hooks.on('archive/pre-read', ({ affiliation }) => {
      if (affiliation === 'outcast') throw new StanzaError('forbidden', 'you are banned from this room');
      return undefined;
    }, 100);
    const mayRead = ({ room, from, occupant }: RoomIq) => {
      const affiliation = room.affiliationOf(from.bareString());
      hooks.check('archive/pre-read', { room, bare: from.bareString(), affiliation, occupant });
      return affiliation;
    };
    hooks.iq('get', MAM_NS, (iq) => {
      mayRead(iq);
      return iq.reply(mamFormQuery());
    });
    hooks.iq('set', MAM_NS, (iq) => {
      const { room, stanza, payload, from, occupant } = iq;
      const affiliation = mayRead(iq);
      void answerMamQuery(ctx.server, { stanza, payload, from, to: tryParseJid(room.jid)!, session: null }, {
        archive: room.jid, realJids: room.seesJids(occupant) || AFF_RANK[affiliation] >= AFF_RANK.admin,
      }).then((fin) => iq.reply(fin), (e) => iq.fail(e)); // the result follows the forwarded messages
      return undefined;
    });
    // stanza-id: the room stamps every archived message with its archive id (XEP-0359).
    hooks.on('disco/info', ({ features }) => { features.push(MAM_NS, MAM_EXTENDED_NS, FULLTEXT_NS, NS.sid); return undefined; }, 100);
  },
};
