// Multi-user chat (XEP-0045) and what rides on its messages: joins, mediated and direct invitations,
// admin and owner queries, nicks, moderation (XEP-0425), retractions, reactions, replies and
// corrections. Only StanzaError (MucProtocolError is one) for bad input; what a builder makes of a
// parsed query parses to the same thing; a prepared nick is prepared already.
import { check, expectOnly, type FuzzTarget } from '../target.js';
import { XML_TOKENS, elementOf, nsTokens, same } from './common.js';

export const mucTarget: FuzzTarget = {
  name: 'muc',
  files: ['muc', 'moderation', 'interactions'],
  maxLen: 4096,
  dictionary: [
    ...XML_TOKENS, '<presence>', '<message>', '<iq>', '<x ', '</x>', '<history ', 'maxchars=', 'maxstanzas=', 'seconds=', 'since=',
    '<password>', '<invite ', '<decline ', '<reason>', '<continue ', 'thread=', 'jid=', 'nick=', 'affiliation=', 'role=', '<item ',
    '<query ', '<destroy ', 'owner', 'admin', 'member', 'outcast', 'none', 'moderator', 'participant', 'visitor',
    '<moderate ', '<retract ', '<apply-to ', '<reactions ', '<reaction>', '<reply ', '<replace ', 'id=', 'room@muc.example.com',
    'user@example.com/res', '\u00A0', '\u200B', '+1', '2024-01-01T00:00:00Z',
    ...nsTokens('http://jabber.org/protocol/muc', 'http://jabber.org/protocol/muc#user', 'http://jabber.org/protocol/muc#admin',
      'http://jabber.org/protocol/muc#owner', 'jabber:x:conference', 'urn:xmpp:message-moderate:1', 'urn:xmpp:message-moderate:0',
      'urn:xmpp:message-retract:1', 'urn:xmpp:message-retract:0', 'urn:xmpp:fasten:0', 'urn:xmpp:reactions:0', 'urn:xmpp:reply:0',
      'urn:xmpp:message-correct:0'),
  ],
  setup(p) {
    const m = p.muc;
    const { parseModerate, buildModerationNotice, buildTombstone } = p.moderation;
    const { interactionOf, buildDependentTombstone } = p.interactions;
    const { StanzaError } = p.errors;
    const when = new Date(0);
    const moderator = { by: 'room@muc.example.com/mod', occupantId: 'occupant-1' };
    const guard = (f: () => void) => {
      try { f(); } catch (err) { expectOnly(err, StanzaError); }
    };
    return (data) => {
      const el = elementOf(p, data);
      if (!el) {
        const nick = m.prepareNick(data.toString('utf8'));
        if (nick !== null) check(m.prepareNick(nick) === nick, `nick ${JSON.stringify(nick)} is not prepared`);
        return;
      }
      m.parseJoin(el);
      for (const x of [el, ...el.elements()]) {
        guard(() => m.parseInvites(x));
        guard(() => m.parseDirectInvite(x));
        guard(() => {
          const q = m.parseAdminQuery(x);
          for (const item of q.items) if (item.nick !== undefined) check(m.prepareNick(item.nick) === item.nick, 'a nick prepared twice changes');
          check(same(m.parseAdminQuery(m.adminQuery(q.items)), q), `admin query does not survive a rebuild: ${x.toString()}`);
        });
        guard(() => {
          const d = m.parseDestroy(x);
          if (d) check(same(m.parseDestroy(m.destroyQuery(d)), d), `destroy does not survive a rebuild: ${x.toString()}`);
        });
        guard(() => {
          const req = parseModerate(x);
          buildModerationNotice('room@muc.example.com', 'notice', req, moderator).toString();
          buildTombstone(el, req, moderator, when).toString();
        });
      }
      const interaction = interactionOf(el);
      if (interaction) check(interaction.id !== '', 'an interaction without an id');
      buildDependentTombstone(el, when).toString();
    };
  },
};
