// The Actiance layout enterprise archivers ingest (docs/compliance/actiance.xsd): what the original's
// sample XSLT makes of its XmlAdapter output, FileDump / Conversation / RoomID, StartTimeUTC,
// ParticipantEntered | ParticipantLeft | Message | FileTransferStarted | FileTransferEnded, EndTimeUTC,
// with the element names and order of that XSLT. A period file stands alone: whoever was present when the
// period started enters at its start, whoever is present when it ends leaves at its end.
import type { CompliancePresence, ComplianceRecord } from '../../storage/types.js';
import { isInternal, roomName, type ExportInput, type RoomConversation } from './export-model.js';
import { PERCH_COMPLIANCE_NS } from './lync-xml.js';
import { XML_DECLARATION, attrs, xmlText } from './xml-writer.js';

/** Renders conversations as one Actiance file. */
export function renderActianceXml(input: ExportInput, conversations: RoomConversation[]): string {
  const details = input.config.addRoomDetails;
  const out: string[] = [XML_DECLARATION, '\n'];
  const open = details ? `<FileDump xmlns:perch="${PERCH_COMPLIANCE_NS}"` : '<FileDump';
  if (conversations.length === 0) {
    out.push(open, '/>\n');
    return out.join('');
  }
  out.push(open, '>\n');
  const emails = new Map<string, string>();
  const email = (actor: string): string => {
    let m = emails.get(actor);
    if (m === undefined) emails.set(actor, (m = (input.config.addUserDetails ? input.users.get(actor)?.email : null) ?? ''));
    return m;
  };
  const periodStart = input.periodStart.getTime();
  const periodEnd = input.periodEnd.getTime();
  for (const c of conversations) {
    // Actions outside any room: the deployment's own conversation, named after the domain.
    const name = c.room === null ? input.domain : roomName(input, c.room);
    const nameText = xmlText(name);
    const d = c.room === null ? undefined : input.rooms.get(c.room);
    const extra = details && d;
    const first = c.events.length ? c.events[0]!.stamp.getTime() : periodStart;
    const last = c.events.length ? c.events[c.events.length - 1]!.stamp.getTime() : periodEnd;
    const start = Math.min(periodStart, first);
    const end = Math.max(periodEnd, last);
    out.push('  <Conversation', attrs([
      ['Perspective', `${name}_group_channel`],
      ['perch:description', extra ? d.description : undefined],
      ['perch:category', extra && d.category !== null ? d.category : undefined],
      ['perch:privacy', extra && d.privacy !== null ? d.privacy : undefined],
    ]), '>\n');
    out.push('    <RoomID>', nameText, '</RoomID>\n');
    out.push('    <StartTimeUTC>', String(start), '</StartTimeUTC>\n');
    for (const actor of actorsOf(c.presentAtStart)) presence(out, 'ParticipantEntered', actor, start, input, nameText, email(actor));
    for (const e of c.events) event(out, e, input, nameText, email(e.actor));
    for (const actor of actorsOf(c.presentAtEnd)) presence(out, 'ParticipantLeft', actor, end, input, nameText, email(actor));
    out.push('    <EndTimeUTC>', String(end), '</EndTimeUTC>\n');
    out.push('  </Conversation>\n');
  }
  out.push('</FileDump>\n');
  return out.join('');
}

/** The users present, once each (one user may be present under two nicks), in the list's order. */
function actorsOf(list: CompliancePresence[]): string[] {
  return [...new Set(list.map((p) => p.actor))];
}

function head(out: string[], actor: string, ms: number): void {
  // The sample XSLT reads Sender/@userName, which the XmlAdapter never writes (it writes UserName), so
  // the original's LoginName came out empty; ours is the user's bare JID, what an archiver keys on.
  out.push('      <LoginName>', xmlText(actor), '</LoginName>\n');
  out.push('      <DateTimeUTC>', String(ms), '</DateTimeUTC>\n');
}

function presence(out: string[], element: 'ParticipantEntered' | 'ParticipantLeft', actor: string, ms: number, input: ExportInput, nameText: string, email: string): void {
  out.push('    <', element, '>\n');
  head(out, actor, ms);
  out.push('      <InternalFlag>', String(isInternal(actor, input.domain)), '</InternalFlag>\n');
  out.push('      <ConversationID>', nameText, '</ConversationID>\n');
  out.push('      <CorporateEmailID>', xmlText(email), '</CorporateEmailID>\n');
  out.push('    </', element, '>\n');
}

function event(out: string[], e: ComplianceRecord, input: ExportInput, nameText: string, email: string): void {
  const ms = e.stamp.getTime();
  switch (e.kind) {
    case 'join':
      presence(out, 'ParticipantEntered', e.actor, ms, input, nameText, email);
      return;
    case 'part':
      presence(out, 'ParticipantLeft', e.actor, ms, input, nameText, email);
      return;
    case 'upload':
    case 'download': {
      const file = xmlText(e.content);
      out.push('    <FileTransferStarted>\n');
      head(out, e.actor, ms);
      out.push('      <FileName>', file, '</FileName>\n');
      out.push('    </FileTransferStarted>\n');
      out.push('    <FileTransferEnded>\n');
      head(out, e.actor, ms);
      out.push('      <FileName>', file, '</FileName>\n');
      out.push('      <Status>Completed</Status>\n');
      out.push('    </FileTransferEnded>\n');
      return;
    }
    default:
      // CHAT and BACKCHAT (history reads and searches) alike, as the sample XSLT maps them.
      out.push('    <Message>\n');
      head(out, e.actor, ms);
      out.push('      <Content>', xmlText(e.content), '</Content>\n');
      out.push('    </Message>\n');
  }
}
