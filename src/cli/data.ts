// `perch export FILE` and `perch import FILE`: the data-export and data-import operations with the
// file as a positional argument, resolved against the current directory (the operation may run in
// the server, whose directory is another). Import picks the operation by the file's format: --format,
// else what the file starts with.
import { resolve } from 'node:path';
import type { Config } from '../config.js';
import type { AnyAdminCommand } from '../admin/command.js';
import { dataExportCommand, dataImportCommand } from '../admin/data.js';
import { exportXep0227Command, importXep0227Command } from '../admin/xep0227.js';
import { sniff } from '../data/format.js';
import { commandHelp, parseFlags, runAdmin, UsageError, EXIT_OK, type Io } from './admin.js';

/**
 * Import operations by format name. Each takes `file` (positional) and may take `dry-run` and
 * `report`; `detect` says which format a file's first bytes (sniff) mean.
 */
export const IMPORT_FORMATS: Record<string, { cmd: AnyAdminCommand; detect: ReadonlyArray<Awaited<ReturnType<typeof sniff>>> }> = {
  perch: { cmd: dataImportCommand, detect: ['gzip', 'jsonl'] },
  // Prosody's and ejabberd's exports (XEP-0227): accounts, rosters, vCards, offline messages.
  xep0227: { cmd: importXep0227Command, detect: ['xml'] },
};

const PATH_FIELDS = ['file', 'report'];

function absolutePaths(input: Record<string, string[]>): void {
  for (const f of PATH_FIELDS) if (input[f]?.length) input[f] = input[f]!.map((p) => resolve(p));
}

export async function exportMain(config: Config, args: string[], io: Io): Promise<number> {
  let format = 'perch';
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--format') format = args[++i] ?? '';
    else if (a.startsWith('--format=')) format = a.slice('--format='.length);
    else rest.push(a);
  }
  if (format !== 'perch' && format !== 'xep0227') throw new UsageError('--format takes one of perch, xep0227');
  // XEP-0227 (accounts and what they own, PEP included) for Prosody, ejabberd or another Perch.
  const cmd: AnyAdminCommand = format === 'xep0227' ? exportXep0227Command : dataExportCommand;
  const { input, json, help, bare } = parseFlags(cmd, rest, { positional: true });
  if (help) {
    io.out(format === 'xep0227' ? commandHelp(cmd, 'perch export FILE.xml --format xep0227') : EXPORT_HELP);
    return EXIT_OK;
  }
  if (bare.length !== 1) throw new UsageError('usage: perch export FILE [--level L] [--scope CATEGORY ...] [--since DATE] [--format perch|xep0227] [--json]');
  input.file = [bare[0]!];
  absolutePaths(input);
  return runAdmin(config, cmd, io, { input, json });
}

export async function importMain(config: Config, args: string[], io: Io): Promise<number> {
  let format: string | null = null;
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--format') format = args[++i] ?? '';
    else if (a.startsWith('--format=')) format = a.slice('--format='.length);
    else rest.push(a);
  }
  if (format !== null && !IMPORT_FORMATS[format]) throw new UsageError(`--format takes one of ${Object.keys(IMPORT_FORMATS).join(', ')}`);
  const helpAsked = rest.includes('--help') || rest.includes('-h');
  // The file's format picks the operation, and so which flags are valid: read them against every
  // format's fields first, then check them against the chosen one.
  const allFields = new Map(Object.values(IMPORT_FORMATS).flatMap((f) => f.cmd.fields).map((f) => [f.name, f]));
  const probe = { ...IMPORT_FORMATS[format ?? 'perch']!.cmd, fields: [...allFields.values()] };
  const { input, json, bare } = parseFlags(probe, rest.filter((a) => a !== '--help' && a !== '-h'), { positional: true });
  if (helpAsked) {
    io.out(format === null || format === 'perch' ? IMPORT_HELP(Object.keys(IMPORT_FORMATS)) : commandHelp(IMPORT_FORMATS[format]!.cmd, `perch import FILE --format ${format}`));
    return EXIT_OK;
  }
  if (bare.length !== 1) throw new UsageError('usage: perch import FILE [--dry-run] [--report FILE] [--format F] [--json]');
  const file = resolve(bare[0]!);
  if (format === null) {
    const kind = await sniff(file).catch((e: NodeJS.ErrnoException) => {
      throw new UsageError(`cannot read ${file}: ${e.message}`);
    });
    format = Object.entries(IMPORT_FORMATS).find(([, f]) => f.detect.includes(kind))?.[0] ?? null;
    if (format === null) throw new UsageError(`${file}: unknown file format (${kind}); --format takes ${Object.keys(IMPORT_FORMATS).join(', ')}`);
  }
  const chosen = IMPORT_FORMATS[format]!.cmd;
  for (const name of Object.keys(input)) {
    if (!chosen.fields.some((f) => f.name === name && f.positional === undefined)) throw new UsageError(`--${name} does not apply to a ${format} file`);
  }
  const cmd = chosen;
  input.file = [file];
  absolutePaths(input);
  return runAdmin(config, cmd, io, { input, json });
}

const EXPORT_HELP = `Export Data: the server's data, or a level of it, to a gzipped JSON Lines file (docs/export-format.md)

Usage: perch export FILE [--level L] [--scope CATEGORY ...] [--since DATE] [--json]
       perch export FILE.xml --format xep0227 [--json]     (XEP-0227: accounts with their PEP nodes)

  FILE               the file to write (.jsonl.gz); written under a temporary name, renamed when complete
  --level L          all (default), users (accounts, rosters, user data, offline messages, invitations,
                     PEP nodes, personal archives), directory (groups, org units), categories (categories, add-ins,
                     service settings, policies), rooms (room settings, XEP-0045 records), content (room archives),
                     pubsub (the pubsub service's nodes; accounts' PEP nodes go with users)
  --scope CATEGORY   only these categories' categories, rooms and content (repeatable)
  --since DATE       only messages since this date (YYYY-MM-DD or an ISO time)
  --json             print the result as JSON (and no progress)
`;

const IMPORT_HELP = (formats: string[]) => `Import Data: merges an export into this server (docs/export-format.md)

Usage: perch import FILE [--dry-run] [--report FILE] [--format F] [--json]
       perch import FILE.xml [--host HOST] [--dry-run] [--json]     (XEP-0227, from Prosody or ejabberd)

  FILE               the file to read; checked whole first: a bad line is refused with its number, nothing changed
  --dry-run          only report what would be created, overwritten, unchanged or skipped
  --report FILE      also write the report as JSON
  --format F         ${formats.join('|')} (default: from the file's first bytes)
  --json             print the result as JSON (and no progress)

Records with the same name (username, group, category, room...) are overwritten; archived messages
already there are kept. An XML file is read as XEP-0227 (perch import FILE --format xep0227 --help
lists its options: --host takes the file's host as this server's domain).
`;
