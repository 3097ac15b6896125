// Import of a XEP-0227 file (Portable Import/Export Format): the accounts, rosters, pending
// subscription requests, vCards, private XML, offline messages and PEP nodes that Prosody (prosody-migrator to a
// xep0227 store) and ejabberd (export_piefxis) write, so their users move over with their passwords.
//
// The file is read twice, streaming: first to check all of it and count (a dry run stops there, and a
// file that does not parse changes nothing), then to write. XInclude'd files (ejabberd writes one per
// host) are read in place. Only what one account element holds is in memory at a time.
import { createReadStream } from 'node:fs';
import path from 'node:path';
import sax from 'sax';
import { Element, type Attrs } from '../../protocol/xml.js';
import { NS } from '../../protocol/namespaces.js';
import { tryParseJid } from '../../protocol/jid.js';
import { decodeBase64Strict, type ScramHash } from '../../protocol/sasl.js';
import { formatDateTimeSeconds } from '../../protocol/datetime.js';
import type { RosterItem, StoredCredentials, StoredScram, Subscription } from '../../storage/types.js';
import { CONFIG_FIELDS, type NodeConfig } from '../../protocol/pubsub.js';
import { parseForm } from '../../protocol/forms.js';
import { createPubsubStore, type PubsubAffiliation, type PubsubSubscriptionState } from '../../storage/sql-pubsub.js';
import { credentialsFor, normalizeUsername } from '../accounts.js';
import type { AdminContext } from '../admin/command.js';

/** The namespace of the XEP's current text (what Prosody and ejabberd write) and of its first versions. */
export const PIE_NS: readonly string[] = [NS.pie, NS.pieDraft];
const VCARD_KIND = 'vcard';
const VCARD_KEY = 'current';
const PRIVATE_KIND = 'private';
/** As the vCard module: larger vCards are refused there, so they are not imported either. */
const MAX_VCARD_BYTES = 64 * 1024;
const SUBSCRIPTIONS = new Set<Subscription>(['none', 'to', 'from', 'both']);
/** Elements of a user that are known and deliberately not imported, by what they are. */
const KNOWN_UNSUPPORTED: Record<string, string> = {
  [NS.piePubsub]: 'pubsub data in urn:xmpp:pie:0#pubsub (PEP is read from XEP-0227\'s <pubsub/> elements)',
  [NS.pieMam]: 'message archive (XEP-0313)',
  [NS.blocking]: 'block list (XEP-0191)',
  [NS.privacy]: 'privacy lists (XEP-0016)',
};

export interface Xep0227Options {
  /** Count and check only; nothing is written. */
  dryRun?: boolean;
  /** The file's host whose accounts become this server's (its JIDs are rewritten to our domain); default: our domain. */
  host?: string;
}

/** Something not imported, by kind and reason, with a few examples. */
export interface Xep0227Skip { kind: string; reason: string; count: number; examples: string[] }

export interface Xep0227Report {
  dryRun: boolean;
  /** Hosts in the file and how many accounts each holds; imported: the one taken as ours. */
  hosts: { jid: string; users: number; imported: boolean }[];
  /** Accounts created, and those that existed and were overwritten (by name). */
  users: { created: number; overwritten: string[] };
  /** Accounts whose file gave SCRAM-SHA-1 keys only (no password, no SHA-256 keys). */
  sha1Only: string[];
  rosterItems: number;
  pendingSubscriptions: number;
  vcards: number;
  privateXml: number;
  offlineMessages: number;
  /** PEP nodes (XEP-0163) and their items. */
  pepNodes: number;
  pepItems: number;
  skipped: Xep0227Skip[];
}

/** The file that does not parse, or has nothing for this server: nothing was imported. */
export class Xep0227Error extends Error {}

/** What the import works with: the admin context's stores, domain and configuration. */
export type Xep0227Context = Pick<AdminContext, 'stores' | 'domain' | 'scramIterations' | 'config' | 'progress'>;

/** The file (and the files it includes, relative to its directory). */
export type Xep0227Source = string;

interface ParsedUser { host: string; el: Element; file: string }

/**
 * Reads a XEP-0227 file and imports what it holds for this server. Throws Xep0227Error, having
 * changed nothing, when the file does not parse or none of its hosts is ours.
 */
export async function importXep0227(ctx: Xep0227Context, source: Xep0227Source, opts: Xep0227Options = {}): Promise<Xep0227Report> {
  const wanted = opts.host ?? ctx.domain;
  const check = newReport(true);
  const hostUsers = new Map<string, number>();
  let seen = 0;
  await readUsers(source, async (u) => {
    hostUsers.set(u.host, (hostUsers.get(u.host) ?? 0) + 1);
    if (u.host === wanted) await planUser(ctx, u, check);
    ctx.progress?.({ phase: 'check', done: ++seen, unit: 'accounts' });
  }, (kind, reason, example) => skip(check, kind, reason, example));
  const hosts = [...hostUsers].map(([jid, users]) => ({ jid, users, imported: jid === wanted }));
  if (!hostUsers.has(wanted)) {
    const have = hosts.length ? hosts.map((h) => h.jid).join(', ') : 'none';
    throw new Xep0227Error(`the file has no accounts of host ${wanted} (its hosts: ${have})${opts.host ? '' : '; name the one to import with --host'}`);
  }
  for (const h of hosts) if (!h.imported) skip(check, 'accounts', `host ${h.jid} is not the one imported`, h.jid, h.users);
  check.hosts = hosts;
  if (opts.dryRun) return check;

  const report = newReport(false);
  report.hosts = hosts;
  let done = 0;
  await readUsers(source, async (u) => {
    if (u.host !== wanted) return;
    await applyUser(ctx, u, report);
    ctx.progress?.({ phase: 'import', done: ++done, total: hostUsers.get(wanted), unit: 'accounts' });
  }, (kind, reason, example) => skip(report, kind, reason, example));
  for (const s of check.skipped) if (s.kind === 'accounts' && s.reason.startsWith('host ')) report.skipped.push(s);
  return report;
}

function newReport(dryRun: boolean): Xep0227Report {
  return {
    dryRun, hosts: [], users: { created: 0, overwritten: [] }, sha1Only: [],
    rosterItems: 0, pendingSubscriptions: 0, vcards: 0, privateXml: 0, offlineMessages: 0, pepNodes: 0, pepItems: 0, skipped: [],
  };
}

function skip(r: Xep0227Report, kind: string, reason: string, example: string, count = 1): void {
  let s = r.skipped.find((x) => x.kind === kind && x.reason === reason);
  if (!s) r.skipped.push(s = { kind, reason, count: 0, examples: [] });
  s.count += count;
  if (s.examples.length < 5 && !s.examples.includes(example)) s.examples.push(example);
}

// --- reading -------------------------------------------------------------------------------------

type Queued = { kind: 'user'; user: ParsedUser } | { kind: 'include'; href: string; host: string | null; file: string };

/**
 * Streams the file, calling onUser for each complete <user/> in document order, XIncludes read in
 * place. onUnknown hears of structure it does not know (outside accounts).
 */
async function readUsers(
  file: string,
  onUser: (u: ParsedUser) => Promise<void>,
  onUnknown: (kind: string, reason: string, example: string) => void,
  inherited: { host: string | null; chain: string[] } = { host: null, chain: [] },
): Promise<void> {
  const abs = path.resolve(file);
  if (inherited.chain.includes(abs)) throw new Xep0227Error(`${file} includes itself`);
  const chain = [...inherited.chain, abs];
  const parser = sax.parser(true, { xmlns: true, position: true });
  const queue: Queued[] = [];
  let host: string | null = inherited.host;
  let root = true;
  /** The account being read: its element and the open elements under it. */
  let stack: Element[] = [];
  /** Depth of an unknown structural element being skipped (0: none). */
  let skipping = 0;
  /** Open structural elements (server-data, host) by name. */
  const open: string[] = [];
  let error: Error | null = null;
  const fail = (text: string) => {
    error ??= new Xep0227Error(`${file}:${parser.line + 1}:${parser.column + 1}: ${text}`);
  };

  parser.onerror = (e) => {
    fail(e.message.split('\n')[0]!);
    parser.resume();
  };
  parser.onopentag = (node) => {
    const tag = node as sax.QualifiedTag;
    const isRoot = root;
    root = false;
    if (stack.length > 0) {
      const parent = stack[stack.length - 1]!;
      const el = new Element(tag.local, attrsOf(tag, tag.uri !== parent.ns), [], tag.uri);
      parent.children.push(el);
      stack.push(el);
      return;
    }
    if (skipping > 0) { skipping++; return; }
    const pie = PIE_NS.includes(tag.uri);
    if (tag.uri === NS.xinclude && tag.local === 'include') {
      const href = tag.attributes.href?.value;
      if (!href || tag.attributes.parse || tag.attributes.xpointer) fail('only <include href/> of a whole XML file is supported');
      else queue.push({ kind: 'include', href, host, file: abs });
      skipping = 1;
    } else if (pie && tag.local === 'server-data') {
      if (!isRoot) fail('<server-data/> inside another element');
      open.push('server-data');
    } else if (pie && tag.local === 'host') {
      const jid = tag.attributes.jid?.value;
      const parsed = jid ? tryParseJid(jid) : null;
      if (!parsed || parsed.local || parsed.resource) fail(`<host/> without a valid jid (${jid ?? 'none'})`);
      else host = parsed.domain;
      open.push('host');
    } else if (pie && tag.local === 'user') {
      if (host === null) fail('<user/> outside a <host/>');
      stack = [new Element('user', attrsOf(tag, false), [], tag.uri)];
    } else if (isRoot) {
      fail(`not a XEP-0227 file: the root is <${tag.local} xmlns='${tag.uri}'/>`);
    } else {
      onUnknown('other data', `<${tag.local} xmlns='${tag.uri}'/> outside accounts`, host ?? 'file');
      skipping = 1;
    }
  };
  parser.onclosetag = () => {
    if (stack.length > 0) {
      const closed = stack.pop()!;
      if (stack.length === 0 && host !== null) queue.push({ kind: 'user', user: { host, el: closed, file: abs } });
      return;
    }
    if (skipping > 0) { skipping--; return; }
    // After a </host/>, accounts belong to the host this file was included from (if any).
    if (open.pop() === 'host') host = inherited.host;
  };
  const onText = (t: string) => {
    const top = stack[stack.length - 1];
    if (!top) return;
    const last = top.children.length - 1;
    if (last >= 0 && typeof top.children[last] === 'string') top.children[last] += t;
    else top.children.push(t);
  };
  parser.ontext = onText;
  parser.oncdata = onText;

  const drain = async () => {
    while (queue.length > 0 && !error) {
      const q = queue.shift()!;
      if (q.kind === 'user') await onUser(q.user);
      else await readUsers(path.resolve(path.dirname(q.file), q.href), onUser, onUnknown, { host: q.host, chain });
    }
  };

  let stream;
  try {
    // Decoded by the stream, so that a character split between two reads stays whole.
    stream = createReadStream(abs, { encoding: 'utf8' });
    for await (const chunk of stream) {
      parser.write(chunk as string);
      if (error) break;
      await drain();
      if (error) break;
    }
  } catch (e) {
    if (e instanceof Xep0227Error) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new Xep0227Error(`cannot read ${file}: ${code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  } finally {
    stream?.destroy();
  }
  if (!error) {
    // Checked before close(), which resets the parser.
    if (root) fail('empty file');
    else if (stack.length > 0 || !(parser as unknown as { closedRoot: boolean }).closedRoot) fail('the file ends before its root element does');
    else parser.close();
    await drain();
  }
  if (error) throw error;
}

/** The element's attributes by qualified name, namespace declarations left out (the element's own xmlns aside). */
function attrsOf(tag: sax.QualifiedTag, declareNs: boolean): Attrs {
  const out: Attrs = {};
  for (const [name, a] of Object.entries(tag.attributes)) {
    if (name === 'xmlns' || name.startsWith('xmlns:')) continue;
    if (a.prefix && a.prefix !== 'xml') continue; // an exporter's own extension attribute
    out[name] = a.value;
  }
  if (declareNs) out.xmlns = tag.uri;
  return out;
}

// --- mapping -------------------------------------------------------------------------------------

/** A JID of the file as ours: the imported host's JIDs move to our domain; null when not a JID. */
function mapJid(jid: string | undefined, fromHost: string, domain: string): string | null {
  const j = jid ? tryParseJid(jid) : null;
  if (!j) return null;
  if (j.domain !== fromHost) return j.toString();
  const local = j.local ? `${j.local}@` : '';
  return `${local}${domain}${j.resource ? `/${j.resource}` : ''}`;
}

const DIGEST_LENGTH: Record<ScramHash, number> = { 'SHA-1': 20, 'SHA-256': 32 };

/**
 * SCRAM keys of a <scram-credentials/> element. ejabberd 23.01 base64-encodes its already
 * base64-encoded values once more: a key that decodes to base64 of the right length tells so, and
 * then the salt is decoded twice too.
 */
export function scramFromElement(el: Element, hash: ScramHash): StoredScram | null {
  const field = (n: string) => {
    const b = decodeBase64Strict(el.getChildText(n)?.trim() ?? '');
    return b && b.length > 0 ? b : null;
  };
  const iterations = Number(el.getChildText('iter-count')?.trim());
  let salt = field('salt');
  let storedKey = field('stored-key');
  let serverKey = field('server-key');
  if (!salt || !storedKey || !serverKey || !Number.isInteger(iterations) || iterations < 1) return null;
  const len = DIGEST_LENGTH[hash];
  if (storedKey.length !== len) {
    const again = (b: Buffer) => decodeBase64Strict(b.toString('latin1'));
    const [s2, k2, v2] = [again(salt), again(storedKey), again(serverKey)];
    if (!s2 || !k2 || !v2 || k2.length !== len || v2.length !== len) return null;
    [salt, storedKey, serverKey] = [s2, k2, v2];
  }
  if (serverKey.length !== len || salt.length === 0) return null;
  return { salt, iterations, storedKey, serverKey };
}

/** How the account signs in: a password, or the SCRAM keys the file gives; a reason when neither is usable. */
type CredentialPlan = { kind: 'password'; password: string } | { kind: 'scram'; sha1: StoredScram; sha256: StoredScram | null } | { kind: 'none'; reason: string };

function credentialPlan(user: Element): CredentialPlan {
  const password = user.attrs.password;
  if (password) return { kind: 'password', password };
  const scram = user.getChildren('scram-credentials', NS.pieScram);
  const of = (mech: string, hash: ScramHash) => {
    const el = scram.find((s) => s.attrs.mechanism === mech);
    return el ? scramFromElement(el, hash) : null;
  };
  const sha1 = of('SCRAM-SHA-1', 'SHA-1');
  const sha256 = of('SCRAM-SHA-256', 'SHA-256');
  if (sha1) return { kind: 'scram', sha1, sha256 };
  if (scram.length === 0) return { kind: 'none', reason: 'no password and no SCRAM keys' };
  if (sha256) return { kind: 'none', reason: 'SCRAM-SHA-256 keys without SCRAM-SHA-1 ones' };
  return { kind: 'none', reason: `unusable SCRAM keys (${scram.map((s) => s.attrs.mechanism ?? '?').join(', ')})` };
}

/** One PEP node of an account as the file gives it (XEP-0227 §2.10: configuration and items apart). */
interface PepNodePlan {
  /** The configuration form's fields we keep; null when the file gave items only. */
  config: NodeConfig | null;
  affiliations: { jid: string; affiliation: PubsubAffiliation }[];
  subscriptions: { jid: string; state: PubsubSubscriptionState }[];
  /** In the file's order, which is publish order (oldest first). */
  items: { id: string; payload: string }[];
}

interface UserPlan {
  username: string;
  pep: Map<string, PepNodePlan>;
  credentials: CredentialPlan;
  roster: RosterItem[];
  pending: { jid: string; stanza: string }[];
  vcard: string | null;
  privateXml: { key: string; xml: string }[];
  offline: string[];
}

/** What one account element becomes, with what is left out recorded as skipped. */
function planFromElement(ctx: Xep0227Context, u: ParsedUser, report: Xep0227Report): UserPlan | null {
  const name = u.el.attrs.name ?? '';
  const username = normalizeUsername(name, ctx.domain);
  const who = `${name}@${u.host}`;
  if (!username) { skip(report, 'accounts', 'not a valid username', who); return null; }
  const credentials = credentialPlan(u.el);
  if (credentials.kind === 'none') { skip(report, 'accounts', credentials.reason, who); return null; }
  const own = `${username}@${ctx.domain}`;
  const plan: UserPlan = { username, credentials, pep: new Map(), roster: [], pending: [], vcard: null, privateXml: [], offline: [] };
  for (const child of u.el.elements()) {
    if (child.name === 'scram-credentials' && child.ns === NS.pieScram) continue;
    if (child.name === 'query' && child.ns === NS.roster) {
      for (const item of child.elements()) {
        const jid = mapJid(item.attrs.jid, u.host, ctx.domain);
        const bare = jid ? tryParseJid(jid)?.bareString() : null;
        if (item.name !== 'item' || !bare || bare === own) { skip(report, 'roster items', 'not a contact JID', `${who}: ${item.attrs.jid ?? item.name}`); continue; }
        const sub = (item.attrs.subscription ?? 'none') as Subscription;
        if (item.attrs.subscription === 'remove') continue;
        if (!SUBSCRIPTIONS.has(sub)) { skip(report, 'roster items', `subscription '${sub}'`, `${who}: ${bare}`); continue; }
        const groups = [...new Set(item.getChildren('group').map((g) => g.text().trim()).filter((g) => g !== ''))];
        plan.roster.push({
          jid: bare, name: item.attrs.name || null, subscription: sub,
          askOut: item.attrs.ask === 'subscribe', approved: item.attrs.approved === 'true' || item.attrs.approved === '1', groups,
        });
      }
    } else if (child.name === 'presence' && child.attrs.type === 'subscribe') {
      // A subscription request waiting for this user's answer (both Prosody and ejabberd write these).
      const from = mapJid(child.attrs.from, u.host, ctx.domain);
      const bare = from ? tryParseJid(from)?.bareString() : null;
      if (!bare) { skip(report, 'subscription requests', 'no sender JID', who); continue; }
      const stanza = new Element('presence', { xmlns: NS.client, from: bare, to: own, type: 'subscribe' });
      for (const c of child.children) stanza.children.push(typeof c === 'string' ? c : c.clone());
      plan.pending.push({ jid: bare, stanza: stanza.toString() });
    } else if (child.name === 'vCard' && child.ns === NS.vcard) {
      const copy = child.clone();
      copy.attrs.xmlns = NS.vcard;
      const xml = copy.toString();
      if (Buffer.byteLength(xml, 'utf8') > MAX_VCARD_BYTES) skip(report, 'vCards', `larger than ${MAX_VCARD_BYTES / 1024} KiB`, who);
      else plan.vcard = xml;
    } else if (child.name === 'query' && child.ns === NS.private) {
      for (const p of child.elements()) {
        const copy = p.clone();
        copy.attrs.xmlns = p.ns;
        plan.privateXml.push({ key: `{${p.ns}}${p.name}`, xml: copy.toString() });
      }
    } else if (child.name === 'pubsub' && (child.ns === NS.pubsubOwner || child.ns === NS.pubsub)) {
      pepFromElement(child, plan, { who, own, fromHost: u.host, domain: ctx.domain }, report);
    } else if (child.name === 'offline-messages' && PIE_NS.includes(child.ns)) {
      for (const m of child.elements()) {
        if (m.name !== 'message') { skip(report, 'offline messages', `<${m.name}/> is not a message`, who); continue; }
        plan.offline.push(offlineStanza(m, u.host, ctx.domain, own));
      }
    } else {
      const what = KNOWN_UNSUPPORTED[child.ns] ?? `<${child.name} xmlns='${child.ns}'/>`;
      skip(report, 'other data', `${what}: not imported`, who);
    }
  }
  return plan;
}

const PEP_AFFILIATIONS = new Set<string>(['owner', 'publisher', 'publish-only', 'member', 'outcast']);
const PEP_SUBSCRIPTIONS = new Set<string>(['subscribed', 'pending', 'unconfigured']);
/** Fields we keep besides the configuration form's (CONFIG_FIELDS): the access model 'roster' reads it. */
const ROSTER_GROUPS = 'pubsub#roster_groups_allowed';
/**
 * Nodes a file may give items of without their configuration (Prosody's older exports): these hold
 * private data (XEP-0223), so they stay private rather than take the PEP default (presence).
 */
const PRIVATE_NODES = new Set([NS.bookmarks, 'storage:bookmarks', NS.mdsDisplayed]);

/**
 * A user's <pubsub/> elements: the #owner one (per node: <configure/> with a XEP-0004 form,
 * <affiliations/>, <subscriptions/>) and the plain one (per node: <items/> with <item id/>), as
 * XEP-0227 §2.10 and Prosody's xep0227 store write them. JIDs of the imported host move to ours.
 */
function pepFromElement(
  el: Element, plan: UserPlan, at: { who: string; own: string; fromHost: string; domain: string }, report: Xep0227Report,
): void {
  const nodeOf = (name: string): PepNodePlan => {
    let n = plan.pep.get(name);
    if (!n) plan.pep.set(name, n = { config: null, affiliations: [], subscriptions: [], items: [] });
    return n;
  };
  const bare = (jid: string | undefined) => {
    const j = mapJid(jid, at.fromHost, at.domain);
    return j ? tryParseJid(j)?.bareString() ?? null : null;
  };
  for (const part of el.elements()) {
    const name = part.attrs.node;
    if (!name) { skip(report, 'PEP nodes', `<${part.name}/> without a node`, at.who); continue; }
    if (el.ns === NS.pubsub) {
      if (part.name !== 'items') { skip(report, 'PEP nodes', `<${part.name}/> in <pubsub/>`, `${at.who}: ${name}`); continue; }
      const node = nodeOf(name);
      for (const item of part.elements()) {
        const payload = item.elements()[0];
        if (item.name !== 'item' || !item.attrs.id || !payload) { skip(report, 'PEP items', 'an item without an id or a payload', `${at.who}: ${name}`); continue; }
        const copy = payload.clone();
        copy.attrs.xmlns = payload.ns;
        node.items.push({ id: item.attrs.id, payload: copy.toString() });
      }
    } else if (part.name === 'configure') {
      nodeOf(name).config = nodeConfigOf(part, report, `${at.who}: ${name}`);
    } else if (part.name === 'affiliations') {
      for (const a of part.getChildren('affiliation')) {
        const jid = bare(a.attrs.jid);
        const value = a.attrs.affiliation ?? '';
        // The account owns its PEP nodes whatever the list says; 'none' is no affiliation.
        if (jid === at.own || value === 'none') continue;
        if (!jid || !PEP_AFFILIATIONS.has(value)) { skip(report, 'PEP affiliations', `'${value}' of ${a.attrs.jid ?? 'no JID'}`, `${at.who}: ${name}`); continue; }
        nodeOf(name).affiliations.push({ jid, affiliation: value as PubsubAffiliation });
      }
    } else if (part.name === 'subscriptions') {
      for (const sub of part.getChildren('subscription')) {
        const jid = mapJid(sub.attrs.jid, at.fromHost, at.domain);
        // Prosody writes the state in an attribute named 'subscribed'.
        const state = sub.attrs.subscription ?? sub.attrs.subscribed ?? 'subscribed';
        if (state === 'none') continue;
        if (!jid || !PEP_SUBSCRIPTIONS.has(state)) { skip(report, 'PEP subscriptions', `'${state}' of ${sub.attrs.jid ?? 'no JID'}`, `${at.who}: ${name}`); continue; }
        nodeOf(name).subscriptions.push({ jid, state: state as PubsubSubscriptionState });
      }
    } else {
      skip(report, 'PEP nodes', `<${part.name}/> in <pubsub xmlns='${NS.pubsubOwner}'/>`, `${at.who}: ${name}`);
    }
  }
  for (const [name, node] of plan.pep) {
    if (node.config === null && PRIVATE_NODES.has(name)) node.config = { 'pubsub#access_model': 'whitelist', 'pubsub#max_items': 'max' };
  }
}

/**
 * The node configuration fields of a <configure/> form that this server honours, normalised as the
 * owner's configure form is; a field it does not have, or a value it does not allow, is reported.
 */
function nodeConfigOf(configure: Element, report: Xep0227Report, where: string): NodeConfig {
  const x = configure.getChild('x', NS.dataForms);
  const out: NodeConfig = {};
  if (!x) return out;
  let fields;
  try { fields = parseForm(x).fields; } catch { skip(report, 'PEP node settings', 'a malformed data form', where); return out; }
  for (const f of fields) {
    if (!f.var || f.var === 'FORM_TYPE') continue;
    if (f.var === ROSTER_GROUPS) { if (f.values.length) out[f.var] = [...f.values]; continue; }
    const spec = CONFIG_FIELDS.find((c) => c.var === f.var);
    const v = f.values[0];
    if (!spec) { skip(report, 'PEP node settings', `field ${f.var} is not supported`, where); continue; }
    if (v === undefined) continue;
    let value: string | null = v;
    if (spec.type === 'boolean') value = ['1', 'true'].includes(v) ? 'true' : ['0', 'false'].includes(v) ? 'false' : null;
    else if (spec.options) value = spec.options.some((o) => o.value === v) ? v : null;
    else if (spec.var === 'pubsub#max_items') value = v === 'max' || /^[0-9]{1,9}$/.test(v) ? v : null;
    if (value === null) skip(report, 'PEP node settings', `${f.var} '${v}' is not allowed`, where);
    else out[f.var] = value;
  }
  return out;
}

/**
 * An offline message as the offline store keeps it: in jabber:client, addressed to the account, the
 * imported host's JIDs moved to ours, and with the original XEP-0203 delay (one stamped now when the
 * exporter gave none, so that it is not taken for a live message).
 */
function offlineStanza(m: Element, fromHost: string, domain: string, own: string): string {
  const copy = m.clone();
  copy.attrs.xmlns = NS.client;
  copy.ns = NS.client;
  copy.attrs.to = mapJid(copy.attrs.to, fromHost, domain) ?? own;
  if (copy.attrs.from !== undefined) {
    const from = mapJid(copy.attrs.from, fromHost, domain);
    if (from) copy.attrs.from = from;
    else delete copy.attrs.from;
  }
  const delay = copy.getChild('delay', NS.delay);
  if (delay) {
    if (delay.attrs.from === fromHost) delay.attrs.from = domain;
  } else {
    copy.append(new Element('delay', { xmlns: NS.delay, from: domain, stamp: formatDateTimeSeconds(new Date()) }));
  }
  return copy.toString();
}

function unreachable(): never {
  throw new Error('an account without credentials is skipped before it is written');
}

function count(report: Xep0227Report, plan: UserPlan): void {
  report.rosterItems += plan.roster.length;
  report.pendingSubscriptions += plan.pending.length;
  report.vcards += plan.vcard !== null ? 1 : 0;
  report.privateXml += plan.privateXml.length;
  report.offlineMessages += plan.offline.length;
  report.pepNodes += plan.pep.size;
  for (const n of plan.pep.values()) report.pepItems += n.items.length;
  if (plan.credentials.kind === 'scram' && !plan.credentials.sha256) report.sha1Only.push(plan.username);
}

async function planUser(ctx: Xep0227Context, u: ParsedUser, report: Xep0227Report): Promise<void> {
  const plan = planFromElement(ctx, u, report);
  if (!plan) return;
  if (await ctx.stores.users.get(plan.username)) report.users.overwritten.push(plan.username);
  else report.users.created++;
  count(report, plan);
}

/**
 * Writes one account. An existing account of that name is overwritten: its credentials, roster and
 * vCard become the file's (what the file lacks is removed), private XML of the same names is
 * replaced, and the file's offline messages join its queue.
 */
async function applyUser(ctx: Xep0227Context, u: ParsedUser, report: Xep0227Report): Promise<void> {
  const plan = planFromElement(ctx, u, report);
  if (!plan) return;
  const { stores } = ctx;
  const c = plan.credentials;
  const credentials: StoredCredentials = c.kind === 'password'
    ? await credentialsFor(c.password, ctx.scramIterations)
    : c.kind === 'scram' ? { sha1: c.sha1, sha256: c.sha256 } : unreachable();
  const user = plan.username;
  if (await stores.users.create(user, credentials)) {
    report.users.created++;
  } else {
    await stores.users.setCredentials(user, credentials);
    report.users.overwritten.push(user);
    for (const item of (await stores.roster.get(user)).items) await stores.roster.remove(user, item.jid);
    await stores.userData.delete(user, VCARD_KIND, VCARD_KEY);
  }
  for (const item of plan.roster) await stores.roster.put(user, item);
  for (const p of plan.pending) await stores.roster.putPendingIn(user, p.jid, p.stanza);
  if (plan.vcard !== null) await stores.userData.put(user, VCARD_KIND, VCARD_KEY, plan.vcard);
  for (const p of plan.privateXml) await stores.userData.put(user, PRIVATE_KIND, p.key, p.xml);
  // Each PEP node of the file replaces the account's node of that name (items and lists with it);
  // its items keep the file's order as their publish order.
  const own = `${user}@${ctx.domain}`;
  const pubsub = createPubsubStore(stores.db);
  for (const [node, n] of plan.pep) {
    await pubsub.deleteNode(own, node);
    await pubsub.createNode({ service: own, node, owner: own, config: n.config ?? {} });
    for (const a of n.affiliations) await pubsub.setAffiliation(own, node, a.jid, a.affiliation);
    for (const s of n.subscriptions) await pubsub.setSubscription(own, node, s.jid, s.state);
    for (const item of n.items) await pubsub.publish(own, node, { id: item.id, publisher: own, payload: item.payload }, null);
    const keep = n.config?.['pubsub#max_items'];
    if (typeof keep === 'string' && /^[0-9]+$/.test(keep)) await pubsub.trim(own, node, Number(keep));
  }
  let stored = 0;
  for (const m of plan.offline) {
    if (await stores.offline.push(user, m, ctx.config.limits.offlineMessages)) stored++;
    else skip(report, 'offline messages', 'the offline queue is full', `${user}@${ctx.domain}`);
  }
  count(report, { ...plan, offline: plan.offline.slice(0, stored) });
}
