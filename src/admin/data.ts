// Export and import of the server's data (src/data/) on the admin layer. Admins only; file paths are
// on the server's machine and absolute (the CLI resolves what a person types against its directory).
import { isAbsolute } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { exportData, type ExportResult } from '../data/export.js';
import { importData, type ImportResult } from '../data/import.js';
import { FormatError, KINDS, LEVELS, type Level } from '../data/format.js';
import { modelOf } from '../pchat/operations.js';
import type { ChatChange } from '../pchat/model.js';
import { AdminError, isAdminActor, one, type AdminCommand, type AdminContext, type AnyAdminCommand, type Rendered } from './command.js';
import { boolField, boolInput, chatContext, table } from './chat-context.js';

function pathInput(value: string, name: string): string {
  const p = value.trim();
  if (!isAbsolute(p)) throw new AdminError(`--${name} must be an absolute path on the server's machine, not ${value}`);
  return p;
}

function fileError(e: unknown, what: string): never {
  const err = e as NodeJS.ErrnoException;
  if (err.code && ['ENOENT', 'EACCES', 'EISDIR', 'ENOTDIR', 'EPERM', 'EROFS'].includes(err.code)) {
    throw new AdminError(`cannot ${what}: ${err.message}`, err.code === 'ENOENT' ? 'item-not-found' : 'not-allowed');
  }
  throw e;
}

const services = (ctx: AdminContext) => chatContext(ctx).services;

export const dataExportCommand: AdminCommand<ExportResult> = {
  id: 'data-export', title: 'Export Data',
  instructions: 'Writes the server\'s data, or one level of it, to a gzipped JSON Lines file (docs/export-format.md).',
  fields: [
    { name: 'file', type: 'text-single', label: 'File to write (absolute path on the server\'s machine; .jsonl.gz)', required: true, positional: 0 },
    { name: 'level', type: 'list-single', label: 'What to export', default: ['all'], options: LEVELS.map((l) => ({ value: l })) },
    { name: 'scope', type: 'text-multi', label: 'Only these categories (their rooms and content)' },
    { name: 'since', type: 'text-single', label: 'Only messages since this date (YYYY-MM-DD or an ISO time)' },
  ],
  allowed: isAdminActor,
  async run(ctx, input) {
    const file = pathInput(one(input, 'file'), 'file');
    const level = (one(input, 'level') || 'all') as Level;
    if (!LEVELS.includes(level)) throw new AdminError(`--level takes one of ${LEVELS.join(', ')}`);
    const sinceText = one(input, 'since').trim();
    const since = sinceText ? new Date(sinceText) : null;
    if (since && Number.isNaN(since.getTime())) throw new AdminError(`--since takes a date (YYYY-MM-DD) or an ISO time, not ${sinceText}`);
    const scope = (input.scope ?? []).flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean);
    try {
      return await exportData(ctx.stores, {
        file, level, scope, since, domain: ctx.domain, services: services(ctx), ...(ctx.progress ? { progress: ctx.progress } : {}),
      });
    } catch (e) {
      return fileError(e, `write ${file}`);
    }
  },
  render(r) {
    const total = Object.values(r.counts).reduce((a, b) => a + b, 0);
    const lines = table(['KIND', 'RECORDS'], KINDS.filter((k) => r.counts[k]).map((k) => [k, String(r.counts[k])]));
    const note = `exported ${total} records (level ${r.level}${r.scope.length ? `, categories ${r.scope.join(', ')}` : ''}${r.since ? `, messages since ${r.since}` : ''}) to ${r.file} (${r.bytes} bytes)`;
    return { notes: [{ type: 'info', text: note }], fields: [{ var: 'records', type: 'text-multi', label: 'Records', values: lines }], lines };
  },
};

export type ImportOutput = Omit<ImportResult, 'changed'> & { warnings: string[] };

export const dataImportCommand: AdminCommand<ImportOutput> = {
  id: 'data-import', title: 'Import Data',
  instructions: 'Merges an export file into this server: what has the same name is overwritten. Run with dry-run first to see what would change.',
  fields: [
    { name: 'file', type: 'text-single', label: 'File to read (absolute path on the server\'s machine)', required: true, positional: 0 },
    boolField('dry-run', 'Only report what would change'),
    { name: 'report', type: 'text-single', label: 'Also write the report (JSON) to this file (absolute path)' },
  ],
  allowed: isAdminActor,
  async run(ctx, input) {
    const file = pathInput(one(input, 'file'), 'file');
    const reportFile = one(input, 'report').trim() ? pathInput(one(input, 'report'), 'report') : null;
    const dryRun = boolInput(input, 'dry-run') ?? false;
    let result: ImportResult;
    try {
      result = await importData(ctx.stores, { file, dryRun, services: services(ctx), ...(ctx.progress ? { progress: ctx.progress } : {}) });
    } catch (e) {
      if (e instanceof FormatError) throw new AdminError(`${file}: ${e.message}; nothing was imported`);
      return fileError(e, `read ${file}`);
    }
    if (!dryRun) await reloadLive(ctx, result.changed);
    const { changed: _changed, ...rest } = result;
    const warnings: string[] = [];
    // JIDs inside the records (rosters, lists, archives) keep the exporting server's domain.
    if (result.header.domain !== ctx.domain) warnings.push(`the file was exported by ${result.header.domain}, this server is ${ctx.domain}: JIDs in it keep their domain`);
    const out: ImportOutput = { ...rest, warnings };
    if (reportFile) {
      try {
        await writeFile(reportFile, JSON.stringify(out, null, 2) + '\n');
      } catch (e) {
        fileError(e, `write the report ${reportFile} (the import itself is done)`);
      }
    }
    return out;
  },
  render: importRendered,
};

function importRendered(r: ImportOutput): Rendered {
  const rows = KINDS.filter((k) => r.report[k]).map((k) => {
    const c = r.report[k]!;
    return [k, String(c.created), String(c.overwritten), String(c.unchanged), String(c.skipped)];
  });
  const lines = table(['KIND', 'CREATED', 'OVERWRITTEN', 'UNCHANGED', 'SKIPPED'], rows);
  const notes: Rendered['notes'] = [{
    type: 'info',
    text: r.dryRun ? `dry run: ${r.records} records read from ${r.file}; nothing was changed` : `imported ${r.records} records from ${r.file}`,
  }];
  for (const w of r.warnings) notes.push({ type: 'warn', text: w });
  for (const s of r.skippedReasons) notes.push({ type: 'warn', text: `skipped ${s}` });
  return { notes, fields: [{ var: 'report', type: 'text-multi', label: 'Report', values: lines }], lines };
}

/**
 * The running nodes reload what the import changed, as after any persistent-chat operation. Offline
 * without a cluster bus there is nothing live to tell.
 */
async function reloadLive(ctx: AdminContext, changed: ImportResult['changed']): Promise<void> {
  if (!ctx.server && !ctx.config.redisUrl) return;
  const changes: ChatChange[] = [];
  if (changed.directory) changes.push({ kind: 'directory' });
  if (changed.policies) changes.push({ kind: 'policy' });
  for (const service of changed.services) {
    changes.push({ kind: 'addin', service }, { kind: 'settings', service }, { kind: 'category', service, names: [] });
  }
  const rooms = new Map<string, string[]>();
  for (const r of changed.rooms) rooms.set(r.service, [...(rooms.get(r.service) ?? []), r.room]);
  for (const [service, names] of rooms) changes.push({ kind: 'room', service, names });
  if (changes.length === 0) return;
  const model = await modelOf(chatContext(ctx));
  for (const c of changes) await model.publish(c);
}

export const dataCommands: readonly AnyAdminCommand[] = [dataExportCommand, dataImportCommand];
