// The CLI face of the admin operations: flags from a descriptor's fields, help from its labels,
// and its rendered result as text for people or JSON for scripts.
import { tryParseJid } from '../../protocol/jid.js';
import type { Config } from '../config.js';
import { adminCommands, findAdminCommand } from '../admin/catalog.js';
import { failed, type AdminInput, type AnyAdminCommand } from '../admin/command.js';
import { openAdminTarget, Unreachable } from './target.js';
import { ProgressView } from './progress.js';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

export interface Io {
  out(text: string): void;
  err(text: string): void;
  readSecret(prompt: string): Promise<string>;
  /** stderr is a terminal: progress is drawn as a bar in place (else as plain lines). */
  errIsTty?: boolean;
}

export class UsageError extends Error {}

const BOOL_WORDS = new Set(['on', 'off', 'true', 'false', 'yes', 'no', '1', '0']);

/**
 * Parses `--name value`, `--name=value` (repeatable for multi-valued fields; a boolean flag alone means
 * on) and `--json`. With positional set, bare arguments are returned in order for the fields the
 * descriptor marks positional (which then are no flags); without it they are a usage error.
 */
export function parseFlags(cmd: AnyAdminCommand, args: string[], opts: { positional?: boolean } = {}): { input: AdminInput; json: boolean; help: boolean; bare: string[] } {
  const input: AdminInput = {};
  const bare: string[] = [];
  let json = false;
  let help = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--json') { json = true; continue; }
    if (a === '--help' || a === '-h') { help = true; continue; }
    if (!a.startsWith('--')) {
      if (!opts.positional) throw new UsageError(`unexpected argument ${a}`);
      bare.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = eq === -1 ? a.slice(2) : a.slice(2, eq);
    const field = cmd.fields.find((f) => f.name === name && (!opts.positional || f.positional === undefined));
    if (!field) throw new UsageError(`${opts.positional ? cmd.id.replace('-', ' ') : cmd.id} has no option --${name}`);
    let value: string;
    if (eq !== -1) value = a.slice(eq + 1);
    else if (field.type === 'boolean' && !(i + 1 < args.length && BOOL_WORDS.has(args[i + 1]!.toLowerCase()))) value = 'on';
    else if (i + 1 < args.length) value = args[++i]!;
    else throw new UsageError(`--${name} needs a value`);
    if (!field.type.endsWith('-multi') && input[name]?.length) throw new UsageError(`--${name} given twice`);
    (input[name] ??= []).push(value);
  }
  return { input, json, help, bare };
}

export function commandHelp(cmd: AnyAdminCommand, usage = `perch admin ${cmd.id}`): string {
  const lines = [`${cmd.title}${cmd.needsServer ? ' (needs a running server)' : ''}`, '', `Usage: ${usage}${cmd.fields.length ? ' [options]' : ''} [--json]`, ''];
  for (const f of cmd.fields) {
    if (f.confirms) continue;
    const multi = f.type.endsWith('-multi') ? ' (repeatable)' : '';
    const opts = f.options ? ` (${f.options.map((o) => o.value).join('|')})` : '';
    const secret = f.type === 'text-private' ? ' (read from stdin when omitted)' : '';
    lines.push(`  --${f.name.padEnd(16)} ${f.label}${f.required ? ', required' : ''}${multi}${opts}${secret}`);
  }
  lines.push(`  --json             print the result as JSON`);
  return lines.join('\n') + '\n';
}

export function adminListHelp(): string {
  const width = Math.max(...adminCommands.map((c) => c.id.length));
  const rows = adminCommands.map((c) => `  ${c.id.padEnd(width)}  ${c.title}${c.needsServer ? ' (needs a running server)' : ''}`);
  return `Usage: perch admin <command> [--field value ...] [--json]\n       perch admin <command> --help\n\nCommands:\n${rows.join('\n')}\n`;
}

/** Fills what the command line left out: secrets from stdin, confirmation fields from what they confirm. */
export async function completeInput(cmd: AnyAdminCommand, input: AdminInput, io: Io): Promise<void> {
  for (const f of cmd.fields) {
    if (f.type !== 'text-private' || f.confirms || input[f.name]?.length) continue;
    if (f.askedWith && !input[f.askedWith]?.length) continue;
    const secret = await io.readSecret(`${f.label}: `);
    if (secret === '') throw new UsageError(`empty ${f.name}`);
    input[f.name] = [secret];
  }
  for (const f of cmd.fields) if (f.confirms && !input[f.name]?.length) input[f.name] = [...(input[f.confirms] ?? [])];
}

/** An account JID from what a person types: a username, or a JID of this domain. */
export function accountJid(arg: string, domain: string): string {
  const raw = arg.includes('@') ? arg : `${arg}@${domain}`;
  const j = tryParseJid(raw);
  if (!j || !j.local || j.resource) throw new UsageError(`invalid username: ${arg}`);
  return j.toString();
}

/**
 * Runs one operation through whatever reaches it and prints the outcome. `build` turns the
 * positional arguments into input once the target (and so the domain) is known.
 */
export async function runAdmin(
  config: Config, cmd: AnyAdminCommand, io: Io,
  opts: { input: AdminInput; json: boolean; fromPositional?: (domain: string) => AdminInput },
): Promise<number> {
  let target;
  try {
    target = await openAdminTarget(config, (line) => io.err(line + '\n'));
  } catch (e) {
    if (e instanceof Unreachable) {
      io.err(`perch: ${e.message}\n`);
      return EXIT_FAILED;
    }
    throw e;
  }
  try {
    const input = { ...opts.input, ...opts.fromPositional?.(target.domain) };
    await completeInput(cmd, input, io);
    // Progress of long operations on stderr; with --json none is shown (the wait still follows it).
    const view = opts.json ? null : new ProgressView({ write: (t) => io.err(t), tty: io.errIsTty === true });
    const r = await target.run(cmd, input, (p) => view?.update(p));
    view?.finish();
    if (!r.ok) {
      if (opts.json) io.out(JSON.stringify({ ok: false, error: r.error, condition: r.condition }) + '\n');
      io.err(`perch: ${cmd.id}: ${r.error}\n`);
      return r.condition === 'bad-request' ? EXIT_USAGE : EXIT_FAILED;
    }
    const rendered = cmd.render(r.output);
    const bad = failed(rendered);
    if (opts.json) {
      io.out(JSON.stringify({ ok: !bad, output: r.output, notes: rendered.notes }) + '\n');
    } else {
      const lines = rendered.lines ?? [];
      if (lines.length) io.out(lines.join('\n') + '\n');
      for (const n of rendered.notes) (n.type === 'error' ? io.err : io.out)(n.text + '\n');
    }
    return bad ? EXIT_FAILED : EXIT_OK;
  } finally {
    await target.close();
  }
}

/** `perch admin ...` */
export async function adminMain(config: Config, args: string[], io: Io): Promise<number> {
  const [id, ...rest] = args;
  if (!id || id === '--help' || id === '-h' || id === 'list') {
    io.out(adminListHelp());
    return id ? EXIT_OK : EXIT_USAGE;
  }
  const cmd = findAdminCommand(id);
  if (!cmd) throw new UsageError(`unknown admin command: ${id} (perch admin --help lists them)`);
  const { input, json, help } = parseFlags(cmd, rest);
  if (help) {
    io.out(commandHelp(cmd));
    return EXIT_OK;
  }
  return runAdmin(config, cmd, io, { input, json });
}
