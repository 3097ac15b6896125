// The nouns of the CLI over admin descriptors: `perch category|room|group|ou|addin|service|policy|compliance|upload VERB`
// and `perch user set`. Each verb is one admin descriptor (its id is NOUN-VERB, the same name as
// the ad-hoc command); positional arguments and --flags are its fields.
import type { Config } from '../config.js';
import { findAdminCommand } from '../admin/catalog.js';
import type { AdminInput, AnyAdminCommand, FieldSpec } from '../admin/command.js';
import { parseFlags, runAdmin, UsageError, EXIT_OK, type Io } from './admin.js';

/** The verbs of each noun, in the order help lists them. */
export const CHAT_NOUNS: Record<string, string[]> = {
  category: ['add', 'set', 'list', 'delete'],
  room: ['add', 'set', 'show', 'list', 'disable', 'enable', 'delete', 'clear', 'remove-messages'],
  group: ['add', 'set', 'show', 'list', 'delete'],
  ou: ['add', 'list', 'delete'],
  user: ['set'],
  addin: ['add', 'set', 'list', 'delete'],
  service: ['get', 'set'],
  policy: ['get', 'set'],
  principal: ['eligible'],
  compliance: ['get', 'set', 'run'],
  upload: ['list', 'stats', 'expire', 'delete'],
  directory: ['sync'],
  node: ['list', 'drain'],
};

function commandOf(noun: string, verb: string): AnyAdminCommand | undefined {
  return CHAT_NOUNS[noun]?.includes(verb) ? findAdminCommand(`${noun}-${verb}`) : undefined;
}

function positionals(cmd: AnyAdminCommand): FieldSpec[] {
  return cmd.fields.filter((f) => f.positional !== undefined).sort((a, b) => a.positional! - b.positional!);
}

/** Positional arguments and --flags (--name value, --name=value; a boolean flag alone means on) as the descriptor's input. */
export function parseChatArgs(cmd: AnyAdminCommand, args: string[]): { input: AdminInput; json: boolean; help: boolean } {
  const { input, json, help, bare: pos } = parseFlags(cmd, args, { positional: true });
  if (help) return { input, json, help };
  const slots = positionals(cmd);
  if (pos.length > slots.length) throw new UsageError(`unexpected argument ${pos[slots.length]} (usage: ${usage(cmd)})`);
  slots.forEach((f, i) => {
    if (pos[i] !== undefined) input[f.name] = [pos[i]!];
    else if (f.required) throw new UsageError(`missing ${f.name.toUpperCase()} (usage: ${usage(cmd)})`);
  });
  return { input, json, help };
}

function usage(cmd: AnyAdminCommand): string {
  // The noun is the id's first word; the verb may have several (remove-messages).
  const cut = cmd.id.indexOf('-');
  const noun = cmd.id.slice(0, cut);
  const verb = cmd.id.slice(cut + 1);
  const args = positionals(cmd).map((f) => (f.required ? f.name.toUpperCase() : `[${f.name.toUpperCase()}]`));
  const flags = cmd.fields.some((f) => f.positional === undefined) ? ' [options]' : '';
  return `perch ${noun} ${verb}${args.length ? ' ' + args.join(' ') : ''}${flags} [--json]`;
}

export function chatCommandHelp(cmd: AnyAdminCommand): string {
  const lines = [cmd.title, '', cmd.instructions, '', `Usage: ${usage(cmd)}`, ''];
  for (const f of positionals(cmd)) lines.push(`  ${f.name.toUpperCase().padEnd(26)} ${f.label}`);
  for (const f of cmd.fields) {
    if (f.positional !== undefined) continue;
    const flag = `--${f.name}${f.type === 'boolean' ? ' [on|off]' : f.options ? ` ${f.options.map((o) => o.value).join('|')}` : ' VALUE'}`;
    lines.push(`  ${flag.padEnd(26)} ${f.label}${f.required ? ', required' : ''}`);
  }
  lines.push(`  ${'--json'.padEnd(26)} print the result as JSON`);
  lines.push('', `The same operation as the ad-hoc command ${cmd.id} and perch admin ${cmd.id}.`);
  return lines.join('\n') + '\n';
}

export function nounHelp(noun: string): string {
  const rows = (CHAT_NOUNS[noun] ?? []).map((verb) => {
    const cmd = commandOf(noun, verb)!;
    return `  ${usage(cmd).padEnd(58)} ${cmd.title}`;
  });
  return `Usage: perch ${noun} <${(CHAT_NOUNS[noun] ?? []).join('|')}> [args] [--json]; --help after a verb for its options\n\n${rows.join('\n')}\n`;
}

/** `perch NOUN VERB ...` for the persistent-chat nouns. */
export async function chatMain(config: Config, noun: string, args: string[], io: Io): Promise<number> {
  const [verb, ...rest] = args;
  if (!verb || verb === '--help' || verb === '-h') {
    io.out(nounHelp(noun));
    return verb ? EXIT_OK : 2;
  }
  const cmd = commandOf(noun, verb);
  if (!cmd) throw new UsageError(`unknown command: perch ${noun} ${verb} (perch ${noun} --help lists them)`);
  const { input, json, help } = parseChatArgs(cmd, rest);
  if (help) {
    io.out(chatCommandHelp(cmd));
    return EXIT_OK;
  }
  return runAdmin(config, cmd, io, { input, json });
}
