// What the persistent-chat conformance suites share: the admin CLI (one function per operation, so
// that a changed flag is changed here only), XEP-0050 ad-hoc commands by their node, and the
// XMPP actions a user takes on a room, each answered as 'ok' or the stanza error's condition.
import { expect } from 'chai';
import {
  perch, iq, xml, sleep, type CliResult, type LoggedIn, type XmppElement,
} from './harness.js';

export const DOMAIN = 'localhost';
export const SERVICE = `conference.${DOMAIN}`;

export const NS = {
  muc: 'http://jabber.org/protocol/muc',
  user: 'http://jabber.org/protocol/muc#user',
  admin: 'http://jabber.org/protocol/muc#admin',
  owner: 'http://jabber.org/protocol/muc#owner',
  roomconfig: 'http://jabber.org/protocol/muc#roomconfig',
  discoInfo: 'http://jabber.org/protocol/disco#info',
  discoItems: 'http://jabber.org/protocol/disco#items',
  commands: 'http://jabber.org/protocol/commands',
  data: 'jabber:x:data',
  mam: 'urn:xmpp:mam:2',
  rsm: 'http://jabber.org/protocol/rsm',
  delay: 'urn:xmpp:delay',
  stanzas: 'urn:ietf:params:xml:ns:xmpp-stanzas',
  principal: 'urn:x-perch:principal:0',
};

export const bare = (user: string) => (user.includes('@') ? user : `${user}@${DOMAIN}`);
export const roomJid = (local: string) => `${local}@${SERVICE}`;

// --- the CLI, one function per operation ---------------------------------------------------------

export interface CliTarget {
  dataDir: string;
  databaseUrl?: string;
  /** A config file (--config), e.g. naming the cluster's Redis for a CLI beside no node. */
  config?: string;
}

/** A list value as the CLI takes it: principals joined by commas; '+a,-b' edits; '' clears. */
export type ListArg = string[] | string;
const listArg = (v: ListArg) => (Array.isArray(v) ? v.join(',') : v);

export interface RoomSpec {
  category?: string;
  name?: string;
  description?: string;
  privacy?: 'open' | 'closed' | 'secret';
  type?: 'normal' | 'auditorium';
  members?: ListArg;
  managers?: ListArg;
  presenters?: ListArg;
  invitations?: 'inherit' | 'off';
  addin?: string;
}

export interface CategorySpec {
  name?: string;
  description?: string;
  allowed?: ListArg;
  denied?: ListArg;
  creators?: ListArg;
  chatHistory?: boolean;
  invitations?: boolean;
}

function flags(spec: Record<string, unknown>, names: Record<string, string>): string[] {
  const out: string[] = [];
  for (const [key, flag] of Object.entries(names)) {
    const v = spec[key];
    if (v === undefined) continue;
    if (typeof v === 'boolean') out.push(`--${flag}`, v ? 'on' : 'off');
    else out.push(`--${flag}`, Array.isArray(v) || typeof v === 'string' ? listArg(v as ListArg) : String(v));
  }
  return out;
}
const ROOM_FLAGS = { category: 'category', name: 'name', description: 'description', privacy: 'privacy', type: 'type', members: 'members', managers: 'managers', presenters: 'presenters', invitations: 'invitations', addin: 'addin' };
const CATEGORY_FLAGS = { name: 'name', description: 'description', allowed: 'allowed', denied: 'denied', creators: 'creators', chatHistory: 'chat-history', invitations: 'invitations' };

/** The `perch` admin commands of the model, run as an operator would against a data directory. */
export class PchatCli {
  /** Every command run, with its result (for failure messages). */
  readonly log: { args: string[]; result: CliResult }[] = [];

  constructor(readonly target: CliTarget) {}

  async run(args: string[]): Promise<CliResult> {
    const result = await perch(this.target.config ? ['--config', this.target.config, ...args] : args, this.target);
    this.log.push({ args, result });
    return result;
  }

  /** Runs and expects success. */
  async ok(args: string[]): Promise<CliResult> {
    const r = await this.run(args);
    expect(r.code, `perch ${args.join(' ')} failed:\n${r.stdout}\n${r.stderr}`).to.equal(0);
    return r;
  }

  ouAdd(path: string) { return this.ok(['ou', 'add', path]); }
  userOu(user: string, path: string | null) { return this.ok(['user', 'set', bare(user), '--ou', path ?? '']); }
  groupAdd(name: string, members: string[]) { return this.ok(['group', 'add', name, '--members', members.join(',')]); }
  /** `edit` as the CLI takes it: '+a,-b' adds and removes, 'a,b' replaces. */
  groupMembers(name: string, edit: ListArg) { return this.ok(['group', 'set', name, '--members', listArg(edit)]); }
  groupList() { return this.ok(['group', 'list', '--json']); }
  categoryAdd(name: string, spec: CategorySpec) { return this.ok(['category', 'add', name, ...flags({ ...spec }, CATEGORY_FLAGS)]); }
  categorySet(name: string, spec: CategorySpec) { return this.run(['category', 'set', name, ...flags({ ...spec }, CATEGORY_FLAGS)]); }
  categoryList() { return this.ok(['category', 'list', '--json']); }
  roomAdd(local: string, spec: RoomSpec) { return this.ok(['room', 'add', local, ...flags({ ...spec }, ROOM_FLAGS)]); }
  roomSet(local: string, spec: RoomSpec) { return this.run(['room', 'set', local, ...flags({ ...spec }, ROOM_FLAGS)]); }
  roomList() { return this.ok(['room', 'list', '--json']); }
  roomDisable(local: string) { return this.ok(['room', 'disable', local]); }
  roomEnable(local: string) { return this.ok(['room', 'enable', local]); }
  roomDelete(local: string, reason?: string) { return this.ok(['room', 'delete', local, ...(reason ? ['--reason', reason] : [])]); }
  groupDelete(name: string) { return this.ok(['group', 'delete', name]); }
  categoryDelete(name: string) { return this.run(['category', 'delete', name]); }
  ouDelete(path: string) { return this.run(['ou', 'delete', path]); }
  ouList() { return this.ok(['ou', 'list', '--json']); }
  addinAdd(name: string, url: string) { return this.ok(['addin', 'add', name, '--url', url]); }
  addinList() { return this.ok(['addin', 'list', '--json']); }
  serviceSet(settings: Record<string, string>) { return this.ok(['service', 'set', ...Object.entries(settings).flatMap(([k, v]) => [`--${k}`, v])]); }
  serviceGet() { return this.ok(['service', 'get', '--json']); }
  /** Persistent chat on or off for a user, a group, or everyone (null: remove the entry). */
  policySet(who: { user: string } | { group: string } | 'global', enabled: boolean | null) {
    const target = who === 'global' ? 'global' : 'user' in who ? bare(who.user) : `group:${who.group}`;
    return this.ok(['policy', 'set', target, enabled === null ? 'unset' : enabled ? 'on' : 'off']);
  }
  policyGet() { return this.ok(['policy', 'get', '--json']); }
}

/** The JSON a `--json` command printed (its `output` when wrapped so). */
export function jsonOf(r: CliResult): unknown {
  const parsed = JSON.parse(r.stdout) as unknown;
  return parsed && typeof parsed === 'object' && 'output' in parsed ? (parsed as { output: unknown }).output : parsed;
}

// --- XEP-0050 ad-hoc commands, found by discovery --------------------------------------------------

/** The node of an admin operation's ad-hoc command: the CLI's NOUN-VERB after XEP-0133's namespace. */
export const adhocNode = (id: string) => `http://jabber.org/protocol/admin#${id}`;

/** The nodes of the commands an entity offers to this client. */
export async function commandNodes(c: LoggedIn, to: string): Promise<string[]> {
  const r = await iq(c, 'get', xml('query', { xmlns: NS.discoItems, node: NS.commands }), to);
  return r.getChild('query', NS.discoItems)!.getChildren('item').map((i: XmppElement) => i.attrs.node as string);
}

export interface AdhocResult { status: string; notes: string[]; fields: Map<string, string[]> }

/**
 * Runs the ad-hoc command of operation `id` (the CLI's NOUN-VERB) on `to`, filling the form's fields
 * by name. Rejects with the error condition when refused.
 */
export async function adhoc(c: LoggedIn, to: string, id: string, values: Record<string, string[]>): Promise<AdhocResult> {
  const chosen = adhocNode(id);
  const first = await iq(c, 'set', xml('command', { xmlns: NS.commands, node: chosen, action: 'execute' }), to);
  const cmd = first.getChild('command', NS.commands)!;
  const form = cmd.getChild('x', NS.data);
  const vars = new Set((form?.getChildren('field') ?? []).map((f: XmppElement) => f.attrs.var as string));
  const missing = Object.keys(values).filter((k) => !vars.has(k));
  if (missing.length) throw new Error(`${chosen} has no field ${missing.join(', ')}; its fields: ${[...vars].join(', ')}`);
  const done = await iq(c, 'set', xml('command', { xmlns: NS.commands, node: chosen, sessionid: cmd.attrs.sessionid },
    xml('x', { xmlns: NS.data, type: 'submit' },
      ...Object.entries(values).map(([v, vals]) => xml('field', { var: v }, ...vals.map((x) => xml('value', {}, x)))))), to);
  const res = done.getChild('command', NS.commands)!;
  return {
    status: res.attrs.status as string,
    notes: res.getChildren('note').map((n: XmppElement) => `${n.attrs.type ?? 'info'}: ${n.text()}`),
    fields: formFields(res.getChild('x', NS.data)),
  };
}

// --- stanza helpers -------------------------------------------------------------------------------

export const mucX = (el: XmppElement) => el.getChild('x', NS.user);
export const statusCodes = (el: XmppElement) => (mucX(el)?.getChildren('status') ?? []).map((s: XmppElement) => Number(s.attrs.code)).sort((a: number, b: number) => a - b);
export const reasonOf = (el: XmppElement) => mucX(el)?.getChild('item')?.getChildText('reason') ?? null;

export function errorCondition(el: XmppElement): string | undefined {
  const error = el.getChild('error');
  return error?.getChildElements().find((c: XmppElement) => c.attrs.xmlns === NS.stanzas && c.name !== 'text')?.name;
}

export function formFields(x: XmppElement | undefined): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const f of x?.getChildren('field') ?? []) out.set(f.attrs.var ?? '', f.getChildren('value').map((v: XmppElement) => v.text()));
  return out;
}

/** 'ok' when the promise resolves, else the stanza error's condition (or the error's text). */
export async function outcome(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    const cond = (e as { condition?: string }).condition;
    return cond ?? `error: ${(e as Error).message}`;
  }
}

// --- what a user does to a room, each answered 'ok' or a condition ---------------------------------

let seq = 0;
const nextId = (p: string) => `${p}${++seq}`;

/** Enters the room (no history unless asked): 'ok' on the self-presence, else the error's condition. */
export async function join(c: LoggedIn, room: string, nick: string, opts: { history?: number; timeoutMs?: number } = {}): Promise<string> {
  return (await enter(c, room, nick, opts)).outcome;
}

/** Enters the room: the outcome, and on success the affiliation and role the room gave. */
export async function enter(c: LoggedIn, room: string, nick: string, opts: { history?: number; timeoutMs?: number } = {}):
  Promise<{ outcome: string; affiliation?: string; role?: string }> {
  const full = `${room}/${nick}`;
  await c.xmpp.send(xml('presence', { to: full }, xml('x', { xmlns: NS.muc }, xml('history', { maxstanzas: String(opts.history ?? 0) }))));
  const el = await c.waitFor((e) => e.is('presence') && e.attrs.from === full &&
    (e.attrs.type === 'error' || (e.attrs.type === undefined && statusCodes(e).includes(110))), opts.timeoutMs ?? 8000);
  if (el.attrs.type === 'error') return { outcome: errorCondition(el) ?? 'error' };
  const item = mucX(el)?.getChild('item');
  return { outcome: 'ok', affiliation: item?.attrs.affiliation, role: item?.attrs.role };
}

/** The name in an entity's disco#info identity. */
export async function roomName(c: LoggedIn, jid: string): Promise<string> {
  const r = await iq(c, 'get', xml('query', { xmlns: NS.discoInfo }), jid);
  return (r.getChild('query', NS.discoInfo)!.getChild('identity')?.attrs.name as string | undefined) ?? '';
}

/** The features of an entity's disco#info. */
export async function discoFeatures(c: LoggedIn, jid: string): Promise<string[]> {
  const r = await iq(c, 'get', xml('query', { xmlns: NS.discoInfo }), jid);
  return r.getChild('query', NS.discoInfo)!.getChildren('feature').map((f: XmppElement) => f.attrs.var as string);
}

export async function leave(c: LoggedIn, room: string, nick: string): Promise<void> {
  const full = `${room}/${nick}`;
  await c.xmpp.send(xml('presence', { to: full, type: 'unavailable' }));
  await c.waitFor((e) => e.is('presence') && e.attrs.from === full && e.attrs.type === 'unavailable', 8000);
}

/** Says something in the room: 'ok' when the room reflects it, else the error's condition. */
export async function post(c: LoggedIn, room: string, body: string): Promise<string> {
  const id = nextId('post');
  await c.xmpp.send(xml('message', { to: room, type: 'groupchat', id }, xml('body', {}, body)));
  const el = await c.waitFor((e) => e.is('message') && e.attrs.from?.split('/')[0] === room &&
    ((e.attrs.type === 'groupchat' && e.getChildText('body') === body) || (e.attrs.type === 'error' && e.attrs.id === id)), 8000);
  return el.attrs.type === 'error' ? errorCondition(el) ?? 'error' : 'ok';
}

/** The room JIDs the service lists to this user. */
export async function listedRooms(c: LoggedIn, service = SERVICE): Promise<string[]> {
  const r = await iq(c, 'get', xml('query', { xmlns: NS.discoItems }), service);
  return r.getChild('query', NS.discoItems)!.getChildren('item').map((i: XmppElement) => i.attrs.jid as string);
}

export const discoInfo = (c: LoggedIn, room: string) => outcome(iq(c, 'get', xml('query', { xmlns: NS.discoInfo }), room));

/** The XEP-0128 form fields of an entity's disco#info (all forms merged), var → values. */
export async function discoFields(c: LoggedIn, jid: string): Promise<Map<string, string[]>> {
  const r = await iq(c, 'get', xml('query', { xmlns: NS.discoInfo }), jid);
  const out = new Map<string, string[]>();
  for (const x of r.getChild('query', NS.discoInfo)!.getChildren('x', NS.data)) for (const [k, v] of formFields(x)) out.set(k, v);
  return out;
}

/** Reads the room's archive (XEP-0313 on the room JID). */
export const readArchive = (c: LoggedIn, room: string) => outcome(iq(c, 'set', xml('query', { xmlns: NS.mam, queryid: nextId('mam') },
  xml('set', { xmlns: NS.rsm }, xml('max', {}, '5'))), room));

/** Asks for the owner configuration form. */
export const ownerForm = (c: LoggedIn, room: string) => outcome(iq(c, 'get', xml('query', { xmlns: NS.owner }), room));

/** Submits owner form fields (a partial form: only what changes). */
export function submitConfig(c: LoggedIn, room: string, fields: Record<string, string | string[]>): Promise<string> {
  return outcome(iq(c, 'set', xml('query', { xmlns: NS.owner }, xml('x', { xmlns: NS.data, type: 'submit' },
    xml('field', { var: 'FORM_TYPE', type: 'hidden' }, xml('value', {}, NS.roomconfig)),
    ...Object.entries(fields).map(([v, vals]) => xml('field', { var: v }, ...(Array.isArray(vals) ? vals : [vals]).map((x) => xml('value', {}, x)))))), room));
}

/** Changes one affiliation through the admin list (muc#admin). */
export const setAffiliation = (c: LoggedIn, room: string, jid: string, affiliation: string) =>
  outcome(iq(c, 'set', xml('query', { xmlns: NS.admin }, xml('item', { jid, affiliation })), room));

/** The admin list of one affiliation: JIDs, and principals (groups, org units) as their keys. */
export async function affiliationList(c: LoggedIn, room: string, affiliation: string): Promise<string[]> {
  const r = await iq(c, 'get', xml('query', { xmlns: NS.admin }, xml('item', { affiliation })), room);
  return r.getChild('query', NS.admin)!.getChildren('item').map((i: XmppElement) => {
    const p = i.getChild('principal', NS.principal);
    return (i.attrs.jid as string | undefined) ?? p?.attrs.key ?? p?.text() ?? '?';
  });
}

export const destroyRoom = (c: LoggedIn, room: string, reason: string) =>
  outcome(iq(c, 'set', xml('query', { xmlns: NS.owner }, xml('destroy', {}, xml('reason', {}, reason))), room));

/** The presence that removed this user from the room (unavailable, self). */
export function removal(c: LoggedIn, room: string, nick: string, timeoutMs = 8000): Promise<XmppElement> {
  const full = `${room}/${nick}`;
  return c.waitFor((e) => e.is('presence') && e.attrs.from === full && e.attrs.type === 'unavailable', timeoutMs);
}

/** Resolves when nothing matching arrives for `ms` (consumes nothing). */
export async function noRemoval(c: LoggedIn, room: string, nick: string, ms = 800): Promise<void> {
  const full = `${room}/${nick}`;
  await c.expectNone((e) => e.is('presence') && e.attrs.from === full && e.attrs.type === 'unavailable', ms);
}

/** Runs async jobs with at most `limit` at a time. */
export async function pool<T>(jobs: (() => Promise<T>)[], limit: number): Promise<T[]> {
  const out: T[] = new Array(jobs.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, jobs.length) }, async () => {
    while (next < jobs.length) {
      const i = next++;
      out[i] = await jobs[i]!();
    }
  }));
  return out;
}

/** Polls until the check passes (changes published to every node take a moment). */
export async function eventually(check: () => Promise<unknown>, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (e) {
      if (Date.now() > until) throw e;
      await sleep(100);
    }
  }
}
