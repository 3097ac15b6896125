// JSON Lines: one object per event with every field of the record, keys always in the same order, ISO
// stamps, and the room's and user's details when the configuration asks for them.
import type { ComplianceRecord } from '../../storage/types.js';
import { isInternal, sortKeys, type ExportInput } from './export-model.js';

/** Renders events (in the given order) as JSON Lines; '' when there are none. */
export function renderJsonl(input: ExportInput, events: ComplianceRecord[]): string {
  const lines: string[] = [];
  for (const e of events) lines.push(JSON.stringify(line(input, e)));
  return lines.length ? `${lines.join('\n')}\n` : '';
}

function line(input: ExportInput, e: ComplianceRecord): Record<string, unknown> {
  const o: Record<string, unknown> = {
    id: e.id,
    stamp: e.stamp.toISOString(),
    kind: e.kind,
    room: e.room,
    actor: e.actor,
    nick: e.nick,
    internal: isInternal(e.actor, input.domain),
    content: e.content,
    messageId: e.messageId,
    detail: e.detail === null ? null : sortKeys(e.detail),
  };
  if (input.config.addRoomDetails && e.room !== null) {
    const d = input.rooms.get(e.room);
    o.roomDetails = d
      ? { name: d.name, description: d.description, category: d.category, privacy: d.privacy, logged: d.logged }
      : null;
  }
  if (input.config.addUserDetails && e.actor !== '') {
    const u = input.users.get(e.actor);
    o.userDetails = u ? { name: u.name, email: u.email } : null;
  }
  return o;
}
