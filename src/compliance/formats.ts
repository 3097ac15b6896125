// What an export run hands to a format, and what it gets back: files to write. Each format is a pure
// function of the run (no I/O), so a run repeated after a crash writes the same names and bytes.
// The layouts are described in docs/compliance.md (Export formats); the XML ones validate against the schemas in
// docs/compliance/.
import type { ComplianceRecord } from '../../storage/types.js';
import { renderActianceXml } from './actiance-xml.js';
import {
  conversationsOf, fileBase, presenceAfter, sortKeys, transfersOf,
  type ExportFile, type ExportInput, type ExportOutput, type RoomConversation,
} from './export-model.js';
import { renderJsonl } from './jsonl.js';
import { renderLyncXml } from './lync-xml.js';

export type { ExportFile, ExportInput, ExportOutput, RoomDetails, UserDetails } from './export-model.js';
export { presenceAfter } from './export-model.js';

/** The attachment manifest's format name, written in every manifest. */
export const MANIFEST_FORMAT = 'perch-compliance-attachments';

/**
 * Renders a run in the configured format: one file for the run, or (oneRoomPerFile) one per room with
 * events (the Actiance layout also one per room where someone was present), plus an attachment manifest
 * beside each file whose events moved files (attachmentsManifest).
 */
export function renderExport(input: ExportInput): ExportOutput {
  const presentAtEnd = presenceAfter(input.presentAtStart, input.events);
  const { format, oneRoomPerFile } = input.config;
  const ext = format === 'jsonl' ? 'jsonl' : 'xml';
  const parts: { base: string; events: ComplianceRecord[]; content: string }[] = [];
  const conversations = conversationsOf(input, presentAtEnd, format === 'actiance');
  const render = (list: RoomConversation[], events: ComplianceRecord[]): string =>
    format === 'jsonl' ? renderJsonl(input, events)
      : format === 'actiance' ? renderActianceXml(input, list)
        : renderLyncXml(input, list);
  if (oneRoomPerFile) {
    for (const c of conversations) parts.push({ base: fileBase(input.runId, c.room), events: c.events, content: render([c], c.events) });
  } else {
    parts.push({ base: fileBase(input.runId), events: input.events, content: render(conversations, input.events) });
  }
  const files: ExportFile[] = [];
  for (const p of parts) {
    const name = `${p.base}.${ext}`;
    files.push({ name, content: p.content });
    const transfers = input.config.attachmentsManifest ? transfersOf(p.events) : [];
    if (transfers.length) files.push({ name: `${p.base}.attach.json`, content: manifest(input.runId, name, transfers) });
  }
  return { files, presentAtEnd };
}

/** The attachment manifest of one output file: every upload and download its events record. */
function manifest(runId: number, file: string, transfers: ComplianceRecord[]): string {
  const body = {
    format: MANIFEST_FORMAT,
    version: 1,
    runId,
    file,
    transfers: transfers.map((e) => ({
      id: e.id,
      kind: e.kind,
      stamp: e.stamp.toISOString(),
      room: e.room,
      actor: e.actor,
      nick: e.nick,
      file: e.content,
      detail: e.detail === null ? null : sortKeys(e.detail),
    })),
  };
  return `${JSON.stringify(body, null, 2)}\n`;
}
