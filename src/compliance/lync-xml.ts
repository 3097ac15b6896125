// The original's XmlAdapter layout (docs/compliance/perch-compliance.xsd): Conversations / Conversation
// (one per room) / Channel, FirstMessage, Messages / Message (Sender, DateTimeUTC), StartTimeUTC,
// EndTimeUTC. What the original's documents leave open, and Perch's additions in the urn:x-perch:compliance:0
// attributes, are described in docs/compliance.md (Export formats).
import type { ComplianceKind, ComplianceRecord } from '../../storage/types.js';
import {
  isInternal, roomName, timeTriple, userId, xmppUri,
  type ExportInput, type RoomConversation,
} from './export-model.js';
import { XML_DECLARATION, attrs } from './xml-writer.js';

export const PERCH_COMPLIANCE_NS = 'urn:x-perch:compliance:0';

const TYPE: Record<ComplianceKind, string> = {
  join: 'JOIN', part: 'PART', chat: 'CHAT', backchat: 'BACKCHAT', search: 'BACKCHAT', upload: 'FILEUPLOAD', download: 'FILEDOWNLOAD',
};

/** The root's opening tag, shared with nothing else: the namespaces the original declared, and ours. */
const ROOT_OPEN = `<Conversations xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:perch="${PERCH_COMPLIANCE_NS}">`;

/** Renders conversations as one XmlAdapter file. */
export function renderLyncXml(input: ExportInput, conversations: RoomConversation[]): string {
  const out: string[] = [XML_DECLARATION, '\n'];
  if (conversations.length === 0) {
    out.push(ROOT_OPEN.replace(/>$/, '/>'), '\n');
    return out.join('');
  }
  out.push(ROOT_OPEN, '\n');
  const senders = new Map<string, string>();
  for (const c of conversations) {
    if (c.events.length === 0) continue;
    out.push('  <Conversation>\n    <Channel', channelAttrs(input, c.room), '/>\n');
    const first = c.events[0]!;
    out.push('    <FirstMessage');
    message(out, input, senders, first, '      ');
    out.push('    </FirstMessage>\n    <Messages>\n');
    for (const e of c.events) {
      out.push('      <Message');
      message(out, input, senders, e, '        ');
      out.push('      </Message>\n');
    }
    out.push('    </Messages>\n');
    out.push('    <StartTimeUTC', time(first.stamp), '/>\n');
    out.push('    <EndTimeUTC', time(c.events[c.events.length - 1]!.stamp), '/>\n');
    out.push('  </Conversation>\n');
  }
  out.push('</Conversations>\n');
  return out.join('');
}

function channelAttrs(input: ExportInput, room: string | null): string {
  if (room === null) {
    // Actions outside any room: the deployment's own channel (no localpart, no ?join), never logged.
    return attrs([['uri', xmppUri(input.domain)], ['name', input.domain], ['islogged', 'false']]);
  }
  const d = input.rooms.get(room);
  const extra = input.config.addRoomDetails && d;
  return attrs([
    ['uri', xmppUri(room, 'join')],
    ['name', roomName(input, room)],
    // Unknown: empty, as in the original's own sample.
    ['islogged', d ? String(d.logged) : ''],
    ['perch:description', extra ? d.description : undefined],
    ['perch:category', extra && d.category !== null ? d.category : undefined],
    ['perch:privacy', extra && d.privacy !== null ? d.privacy : undefined],
  ]);
}

function message(out: string[], input: ExportInput, senders: Map<string, string>, e: ComplianceRecord, indent: string): void {
  const type = TYPE[e.kind];
  out.push(attrs([
    ['type', type],
    ['content', e.kind === 'join' || e.kind === 'part' ? '' : e.content],
    // The original: the message's id for CHAT only, 0 otherwise. Ours: the compliance record's id.
    ['id', e.kind === 'chat' ? String(e.id) : '0'],
    ['perch:stanzaId', e.kind === 'chat' && e.messageId !== null ? e.messageId : undefined],
    ['perch:kind', e.kind === 'search' ? 'search' : undefined],
  ]), '>\n');
  out.push(indent, '<Sender', sender(input, senders, e.actor), attrs([['perch:nick', e.nick ?? undefined]]), '/>\n');
  out.push(indent, '<DateTimeUTC', time(e.stamp), '/>\n');
}

/** A Sender's attributes but the nick (the same for every event of the user: built once per file). */
function sender(input: ExportInput, cache: Map<string, string>, actor: string): string {
  let s = cache.get(actor);
  if (s === undefined) {
    const u = input.config.addUserDetails ? input.users.get(actor) : undefined;
    s = attrs([
      ['UserName', u?.name ?? undefined],
      ['id', String(userId(actor))],
      ['email', u?.email ?? undefined],
      ['internal', String(isInternal(actor, input.domain))],
      // The unknown user (a download by bare link): an empty URI.
      ['uri', actor === '' ? '' : xmppUri(actor)],
    ]);
    cache.set(actor, s);
  }
  return s;
}

function time(d: Date): string {
  const t = timeTriple(d);
  return attrs([['since1970', t.since1970], ['string', t.string], ['long', t.long]]);
}
