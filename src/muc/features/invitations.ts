// Mediated invitations (XEP-0045 §7.8.2, muc#roomconfig_allowinvites): the room sends the invitation
// (with a direct-invitation copy, XEP-0249) naming the inviter by occupant JID, and relays declines.
import { Element } from '../../../protocol/xml.js';
import { tryParseJid } from '../../../protocol/jid.js';
import { MUC_NS, MucProtocolError, mucUserX, parseInvites } from '../../../protocol/muc.js';
import { bool } from '../option.js';
import type { RoomFeature } from '../events.js';

export const invitations: RoomFeature = {
  name: 'invitations',
  init(hooks, ctx) {
    hooks.option(bool('allowInvites', 'muc#roomconfig_allowinvites', 'Allow members to invite new members', 8, false));
    hooks.on('message/normal', ({ room, stanza, from, occupant: occ }) => {
      const x = stanza.getChild('x', MUC_NS.user);
      if (!x) return undefined;
      const parsed = parseInvites(x);
      if (parsed.decline?.to) {
        // The room relays a decline to the inviter, from the room; invitations name the inviter by
        // occupant JID, so a decline addressed to one goes to that occupant's sessions.
        const decline = new Element('message', { from: room.jid });
        decline.append(mucUserX({ decline: { from: from.bareString(), reason: parsed.decline.reason } }));
        const to = parsed.decline.to;
        const inRoom = to.startsWith(`${room.jid}/`);
        const inviter = inRoom ? room.occupants.get(to.slice(room.jid.length + 1)) : undefined;
        if (inviter) room.send([...inviter.sessions.keys()], decline.toString(), 'message');
        else if (!inRoom) {
          decline.attrs.to = to;
          room.emit(() => ctx.server.router.route(decline));
        }
        return true;
      }
      if (parsed.invites.length === 0) throw new MucProtocolError('bad-request', 'nothing to do');
      if (!occ) throw new MucProtocolError('not-acceptable', 'only occupants may invite');
      hooks.check('invite/pre', { room, inviter: occ, anyoneMayInvite: room.config.allowInvites === true });
      for (const invite of parsed.invites) {
        if (!invite.to) continue;
        const to = tryParseJid(invite.to);
        if (!to) throw new MucProtocolError('jid-malformed', 'bad invitee');
        hooks.after('invite/sending', { room, inviter: occ, invitee: to.bareString() });
        const extras: { password?: string } = {};
        hooks.build('invite/build', { room, invite: extras });
        const msg = new Element('message', { from: room.jid, to: invite.to });
        if (stanza.attrs.id) msg.attrs.id = stanza.attrs.id;
        // §7.8.2 lets the room name the inviter by bare, full or occupant JID: the occupant JID keeps a
        // semi-anonymous room's real JIDs to itself (and is what Prosody sends).
        const inviter = `${room.jid}/${occ.nick}`;
        msg.append(mucUserX({ invite: { from: inviter, reason: invite.reason ?? '', continue: invite.continue }, password: extras.password }));
        const conf = msg.c('x', { xmlns: MUC_NS.conference, jid: room.jid });
        if (invite.reason) conf.attrs.reason = invite.reason;
        if (extras.password) conf.attrs.password = extras.password;
        msg.c('body').t(`${inviter} invited you to the room ${room.jid}${invite.reason ? `: ${invite.reason}` : ''}`);
        room.emit(() => ctx.server.router.route(msg));
      }
      return true;
    }, 10);
    hooks.on('disco/info', ({ room, fields }) => {
      fields.push({ var: 'muc#roomconfig_allowinvites', type: 'boolean', label: 'Occupants may invite', values: [room.config.allowInvites ? '1' : '0'] });
      return undefined;
    }, 60);
  },
};
