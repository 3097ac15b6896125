// Multi-User Chat (XEP-0045) and direct invitations (XEP-0249): the wire elements as plain objects
// and back. Pure codec: which requests are allowed, and what the room does, is the room's business.
import { Element, type Attrs } from './xml.js';
import { Jid, JidError, parseJid } from './jid.js';
import { StanzaError, type StanzaErrorCondition } from './errors.js';
import { parseDateTime } from './datetime.js';
import { NS } from './namespaces.js';

/** The MUC namespaces by short name; the values are NS's (one table), this is a shorter spelling. */
export const MUC_NS = {
  muc: NS.muc,
  user: NS.mucUser,
  admin: NS.mucAdmin,
  owner: NS.mucOwner,
  roominfo: NS.mucRoominfo,
  roomconfig: NS.mucRoomconfig,
  request: NS.mucRequest,
  conference: NS.conference,
  occupantId: NS.occupantId,
} as const;

/** Status codes of XEP-0045 §15.6.2. */
export const STATUS = {
  /** Any occupant may see occupants' real JIDs. */
  nonAnonymous: 100,
  /** Affiliation changed while the user was not in the room. */
  affiliationChanged: 101,
  showsUnavailable: 102,
  noLongerShowsUnavailable: 103,
  /** A room configuration change that is not privacy-related. */
  configChanged: 104,
  /** This presence is about the recipient itself. */
  selfPresence: 110,
  loggingEnabled: 170,
  loggingDisabled: 171,
  nowNonAnonymous: 172,
  nowSemiAnonymous: 173,
  nowFullyAnonymous: 174,
  roomCreated: 201,
  /** The service assigned or modified the occupant's nick. */
  nickAssigned: 210,
  banned: 301,
  nickChanged: 303,
  kicked: 307,
  removedAffiliationChange: 321,
  removedMembersOnly: 322,
  removedShutdown: 332,
  removedError: 333,
} as const;

export type Affiliation = 'owner' | 'admin' | 'member' | 'outcast' | 'none';
export type Role = 'moderator' | 'participant' | 'visitor' | 'none';

export const AFFILIATIONS: readonly Affiliation[] = ['owner', 'admin', 'member', 'outcast', 'none'];
export const ROLES: readonly Role[] = ['moderator', 'participant', 'visitor', 'none'];

export function isAffiliation(s: string): s is Affiliation {
  return (AFFILIATIONS as readonly string[]).includes(s);
}

export function isRole(s: string): s is Role {
  return (ROLES as readonly string[]).includes(s);
}

/** A request that does not follow the protocol; condition is what the error reply carries. */
export class MucProtocolError extends StanzaError {
  constructor(condition: StanzaErrorCondition, text?: string) {
    super(condition, text);
    this.name = 'MucProtocolError';
  }
}

// ---------------------------------------------------------------------------------------------
// Entering a room (§7.2)

export interface HistoryRequest {
  maxchars?: number;
  maxstanzas?: number;
  seconds?: number;
  since?: Date;
}

export interface JoinRequest {
  password?: string;
  history?: HistoryRequest;
}

/**
 * The MUC extension of a presence sent to a room JID; null when there is none (a nick change, a
 * presence update, or a groupchat 1.0 client). History attributes that are not valid are left out,
 * as if absent.
 */
export function parseJoin(presence: Element): JoinRequest | null {
  const x = presence.getChild('x', MUC_NS.muc);
  if (!x) return null;
  const join: JoinRequest = {};
  const password = x.getChildText('password', MUC_NS.muc);
  if (password !== undefined) join.password = password;
  const h = x.getChild('history', MUC_NS.muc);
  if (h) {
    const history: HistoryRequest = {};
    const maxchars = parseNonNegativeInt(h.attrs.maxchars);
    if (maxchars !== undefined) history.maxchars = maxchars;
    const maxstanzas = parseNonNegativeInt(h.attrs.maxstanzas);
    if (maxstanzas !== undefined) history.maxstanzas = maxstanzas;
    const seconds = parseNonNegativeInt(h.attrs.seconds);
    if (seconds !== undefined) history.seconds = seconds;
    const since = h.attrs.since === undefined ? undefined : parseDateTime(h.attrs.since) ?? undefined;
    if (since !== undefined) history.since = since;
    join.history = history;
  }
  return join;
}

/** xs:int lexical form restricted to non-negative values (leading '+' and zeros allowed). */
const NON_NEGATIVE_INT = /^\+?\d+$/;

function parseNonNegativeInt(s: string | undefined): number | undefined {
  if (s === undefined) return undefined;
  const t = s.trim();
  if (!NON_NEGATIVE_INT.test(t)) return undefined;
  const n = Number(t);
  return Number.isSafeInteger(n) ? n : undefined;
}


// ---------------------------------------------------------------------------------------------
// <x xmlns='http://jabber.org/protocol/muc#user'/> (§7, §8, §9, §10)

export interface MucActor {
  jid?: string;
  nick?: string;
}

export interface MucUserItem {
  affiliation: Affiliation;
  role: Role;
  jid?: string;
  nick?: string;
  actor?: MucActor;
  reason?: string;
}

export interface MucDestroy {
  /** An alternate venue. */
  jid?: string;
  reason?: string;
  password?: string;
}

/** A mediated invitation (§7.8.2): 'to' from inviter to room, 'from' from room to invitee. */
export interface MucInvite {
  to?: string;
  from?: string;
  reason?: string;
  /** Present when the invitation continues a one-to-one chat, with that chat's thread if any. */
  continue?: { thread?: string };
}

/** A declined invitation (§7.8.2): 'to' from invitee to room, 'from' from room to inviter. */
export interface MucDecline {
  to?: string;
  from?: string;
  reason?: string;
}

export interface MucUserOptions {
  items?: readonly MucUserItem[];
  statuses?: readonly number[];
  destroy?: MucDestroy;
  invite?: MucInvite | readonly MucInvite[];
  decline?: MucDecline;
  password?: string;
}

/** Copies the defined values, in the order given: serialization keeps insertion order. */
function attrs(pairs: [string, string | undefined][]): Attrs {
  const out: Attrs = {};
  for (const [k, v] of pairs) if (v !== undefined) out[k] = v;
  return out;
}

function textChild(parent: Element, name: string, text: string | undefined): void {
  if (text !== undefined) parent.c(name).t(text);
}

/** Builds the muc#user extension, children in the order of XEP-0045's examples. */
export function mucUserX(opts: MucUserOptions): Element {
  const x = new Element('x', { xmlns: MUC_NS.user });
  for (const item of opts.items ?? []) {
    // Attribute order follows the examples (alphabetical, as canonicalized).
    const el = x.c('item', attrs([
      ['affiliation', item.affiliation], ['jid', item.jid], ['nick', item.nick], ['role', item.role],
    ]));
    if (item.actor) el.c('actor', attrs([['jid', item.actor.jid], ['nick', item.actor.nick]]));
    textChild(el, 'reason', item.reason);
  }
  for (const code of opts.statuses ?? []) x.c('status', { code: String(code) });
  if (opts.destroy) appendDestroy(x, opts.destroy);
  const invites = opts.invite === undefined ? [] : Array.isArray(opts.invite) ? opts.invite : [opts.invite];
  for (const invite of invites as readonly MucInvite[]) {
    const el = x.c('invite', attrs([['from', invite.from], ['to', invite.to]]));
    textChild(el, 'reason', invite.reason);
    if (invite.continue) el.c('continue', attrs([['thread', invite.continue.thread]]));
  }
  if (opts.decline) {
    const el = x.c('decline', attrs([['from', opts.decline.from], ['to', opts.decline.to]]));
    textChild(el, 'reason', opts.decline.reason);
  }
  textChild(x, 'password', opts.password);
  return x;
}

function appendDestroy(parent: Element, destroy: MucDestroy): void {
  const el = parent.c('destroy', attrs([['jid', destroy.jid]]));
  textChild(el, 'reason', destroy.reason);
  textChild(el, 'password', destroy.password);
}

export interface MucInvitations {
  invites: MucInvite[];
  decline?: MucDecline;
  /** The room password, sent by the room along with an invitation. */
  password?: string;
}

/**
 * The invitations and decline of a muc#user extension of a message. Throws MucProtocolError when
 * an invite or decline has neither 'to' nor 'from', or an address that is not a JID.
 */
export function parseInvites(x: Element): MucInvitations {
  expectElement(x, 'x', MUC_NS.user);
  const out: MucInvitations = { invites: [] };
  for (const el of x.getChildren('invite', MUC_NS.user)) {
    const invite: MucInvite = addresses(el);
    const reason = el.getChildText('reason', MUC_NS.user);
    if (reason !== undefined) invite.reason = reason;
    const cont = el.getChild('continue', MUC_NS.user);
    if (cont) invite.continue = cont.attrs.thread === undefined ? {} : { thread: cont.attrs.thread };
    out.invites.push(invite);
  }
  const declineEl = x.getChild('decline', MUC_NS.user);
  if (declineEl) {
    const decline: MucDecline = addresses(declineEl);
    const reason = declineEl.getChildText('reason', MUC_NS.user);
    if (reason !== undefined) decline.reason = reason;
    out.decline = decline;
  }
  const password = x.getChildText('password', MUC_NS.user);
  if (password !== undefined) out.password = password;
  return out;
}

function addresses(el: Element): { to?: string; from?: string } {
  const out: { to?: string; from?: string } = {};
  if (el.attrs.to !== undefined) out.to = prepareJid(el.attrs.to);
  if (el.attrs.from !== undefined) out.from = prepareJid(el.attrs.from);
  if (out.to === undefined && out.from === undefined) {
    throw new MucProtocolError('bad-request', `<${el.name}/> without 'to' or 'from'`);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Direct invitations (XEP-0249)

export interface DirectInvite {
  /** The room's bare JID. */
  jid: string;
  password?: string;
  reason?: string;
  continue?: boolean;
  thread?: string;
}

export function directInvite(room: string, opts: Omit<DirectInvite, 'jid'> = {}): Element {
  return new Element('x', attrs([
    ['xmlns', MUC_NS.conference],
    ['jid', room],
    ['password', opts.password],
    ['reason', opts.reason],
    ['continue', opts.continue === undefined ? undefined : String(opts.continue)],
    ['thread', opts.thread],
  ]));
}

/**
 * Parses <x xmlns='jabber:x:conference'/>. Throws MucProtocolError when the required room JID is
 * missing or malformed; a 'continue' that is not an xs:boolean is left out.
 */
export function parseDirectInvite(x: Element): DirectInvite {
  expectElement(x, 'x', MUC_NS.conference);
  if (x.attrs.jid === undefined) throw new MucProtocolError('bad-request', "invitation without 'jid'");
  const invite: DirectInvite = { jid: prepareJid(x.attrs.jid) };
  if (x.attrs.password !== undefined) invite.password = x.attrs.password;
  if (x.attrs.reason !== undefined) invite.reason = x.attrs.reason;
  const cont = parseBoolean(x.attrs.continue);
  if (cont !== undefined) invite.continue = cont;
  if (x.attrs.thread !== undefined) invite.thread = x.attrs.thread;
  return invite;
}

function parseBoolean(s: string | undefined): boolean | undefined {
  if (s === 'true' || s === '1') return true;
  if (s === 'false' || s === '0') return false;
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Admin and moderator lists (§8, §9): <query xmlns='http://jabber.org/protocol/muc#admin'/>

export interface AdminItem {
  affiliation?: Affiliation;
  role?: Role;
  jid?: string;
  nick?: string;
  reason?: string;
}

/**
 * The items of a muc#admin query, JIDs and nicks prepared. Throws MucProtocolError: bad-request
 * for an unknown affiliation or role, an item with neither, or a query without items;
 * jid-malformed for a 'jid' or 'nick' that is not a valid address part.
 */
export function parseAdminQuery(query: Element): { items: AdminItem[] } {
  expectElement(query, 'query', MUC_NS.admin);
  const items: AdminItem[] = [];
  for (const el of query.getChildren('item', MUC_NS.admin)) {
    const { affiliation, role, jid, nick } = el.attrs;
    const item: AdminItem = {};
    if (affiliation !== undefined) {
      if (!isAffiliation(affiliation)) throw new MucProtocolError('bad-request', `unknown affiliation: ${affiliation}`);
      item.affiliation = affiliation;
    }
    if (role !== undefined) {
      if (!isRole(role)) throw new MucProtocolError('bad-request', `unknown role: ${role}`);
      item.role = role;
    }
    if (item.affiliation === undefined && item.role === undefined) {
      throw new MucProtocolError('bad-request', 'item without affiliation or role');
    }
    if (jid !== undefined) item.jid = prepareJid(jid);
    if (nick !== undefined) {
      const prepared = prepareNick(nick);
      if (prepared === null) throw new MucProtocolError('jid-malformed', 'invalid nick');
      item.nick = prepared;
    }
    const reason = el.getChildText('reason', MUC_NS.admin);
    if (reason !== undefined) item.reason = reason;
    items.push(item);
  }
  if (items.length === 0) throw new MucProtocolError('bad-request', 'query without items');
  return { items };
}

/** Builds a muc#admin query: a list result, or a request. */
export function adminQuery(items: readonly AdminItem[]): Element {
  const query = new Element('query', { xmlns: MUC_NS.admin });
  for (const item of items) {
    const el = query.c('item', attrs([
      ['affiliation', item.affiliation], ['jid', item.jid], ['nick', item.nick], ['role', item.role],
    ]));
    textChild(el, 'reason', item.reason);
  }
  return query;
}

// ---------------------------------------------------------------------------------------------
// Owner: destroying a room (§10.9)

/**
 * The <destroy/> of a muc#owner query; null when the query has none (it is then about the room
 * configuration). Throws MucProtocolError jid-malformed for an alternate venue that is not a JID.
 */
export function parseDestroy(query: Element): MucDestroy | null {
  expectElement(query, 'query', MUC_NS.owner);
  const el = query.getChild('destroy', MUC_NS.owner);
  if (!el) return null;
  const destroy: MucDestroy = {};
  if (el.attrs.jid !== undefined) destroy.jid = prepareJid(el.attrs.jid);
  const reason = el.getChildText('reason', MUC_NS.owner);
  if (reason !== undefined) destroy.reason = reason;
  const password = el.getChildText('password', MUC_NS.owner);
  if (password !== undefined) destroy.password = password;
  return destroy;
}

/** Builds the owner's destroy request. */
export function destroyQuery(destroy: MucDestroy): Element {
  const query = new Element('query', { xmlns: MUC_NS.owner });
  appendDestroy(query, destroy);
  return query;
}

// ---------------------------------------------------------------------------------------------
// Nicknames (§7.2.8: a room nick is the resourcepart of an occupant JID)

const NICK_HOST = new Jid('room', 'muc.invalid');

/** The nick prepared as a resourcepart (RFC 7622 §3.4); null when it is not a valid nick. */
export function prepareNick(nick: string): string | null {
  // §7.2.8 (and Prosody): a nick of nothing but white space is not a nick.
  if (nick.trim() === '') return null;
  try {
    return NICK_HOST.withResource(nick).resource;
  } catch (err) {
    if (err instanceof JidError) return null;
    throw err;
  }
}

export function isValidNick(nick: string): boolean {
  return prepareNick(nick) !== null;
}

// ---------------------------------------------------------------------------------------------

function expectElement(e: Element, name: string, ns: string): void {
  if (e.name !== name || e.ns !== ns) throw new MucProtocolError('bad-request', `expected <${name} xmlns='${ns}'/>`);
}

function prepareJid(s: string): string {
  try {
    return parseJid(s).toString();
  } catch (err) {
    if (err instanceof JidError) throw new MucProtocolError('jid-malformed', `invalid JID: ${s}`);
    throw err;
  }
}
