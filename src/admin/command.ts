// An admin operation, defined once: its fields (which become both the XEP-0004 form and the CLI
// flags), who may run it, what it does and how its result reads. The faces (ad-hoc commands,
// the local admin socket, the CLI) only translate.
import type { Jid } from '../../protocol/jid.js';
import type { FormField } from '../../protocol/forms.js';
import type { DataStores } from '../../storage/types.js';
import type { Server } from '../context.js';
import type { Config } from '../config.js';

export type FieldType = 'jid-single' | 'jid-multi' | 'text-single' | 'text-private' | 'text-multi' | 'list-single' | 'boolean';

export interface FieldSpec {
  /** The form field's var and the CLI flag (--name). */
  name: string;
  type: FieldType;
  label: string;
  required?: boolean;
  /** Allowed values (list-single). */
  options?: { value: string; label?: string }[];
  default?: string[];
  /**
   * This field repeats another one (a password typed twice in a form). The CLI asks once and
   * fills it from that field.
   */
  confirms?: string;
  /** A secret the CLI asks for only when the named field is given (an optional account's password). */
  askedWith?: string;
  /** The CLI takes this field as a positional argument (in this order), not as a flag. */
  positional?: number;
}

/**
 * Who runs an operation: the local admin (trusted by the socket's file permissions) or an XMPP
 * account; service is the MUC service JID the account sent the command to, if it was one.
 */
export type Actor = { kind: 'local' } | { kind: 'account'; jid: Jid; admin: boolean; service?: string };

export const LOCAL_ADMIN: Actor = { kind: 'local' };

export function isAdminActor(actor: Actor): boolean {
  return actor.kind === 'local' || actor.admin;
}

/** What an operation works with. Without a running server (the CLI on a stopped data dir), server is null. */
export interface AdminContext {
  actor: Actor;
  domain: string;
  scramIterations: number;
  stores: DataStores;
  server: Server | null;
  /** The configuration (MUC services and admins, also without a running server). */
  config: Config;
  /**
   * Reports how far a long operation is (clear, export, import): the CLI draws a progress bar, the
   * admin socket forwards it; faces without one leave it unset.
   */
  progress?: (p: Progress) => void;
}

/** A long operation's position: done of total units (total unknown: a counter), in one named phase. */
export interface Progress { phase: string; done: number; total?: number; unit?: string }

/** Submitted values by field name; multi-valued fields may hold several. */
export type AdminInput = Record<string, string[]>;

export interface Note { type: 'info' | 'warn' | 'error'; text: string }

/** How a result reads: notes and result fields for a form, and plain text for a terminal. */
export interface Rendered {
  notes: Note[];
  /** Result form fields (XEP-0004 type 'result'), when the operation returns data. */
  fields?: FormField[];
  /** One line per row for a terminal; defaults to the notes' text. */
  lines?: string[];
}

export interface AdminCommand<O = unknown> {
  /** Stable name: the CLI's `perch admin <id>` and the end of the ad-hoc node. */
  id: string;
  title: string;
  /** Form title and instructions. */
  instructions: string;
  fields: FieldSpec[];
  /** True when the operation acts on live state (sessions, loaded rooms) and so needs a running server. */
  needsServer?: boolean;
  allowed(actor: Actor): boolean;
  /** Throws AdminError when refused; partial failures are part of the output. */
  run(ctx: AdminContext, input: AdminInput): Promise<O>;
  render(out: O): Rendered;
}

// The catalog holds commands of every output type; each face pairs a command's run with its own render.
export type AnyAdminCommand = AdminCommand<any>;

export type AdminCondition = 'bad-request' | 'conflict' | 'forbidden' | 'item-not-found' | 'service-unavailable' | 'not-acceptable' | 'not-allowed';

/**
 * An operation refused. `condition` is the XMPP error condition the ad-hoc face answers with;
 * 'bad-request' marks input the caller can correct (the CLI exits with 2 for those).
 */
export class AdminError extends Error {
  constructor(message: string, readonly condition: AdminCondition = 'bad-request') {
    super(message);
  }
}

/** A single outcome: a message, or an error message. */
export interface Outcome { ok: boolean; text: string }
export function outcome(o: Outcome): Rendered {
  return { notes: [{ type: o.ok ? 'info' : 'error', text: o.text }] };
}

export function failed(rendered: Rendered): boolean {
  return rendered.notes.some((n) => n.type === 'error');
}

/** Checks submitted values against the fields: required ones present, single ones single. */
export function checkInput(cmd: AdminCommand, raw: AdminInput): AdminInput {
  const input: AdminInput = {};
  for (const f of cmd.fields) {
    let values = (raw[f.name] ?? []).filter((v) => v.trim() !== '' || f.type === 'text-private' || f.type === 'text-multi');
    if (values.length === 0 && f.default) values = [...f.default];
    if (f.required && !values.some((v) => v.trim() !== '')) throw new AdminError(`missing required field ${f.name}`);
    if (!f.type.endsWith('-multi') && values.length > 1) throw new AdminError(`field ${f.name} takes one value`);
    input[f.name] = values;
  }
  return input;
}

export function one(input: AdminInput, name: string): string {
  return input[name]?.[0] ?? '';
}

/** The adhoc-face form field for a spec. */
export function formField(f: FieldSpec): FormField {
  return {
    var: f.name, type: f.type, label: f.label, required: f.required,
    values: f.default ? [...f.default] : [],
    ...(f.options ? { options: f.options.map((o) => ({ label: o.label ?? o.value, value: o.value })) } : {}),
  };
}

/**
 * Runs an operation for a face: checks who asks, whether it needs a running server, and the input.
 * Throws AdminError when refused.
 */
export async function runCommand<O>(cmd: AdminCommand<O>, ctx: AdminContext, raw: AdminInput): Promise<O> {
  if (!cmd.allowed(ctx.actor)) throw new AdminError('not allowed', 'forbidden');
  if (cmd.needsServer && !ctx.server) throw new AdminError(`${cmd.id} needs a running server, and none holds this data directory`, 'service-unavailable');
  return cmd.run(ctx, checkInput(cmd, raw));
}
