// XEP-0050 Ad-Hoc Commands infrastructure: the registry features and services add commands to,
// command sessions, and the disco nodes that list and describe the commands.
import { randomBytes } from 'node:crypto';
import { Element } from '../../protocol/xml.js';
import { NS } from '../../protocol/namespaces.js';
import type { Jid } from '../../protocol/jid.js';
import { StanzaError } from '../../protocol/errors.js';
import { buildForm, parseForm, type DataForm } from '../../protocol/forms.js';
import type { Server } from '../context.js';

/** What the requester asks for (XEP-0050 §4.1). */
export type CommandAction = 'execute' | 'next' | 'prev' | 'complete' | 'cancel';
/** Actions a stage may offer in <actions/>. */
export type StageAction = 'prev' | 'next' | 'complete';

export interface CommandNote { type?: 'info' | 'warn' | 'error'; text: string }

export type CommandStep =
  /** A form to fill; the session continues. Without `actions`, the stage offers only 'complete'. */
  | { status: 'executing'; form: DataForm; actions?: { allowed: StageAction[]; default?: StageAction }; notes?: CommandNote[] }
  /** The session ends; a failed command says so with a note of type 'error' (XEP-0050 §3.4). */
  | { status: 'completed'; form?: DataForm; notes?: CommandNote[] };

export interface CommandContext {
  from: Jid;
  /** The JID the command was sent to (the server's, or a service's). */
  to: Jid;
  /**
   * 'execute' starts the command; on later stages 'execute' has already been resolved to the
   * stage's default, so commands see 'next', 'prev' or 'complete'. 'cancel' never reaches them.
   */
  action: CommandAction;
  /** The submitted data form, if any (type 'cancel' is taken as 'submit', XEP-0050 §3.4.1). */
  form: DataForm | null;
  /** Kept across the stages of one session; the command may change it freely. */
  state: Record<string, unknown>;
}

export interface AdhocCommand {
  node: string;
  /** Human-readable label (the disco item's name). */
  name: string;
  /** The JID that offers the command: the server ('host', the default) or a service's domain. */
  jid?: 'host' | string;
  /** Who may see and run it; others get forbidden and do not see it listed. */
  allowed(from: Jid): boolean;
  /** Runs one stage. Throwing StanzaError answers with that error. */
  execute(ctx: CommandContext): Promise<CommandStep>;
}

const SESSION_LIFETIME_MS = 10 * 60 * 1000;
const SWEEP_INTERVAL_MS = 60 * 1000;
const MAX_SESSIONS_PER_REQUESTER = 20;
const ACTIONS: readonly CommandAction[] = ['execute', 'next', 'prev', 'complete', 'cancel'];

export function commandError(condition: 'malformed-action' | 'bad-action' | 'bad-locale' | 'bad-payload' | 'bad-sessionid', text?: string): StanzaError {
  return new StanzaError('bad-request', text, 'modify', new Element(condition, { xmlns: NS.commands }));
}

function sessionExpired(): StanzaError {
  return new StanzaError('not-allowed', undefined, 'cancel', new Element('session-expired', { xmlns: NS.commands }));
}

export interface CommandSession {
  id: string;
  /** Who offers the command (a JID string) and which command. */
  owner: string;
  node: string;
  /** Full JID of the requester: only it may continue the session. */
  requester: string;
  created: number;
  state: Record<string, unknown>;
  /** The <actions/> of the last stage sent. */
  allowed: StageAction[];
  defaultAction: StageAction;
}

function newSessionId(now: number): string {
  return `${now.toString(36)}-${randomBytes(6).toString('hex')}`;
}

/** Open command sessions, with their expiry. */
export class CommandSessions {
  private readonly byId = new Map<string, CommandSession>();
  /** Open sessions per requester, to bound what one requester can hold. */
  private readonly perRequester = new Map<string, number>();
  private lastSweep: number;

  constructor(
    private readonly lifetimeMs = SESSION_LIFETIME_MS,
    private readonly now: () => number = Date.now,
    private readonly maxPerRequester = MAX_SESSIONS_PER_REQUESTER,
  ) {
    this.lastSweep = now();
  }

  /** A new session, not yet stored (commands that complete at once never need storing). */
  create(owner: string, node: string, requester: string): CommandSession {
    // Abandoned sessions are swept as new ones start, so no timer is needed.
    if (this.now() - this.lastSweep >= SWEEP_INTERVAL_MS) this.sweep();
    if ((this.perRequester.get(requester) ?? 0) >= this.maxPerRequester) {
      throw new StanzaError('resource-constraint', 'too many open command sessions');
    }
    let id: string;
    do id = newSessionId(this.now()); while (this.byId.has(id));
    return { id, owner, node, requester, created: this.now(), state: {}, allowed: ['complete'], defaultAction: 'complete' };
  }

  save(s: CommandSession): void {
    if (this.byId.has(s.id)) return;
    this.byId.set(s.id, s);
    this.perRequester.set(s.requester, (this.perRequester.get(s.requester) ?? 0) + 1);
  }

  delete(id: string): void {
    const s = this.byId.get(id);
    if (!s) return;
    this.byId.delete(id);
    const n = (this.perRequester.get(s.requester) ?? 1) - 1;
    if (n > 0) this.perRequester.set(s.requester, n); else this.perRequester.delete(s.requester);
  }

  /** The session the requester continues; throws the XEP-0050 §4.6 error otherwise. */
  take(id: string, owner: string, node: string, requester: string): CommandSession {
    const s = this.byId.get(id);
    // Another requester's session is treated as unknown so session ids reveal nothing.
    if (!s || s.owner !== owner || s.node !== node || s.requester !== requester) throw commandError('bad-sessionid');
    if (this.expired(s)) {
      this.delete(id);
      throw sessionExpired();
    }
    return s;
  }

  expired(s: CommandSession): boolean { return this.now() - s.created >= this.lifetimeMs; }

  sweep(): void {
    this.lastSweep = this.now();
    for (const [id, s] of this.byId) if (this.expired(s)) this.delete(id);
  }

  get size(): number { return this.byId.size; }
}

/**
 * The action a continuing request stands for: 'execute' (or none) means the stage's default.
 * Throws malformed-action for unknown values and bad-action for actions the stage does not offer.
 */
export function resolveAction(raw: string | undefined, session: Pick<CommandSession, 'allowed' | 'defaultAction'> | null): CommandAction {
  const action = (raw ?? 'execute') as CommandAction;
  if (!ACTIONS.includes(action)) throw commandError('malformed-action');
  if (!session || action === 'cancel') return action;
  const resolved = action === 'execute' ? session.defaultAction : action;
  if (!session.allowed.includes(resolved as StageAction)) throw commandError('bad-action');
  return resolved;
}

/** The <actions/> a stage offers and its default (the one 'execute' stands for). */
export function stageActions(step: Extract<CommandStep, { status: 'executing' }>): { allowed: StageAction[]; defaultAction: StageAction } {
  const allowed = step.actions?.allowed.length ? [...step.actions.allowed] : ['complete' as const];
  const wanted = step.actions?.default;
  const defaultAction = wanted && allowed.includes(wanted) ? wanted
    : allowed.includes('next') ? 'next' : allowed.includes('complete') ? 'complete' : allowed[0]!;
  return { allowed, defaultAction };
}

/** The <command/> answer for one step. */
export function commandElement(node: string, sessionid: string, step: CommandStep | { status: 'canceled' }): Element {
  const cmd = new Element('command', { xmlns: NS.commands, node, sessionid, status: step.status });
  if (step.status === 'canceled') return cmd;
  if (step.status === 'executing') {
    const { allowed, defaultAction } = stageActions(step);
    const actions = cmd.c('actions', { execute: defaultAction });
    // Schema order: prev, next, complete.
    for (const a of ['prev', 'next', 'complete'] as const) if (allowed.includes(a)) actions.c(a);
  }
  for (const n of step.notes ?? []) cmd.c('note', { type: n.type ?? 'info' }).t(n.text);
  if (step.form) cmd.append(buildForm(step.form));
  return cmd;
}

// --- registry --------------------------------------------------------------------------------------

interface Registry {
  /** Commands by offering JID, then node. */
  commands: Map<string, Map<string, AdhocCommand>>;
  sessions: CommandSessions;
}
const registries = new WeakMap<Server, Registry>();

function registryOf(server: Server): Registry {
  let r = registries.get(server);
  if (!r) registries.set(server, (r = { commands: new Map(), sessions: new CommandSessions() }));
  return r;
}

function ownerOf(server: Server, jid: string | undefined): string {
  return !jid || jid === 'host' ? server.domain : jid;
}

/** Adds a command; modules call this from init. A node already offered by that JID is replaced. */
export function registerCommand(server: Server, cmd: AdhocCommand): void {
  const owner = ownerOf(server, cmd.jid);
  const r = registryOf(server);
  let byNode = r.commands.get(owner);
  if (!byNode) r.commands.set(owner, (byNode = new Map()));
  byNode.set(cmd.node, cmd);
  if (owner === server.domain) {
    server.disco.nodes.set(cmd.node, { info: (from) => commandNodeInfo(server, owner, cmd.node, from) });
  }
}

export function unregisterCommand(server: Server, node: string, jid?: 'host' | string): void {
  const owner = ownerOf(server, jid);
  const byNode = registryOf(server).commands.get(owner);
  if (!byNode?.delete(node)) return;
  if (owner === server.domain) server.disco.nodes.delete(node);
}

/** The disco#items <item/>s of the commands node: the commands this requester may use. */
export function commandItems(server: Server, jid: 'host' | string, from: Jid): Element[] {
  const owner = ownerOf(server, jid);
  const items: Element[] = [];
  for (const cmd of registryOf(server).commands.get(owner)?.values() ?? []) {
    if (cmd.allowed(from)) items.push(new Element('item', { jid: owner, node: cmd.node, name: cmd.name }));
  }
  return items;
}

/**
 * The disco#info <query/> for a node of `jid` (XEP-0050 §2.2): the commands node itself or one
 * command. Null when `jid` has no such node; forbidden for a command the requester may not use.
 */
export function commandNodeInfo(server: Server, jid: 'host' | string, node: string, from: Jid): Element | null {
  const owner = ownerOf(server, jid);
  const query = new Element('query', { xmlns: NS.discoInfo, node });
  if (node === NS.commands) {
    query.c('identity', { category: 'automation', type: 'command-list', name: 'Commands' });
    return query;
  }
  const cmd = registryOf(server).commands.get(owner)?.get(node);
  if (!cmd) return null;
  if (!cmd.allowed(from)) throw new StanzaError('forbidden');
  query.c('identity', { category: 'automation', type: 'command-node', name: cmd.name });
  query.c('feature', { var: NS.commands });
  query.c('feature', { var: NS.dataForms });
  return query;
}

/**
 * Runs one <command/> request addressed to `jid` and returns the <command/> to answer with.
 * Services that route their own stanzas call this for IQs in the commands namespace.
 */
export async function handleCommandRequest(server: Server, jid: 'host' | string, payload: Element, from: Jid, to: Jid): Promise<Element> {
  const owner = ownerOf(server, jid);
  const r = registryOf(server);
  const node = payload.attrs.node;
  if (!node) throw new StanzaError('bad-request', 'missing node');
  const rawAction = payload.attrs.action;
  if (rawAction !== undefined && !ACTIONS.includes(rawAction as CommandAction)) throw commandError('malformed-action');
  const cmd = r.commands.get(owner)?.get(node);
  if (!cmd) throw new StanzaError('item-not-found');
  if (!cmd.allowed(from)) throw new StanzaError('forbidden');

  const requester = from.toString();
  const sid = payload.attrs.sessionid;
  const existing = sid !== undefined ? r.sessions.take(sid, owner, node, requester) : null;
  const action = resolveAction(rawAction, existing);
  if (action === 'cancel') {
    if (existing) r.sessions.delete(existing.id);
    return commandElement(node, existing?.id ?? newSessionId(Date.now()), { status: 'canceled' });
  }

  let form: DataForm | null = null;
  const x = payload.getChild('x', NS.dataForms);
  if (x) {
    try {
      form = parseForm(x);
    } catch (e) {
      throw commandError('bad-payload', e instanceof Error ? e.message : undefined);
    }
    if (form.type === 'cancel') form = { ...form, type: 'submit' };
  }

  const session = existing ?? r.sessions.create(owner, node, requester);
  let step: CommandStep;
  try {
    step = await cmd.execute({ from, to, action: existing ? action : 'execute', form, state: session.state });
  } catch (e) {
    // A payload the requester can correct keeps the session; anything else ends it.
    if (!(e instanceof StanzaError && e.type === 'modify')) r.sessions.delete(session.id);
    throw e;
  }
  if (step.status === 'executing') {
    const { allowed, defaultAction } = stageActions(step);
    session.allowed = allowed;
    session.defaultAction = defaultAction;
    r.sessions.save(session);
  } else {
    r.sessions.delete(session.id);
  }
  return commandElement(node, session.id, step);
}
