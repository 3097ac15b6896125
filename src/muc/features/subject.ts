// The room subject (XEP-0045 §8.1): who may change it (muc#roomconfig_changesubject), and the subject
// message that ends every join (§7.2.15), with a delay saying when it was set. The room core keeps the
// subject itself (it is part of the room record) and archives each change.
import { Element } from '../../../protocol/xml.js';
import { buildDelay } from '../../../protocol/delay.js';
import { MucProtocolError } from '../../../protocol/muc.js';
import { bool } from '../option.js';
import type { RoomFeature } from '../events.js';
import type { Room } from '../room.js';

function subjectXml(room: Room): string {
  const s = room.subject;
  const m = new Element('message', { from: s?.nick ? `${room.jid}/${s.nick}` : room.jid, type: 'groupchat' });
  const el = m.c('subject');
  if (s?.text) {
    el.t(s.text);
    m.append(buildDelay(room.jid, s.stamp));
  }
  return m.toString();
}

export const subject: RoomFeature = {
  name: 'subject',
  init(hooks) {
    hooks.option(bool('changeSubject', 'muc#roomconfig_changesubject', 'Allow anyone to set the room\'s subject', 9, false));
    hooks.on('message/pre-groupchat', ({ room, occupant, subject: s, body }) => {
      if (s && !body && !room.config.changeSubject && occupant.role !== 'moderator') {
        throw new MucProtocolError('forbidden', 'only moderators may change the subject');
      }
      return undefined;
    }, 10);
    hooks.on('occupant/joined', ({ room, full }) => {
      const xml = subjectXml(room);
      room.emit(() => room.deliver(full, xml, 'message'));
      return undefined;
    }, 0);
    hooks.on('disco/info', ({ room, fields }) => {
      const may = room.config.changeSubject ? '1' : '0';
      fields.push(
        { var: 'muc#roominfo_subject', type: 'text-single', label: 'Subject', values: [room.subject?.text ?? ''] },
        { var: 'muc#roominfo_subjectmod', type: 'boolean', label: 'Occupants may change the subject', values: [may] },
        { var: 'muc#roomconfig_changesubject', type: 'boolean', label: 'Occupants may change the subject', values: [may] },
      );
      return undefined;
    }, 90);
  },
};
