// What an export run hands to a format, and what it gets back: files to write. Each format is a pure
// function of the run (no I/O), so a run repeated after a crash writes the same bytes.
import type { ComplianceConfig, CompliancePresence, ComplianceRecord } from '../../storage/types.js';

export interface RoomDetails {
  jid: string;
  name: string;
  description: string;
  category: string | null;
  privacy: string | null;
  /** History kept (the category's chat-history switch). */
  logged: boolean;
}
export interface UserDetails {
  jid: string;
  name: string | null;
  email: string | null;
}

export interface ExportInput {
  /** The run's number: part of every file name, so a repeated run replaces its own files. */
  runId: number;
  /** The period the run covers: from the previous run's end to this run's opening. */
  periodStart: Date;
  periodEnd: Date;
  /** The run's events in id order. */
  events: ComplianceRecord[];
  /** Who was in each room when the period started (the previous run's present list). */
  presentAtStart: Record<string, CompliancePresence[]>;
  /** Details of the rooms and users the events name (filled when the configuration asks for them). */
  rooms: Map<string, RoomDetails>;
  users: Map<string, UserDetails>;
  /** The deployment's domain, for URIs and the internal/federated flag. */
  domain: string;
  config: ComplianceConfig;
}

export interface ExportFile {
  /** A file name without directory, e.g. perch-compliance-000042.xml. */
  name: string;
  content: string;
}

export interface ExportOutput {
  files: ExportFile[];
  /** Who is in each room when the period ends: the next run's presentAtStart. */
  presentAtEnd: Record<string, CompliancePresence[]>;
}

/** Who is present in each room after the events, starting from presentAtStart (joins add, parts remove). */
export function presenceAfter(start: Record<string, CompliancePresence[]>, events: ComplianceRecord[]): Record<string, CompliancePresence[]> {
  const rooms = new Map<string, Map<string, CompliancePresence>>();
  for (const [room, list] of Object.entries(start)) rooms.set(room, new Map(list.map((p) => [`${p.actor}/${p.nick ?? ''}`, p])));
  for (const e of events) {
    if (e.room === null || (e.kind !== 'join' && e.kind !== 'part')) continue;
    let m = rooms.get(e.room);
    if (!m) rooms.set(e.room, (m = new Map()));
    const key = `${e.actor}/${e.nick ?? ''}`;
    if (e.kind === 'join') m.set(key, { actor: e.actor, nick: e.nick });
    else m.delete(key);
  }
  const out: Record<string, CompliancePresence[]> = {};
  for (const [room, m] of rooms) if (m.size > 0) out[room] = [...m.values()];
  return out;
}

/** Renders a run in the configured format. (Placeholder: JSON Lines only; the formats module replaces it.) */
export function renderExport(input: ExportInput): ExportOutput {
  const lines = input.events.map((e) => JSON.stringify({ ...e, stamp: e.stamp.toISOString() }));
  return {
    files: [{ name: `perch-compliance-${String(input.runId).padStart(6, '0')}.jsonl`, content: lines.length ? `${lines.join('\n')}\n` : '' }],
    presentAtEnd: presenceAfter(input.presentAtStart, input.events),
  };
}
