// The room's archive (XEP-0313 on the room JID): who may read it (archive/pre-read: banned users
// never; members-only and hidden rooms add their rules), and real JIDs only for those who may see them.
import { tryParseJid } from '../../../protocol/jid.js';
import { StanzaError } from '../../../protocol/errors.js';
import { NS } from '../../../protocol/namespaces.js';
import { answerMamQuery, mamFormQuery } from '../../mam-query.js';
import type { FeatureContext, RoomFeature, RoomIq } from '../events.js';
import type { ComplianceEvent } from '../../../storage/types.js';
import { AFF_RANK } from '../membership.js';

/** Writes the records of a read; a failed write refuses the read (no result is sent). */
async function recorded(ctx: FeatureContext, compliance: ComplianceEvent[]): Promise<void> {
  try {
    await ctx.writer.capture(compliance);
  } catch (err) {
    ctx.log.error('muc: archive read record failed; read refused', { err });
    throw new StanzaError('internal-server-error', 'the read could not be recorded');
  }
}

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
    hooks.iq('get', NS.mam, (iq) => {
      mayRead(iq);
      return iq.reply(mamFormQuery(true));
    });
    hooks.iq('set', NS.mam, (iq) => {
      const { room, stanza, payload, from, occupant } = iq;
      const affiliation = mayRead(iq);
      void answerMamQuery(ctx.server, { stanza, payload, from, to: tryParseJid(room.jid)!, session: null }, {
        archive: room.jid, realJids: room.seesJids(occupant) || AFF_RANK[affiliation] >= AFF_RANK.admin, search: true,
        beforeSend: (result, page) => {
          const reading = { room, bare: from.bareString(), occupant, payload, page, results: result.entries.length, compliance: [] as ComplianceEvent[] };
          hooks.build('archive/reading', reading);
          return reading.compliance.length > 0 ? recorded(ctx, reading.compliance) : Promise.resolve();
        },
      }).then((fin) => iq.reply(fin), (e) => iq.fail(e)); // the result follows the forwarded messages
      return undefined;
    });
    // stanza-id: the room stamps every archived message with its archive id (XEP-0359).
    hooks.on('disco/info', ({ features }) => { features.push(NS.mam, NS.mamExtended, NS.fulltext, NS.search, NS.sid); return undefined; }, 100);
  },
};
