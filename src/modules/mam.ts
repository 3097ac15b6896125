// Message Archive Management for accounts (XEP-0313): every one-to-one message an account sends or
// receives goes into that account's own archive, keyed by its bare JID, and the account queries it.
// Received messages carry their archive id (XEP-0359 <stanza-id/>) and reach the recipient only once
// archived; writes are group-committed, one multi-row INSERT per batch. Preferences per XEP-0441.
//
// What a personal archive entry holds (ArchiveEntry is shared with room archives, whose fields mean
// sender): fromJid is the conversation partner's JID as addressed, full when it had a resource (the
// recipient's 'to' for a sent message, the sender's 'from' for a received one), and realJid the
// partner's bare JID. So a bare `with` matches every resource of the partner and a full one matches
// exactly (XEP-0313 §4.1.1), and `with` = the account itself finds only messages to itself.
import { randomFillSync } from 'node:crypto';
import { Element } from '../../protocol/xml.js';
import { NS } from '../../protocol/namespaces.js';
import { StanzaError } from '../../protocol/errors.js';
import { tryParseJid, type Jid } from '../../protocol/jid.js';
import type { ArchiveEntry } from '../../storage/types.js';
import { archiveWriter, type ArchiveWriter } from '../archive-writer.js';
import type { Module, Server } from '../context.js';
import { answerMamQuery, mamFormQuery, mamMetadata } from '../mam-query.js';
import { storedOriginId } from '../muc/recent.js';
import { SESSION_START_READ } from './session-start.js';

const MODULE = 'mam';
/**
 * How long after binding (following a failed resumption) a one-to-one message is checked for a resend.
 * A minute: on a loaded machine a client's resends came more than 10 s after its bind (its rooms to
 * join first, a second connection lost), and only such sessions pay the query.
 */
const RESENT_WINDOW_MS = 60_000;
/** The archive entries such a check reads: the newest, at most this many and this old. */
const RESENT_LOOKBACK = 200;
const RESENT_SINCE_MS = 5 * 60_000;
const PREFS_KIND = 'mam-prefs';
const PREFS_KEY = 'prefs';
const TOPIC = 'mam/prefs';
/** Preferences of accounts without a session here: kept this long, at most this many. */
const REMOTE_PREFS_MS = 60_000;
const REMOTE_PREFS_MAX = 10_000;

// --- what is archived ------------------------------------------------------------------------------

/**
 * XEP-0313 §6.1.1: chat and normal messages with a body (or a XEP-0334 <store/> hint); never
 * groupchat, headline or error, nor anything marked <no-store/> or <no-permanent-store/>.
 */
export function archivable(stanza: Element): boolean {
  if (stanza.name !== 'message') return false;
  const type = stanza.attrs.type;
  if (type !== undefined && type !== 'chat' && type !== 'normal') return false;
  let content = false;
  for (const c of stanza.children) {
    if (typeof c === 'string') continue;
    if (c.ns === NS.hints) {
      if (c.name === 'no-store' || c.name === 'no-permanent-store') return false;
      if (c.name === 'store') content = true;
    } else if (c.name === 'body' && isStanzaNs(c.ns)) {
      content = true;
    } else if (c.name === 'x' && c.ns === NS.mucUser) {
      // A private message through a room (XEP-0045 §7.5): the room's business, not the account's.
      return false;
    }
  }
  return content;
}

/** Stanzas from clients are in jabber:client, those from components in jabber:component:accept. */
const isStanzaNs = (ns: string) => ns === NS.client || ns === NS.component;

/** Every body's text, for full-text search; null without one. */
function bodyText(stanza: Element): string | null {
  let text: string | null = null;
  for (const c of stanza.children) {
    if (typeof c !== 'string' && c.name === 'body' && isStanzaNs(c.ns)) text = text === null ? c.text() : `${text}\n${c.text()}`;
  }
  return text;
}

// --- preferences (XEP-0441) -------------------------------------------------------------------------

export type ArchiveDefault = 'always' | 'never' | 'roster';
export interface MamPrefs {
  default: ArchiveDefault;
  /** Normalised JIDs, bare or full, in the order the user gave them. */
  always: string[];
  never: string[];
}

/** Archive everything unless told otherwise, as Prosody does. */
export const DEFAULT_PREFS: Readonly<MamPrefs> = Object.freeze({ default: 'always', always: [], never: [] });
const DEFAULTS = new Set<string>(['always', 'never', 'roster']);

/** Reads a <prefs/> set; JIDs are normalised, duplicates dropped and a JID in both lists is never archived. */
export function parsePrefs(prefs: Element): MamPrefs {
  const def = prefs.attrs.default;
  if (def === undefined || !DEFAULTS.has(def)) throw new StanzaError('bad-request', "default must be 'always', 'never' or 'roster'");
  const list = (name: string): string[] => {
    const out = new Set<string>();
    for (const holder of prefs.getChildren(name, NS.mam)) {
      for (const j of holder.getChildren('jid', NS.mam)) {
        const jid = tryParseJid(j.text().trim());
        if (!jid) throw new StanzaError('jid-malformed', `invalid JID in <${name}/>`);
        out.add(jid.toString());
      }
    }
    return [...out];
  };
  const never = list('never');
  const neverSet = new Set(never);
  return { default: def as ArchiveDefault, always: list('always').filter((j) => !neverSet.has(j)), never };
}

/** The <prefs/> answer: both lists present even when empty (XEP-0441 §2.1). */
export function prefsElement(p: MamPrefs): Element {
  const el = new Element('prefs', { xmlns: NS.mam, default: p.default });
  const always = el.c('always');
  for (const j of p.always) always.c('jid').t(j);
  const never = el.c('never');
  for (const j of p.never) never.c('jid').t(j);
  return el;
}

/**
 * XEP-0441 §2.3: a listed full JID matches the partner exactly, a listed bare JID any of its
 * resources; 'never' wins. 'roster' means the default needs the user's roster to decide.
 */
export function prefsDecision(p: MamPrefs, partner: Jid): boolean | 'roster' {
  if (p.always.length > 0 || p.never.length > 0) {
    const full = partner.toString();
    const bare = partner.bareString();
    const listed = (l: string[]) => l.includes(full) || l.includes(bare);
    if (listed(p.never)) return false;
    if (listed(p.always)) return true;
  }
  return p.default === 'roster' ? 'roster' : p.default === 'always';
}

function decodePrefs(value: string | null, fallback: Readonly<MamPrefs>): MamPrefs {
  if (value === null) return fallback;
  try {
    const v = JSON.parse(value) as Partial<MamPrefs>;
    if (typeof v.default === 'string' && DEFAULTS.has(v.default) && Array.isArray(v.always) && Array.isArray(v.never)) {
      return { default: v.default, always: v.always.map(String), never: v.never.map(String) };
    }
  } catch {
    // unreadable: the defaults apply
  }
  return fallback;
}

// --- archive ids and writes -------------------------------------------------------------------------

/**
 * Archive UIDs (XEP-0313 §3: unpredictable, never reused): 96 random bits, base64url, drawn from a
 * pool refilled from the system's CSPRNG a few hundred ids at a time.
 */
export class StanzaIds {
  private pool = Buffer.alloc(12 * 256);
  private at = this.pool.length;

  next(): string {
    if (this.at === this.pool.length) {
      randomFillSync(this.pool);
      this.at = 0;
    }
    const id = this.pool.toString('base64url', this.at, this.at + 12);
    this.at += 12;
    return id;
  }
}

// --- the module -------------------------------------------------------------------------------------


export const mamModule: Module = {
  name: MODULE,
  init(server: Server) {
    const writer = archiveWriter(server);
    // The policy of accounts that never set preferences (archive.defaultPolicy; XEP-0313 §6).
    const serverDefault: Readonly<MamPrefs> = Object.freeze({ ...DEFAULT_PREFS, default: server.config.archive.defaultPolicy });
    const ids = new StanzaIds();
    const bareOf = (user: string) => `${user}@${server.domain}`;

    for (const f of [NS.mam, NS.mamExtended, NS.fulltext, NS.sid]) server.disco.accountFeatures.add(f);

    // --- preferences, cached -------------------------------------------------------------------------
    // For accounts with a session on this node while it lasts; for others (the recipients of messages
    // this node archives for accounts on other nodes) for a minute, so a message to another node's
    // account costs no read. A change is broadcast to every node; the minute bounds what a lost
    // broadcast (a Redis failover) leaves stale.

    const cached = new Map<string, MamPrefs>();
    const remote = new Map<string, { prefs: MamPrefs; until: number }>();
    // Changes heard so far: a load that overlapped one keeps its answer out of the caches.
    let changes = 0;
    // list, not get: concurrent logins share one statement.
    const loadPrefs = async (user: string) =>
      decodePrefs((await server.stores.userData.list(user, PREFS_KIND)).find((r) => r.key === PREFS_KEY)?.value ?? null, serverDefault);
    /** Loads in flight, until their answers are cached. */
    const loading = new Map<string, Promise<MamPrefs>>();
    const load = (user: string): Promise<MamPrefs> => {
      const seen = changes;
      const p = loadPrefs(user);
      loading.set(user, p);
      p.then((prefs) => {
        if (changes !== seen) return;
        if (server.localOf(bareOf(user)).length > 0) cached.set(user, prefs);
        else {
          if (remote.size >= REMOTE_PREFS_MAX) remote.delete(remote.keys().next().value!);
          remote.set(user, { prefs, until: Date.now() + REMOTE_PREFS_MS });
        }
      }, () => { /* the caller hears of it */ }).finally(() => { if (loading.get(user) === p) loading.delete(user); });
      return p;
    };
    /** What this node holds for an account without a session here, if it is not stale. */
    const heldRemote = (user: string): MamPrefs | undefined => {
      const r = remote.get(user);
      return r && r.until > Date.now() ? r.prefs : undefined;
    };
    const prefsFor = (user: string): MamPrefs | Promise<MamPrefs> =>
      cached.get(user) ?? heldRemote(user) ?? loading.get(user) ?? load(user);

    // Started, not awaited, before the block list's read (which is awaited: see blocking.ts), so the
    // session-start reads share one statement.
    server.hooks.on('session/bound', (session) => {
      const user = session.username;
      if (cached.has(user) || loading.has(user)) return false;
      const held = heldRemote(user);
      remote.delete(user);
      if (held) cached.set(user, held);
      else load(user).catch((e: unknown) => server.log.error('archive preferences load failed', { err: e, user }));
      return false;
    }, SESSION_START_READ);
    server.hooks.on('session/closed', ({ session }) => {
      if (server.localOf(session.bare).length === 0) cached.delete(session.username);
      return false;
    });
    server.cluster.on(TOPIC, (data) => {
      const user = (data as { user?: unknown } | null)?.user;
      if (typeof user !== 'string') return;
      changes++;
      remote.delete(user);
      if (cached.delete(user)) {
        load(user).catch((e: unknown) => server.log.error('archive preferences reload failed', { err: e, user }));
      }
    });

    /** Does the user's archive take a message with this partner? */
    const wants = (user: string, partner: Jid): boolean | Promise<boolean> => {
      const decide = (p: MamPrefs): boolean | Promise<boolean> => {
        const d = prefsDecision(p, partner);
        if (d !== 'roster') return d;
        return server.stores.roster.getItem(user, partner.bareString()).then((item) => item !== null);
      };
      const p = prefsFor(user);
      return p instanceof Promise ? p.then(decide) : decide(p);
    };

    /** Rooms and other internal services (not components, not the host) keep their own history. */
    const isService = (jid: Jid): boolean => {
      if (jid.domain === server.domain || !server.router.isLocalDomain(jid.domain)) return false;
      for (let d = jid.domain; ; ) {
        if (Object.hasOwn(server.config.components, d)) return false;
        const dot = d.indexOf('.');
        if (dot === -1) return true;
        d = d.slice(dot + 1);
      }
    };

    // --- ordered queuing -------------------------------------------------------------------------------

    // Per archive: settles once the last entry whose decision was asynchronous is queued, so that
    // entries reach the writer, and so the archive, in the order the messages came.
    const undecided = new Map<string, Promise<void>>();
    // Per recipient: settles once the last message held for archiving may be delivered, so that
    // messages to one account keep their order (RFC 6120 §10.1) whether or not they are archived.
    const held = new Map<string, Promise<void>>();
    const settle = (map: Map<string, Promise<void>>, key: string, p: Promise<unknown>) => {
      // The entry goes as the tail settles (one promise per message, not two).
      const last = () => { if (map.get(key) === tail) map.delete(key); };
      const tail: Promise<void> = p.then(last, last);
      map.set(key, tail);
    };

    /**
     * Queues the entry made by `make` (called when it is queued) if `decision` says so: false when
     * nothing is archived, else a promise that settles once it is committed (or once the decision
     * turned out no). Its value is nothing: a hook's promise that resolves without true has not
     * consumed the stanza, so it serves as the hook's result without a promise of its own.
     */
    const enqueue = (archive: string, decision: boolean | Promise<boolean>, make: () => ArchiveEntry, also: ArchiveEntry | null = null): false | Promise<void> => {
      const before = undecided.get(archive);
      // The sender's copy, if it rides along, commits in the same statement: both or neither.
      const alone = () => { if (also) writer.append(also).catch((e: unknown) => server.log.error('archiving a sent message failed', { err: e, archive: also.archive })); };
      if (before === undefined && typeof decision === 'boolean') {
        if (!decision) alone();
        return decision ? writer.append(make(), null, also && [also]) : false;
      }
      const decided = before === undefined ? (decision as Promise<boolean>) : before.then(() => decision);
      let written: Promise<void> | undefined;
      const queued = decided.then((yes) => {
        if (!yes) alone();
        written = yes ? writer.append(make(), null, also && [also]) : undefined;
      }, (e: unknown) => { alone(); throw e; });
      settle(undecided, archive, queued);
      return queued.then(() => written);
    };

    // The serialisation of the message a local client is sending, for the recipient's copy in the
    // same synchronous routing pass: nothing between the two hooks rewrites a message.
    let sending: { stanza: Element; xml: string } | null = null;
    // The sender's copy of a message whose recipient is a local account, waiting for the recipient's
    // copy: the two commit together, so a message refused because the recipient's copy could
    // not be stored (internal-server-error) does not stay in the sender's archive either.
    const sentCopies = new WeakMap<Element, ArchiveEntry>();

    // --- the sender's copy ---------------------------------------------------------------------------

    // The stanza-id this server added for a sent carbon (XEP-0313 §3.5), removed before routing.
    const carbonIds = new WeakMap<Element, Element>();

    // Before carbons (-50): the sent copies can carry the sender's archive id.
    server.hooks.on('client/stanza', ({ stanza, session }) => {
      if (stanza.name !== 'message' || stanza.ns !== NS.client || !archivable(stanza)) return false;
      const to = stanza.attrs.to === undefined ? session.jid.bare() : tryParseJid(stanza.attrs.to);
      // To the account itself: archived once, as received.
      if (!to || to.bareString() === session.bare || isService(to)) return false;
      const xml = stanza.toString();
      sending = { stanza, xml };
      queueMicrotask(() => { if (sending?.stanza === stanza) sending = null; });
      const id = ids.next();
      const make = (): ArchiveEntry => ({
        archive: session.bare, stanzaId: id, stamp: new Date(), fromJid: to.toString(), realJid: to.bareString(),
        body: bodyText(stanza), stanza: xml,
      });
      const decision = wants(session.username, to);
      if (decision === true && !undecided.has(session.bare) && to.domain === server.domain && to.local) {
        // Decided, and nothing of this archive waits before it: it goes with the recipient's copy when
        // that is queued (received(), below), or alone if the recipient's archive does not take it. A
        // message refused before it gets there (blocked) is in neither archive.
        sentCopies.set(stanza, make());
      } else {
        const r = enqueue(session.bare, decision, make);
        if (r === false) return false;
        r.catch((e: unknown) => server.log.error('archiving a sent message failed', { err: e, user: session.username }));
      }
      // Only when the decision is already made: the carbons go out now.
      if (!undecided.has(session.bare) && server.sessions.resources(session.bare).some((rec) => rec.carbons && rec.jid !== session.full)) {
        const sid = new Element('stanza-id', { xmlns: NS.sid, by: session.bare, id });
        stanza.children.push(sid);
        carbonIds.set(stanza, sid);
      }
      return false;
    }, -40);

    // After carbons: the recipient must not see the sender's archive id (XEP-0313 §3.5).
    server.hooks.on('client/stanza', ({ stanza }) => {
      const sid = carbonIds.get(stanza);
      if (sid) {
        stanza.children = stanza.children.filter((c) => c !== sid);
        carbonIds.delete(stanza);
      }
      return false;
    }, -60);

    // --- the recipient's copy ------------------------------------------------------------------------

    const received = (stanza: Element, from: Jid, to: Jid): false | Promise<void> => {
      if (to.domain !== server.domain || !to.local) return false;
      const bare = to.bareString();
      // XEP-0359 §5: ids claiming to come from this archive were forged.
      if (stanza.getChild('stanza-id', NS.sid) && stripOwnIds(stanza, bare) && sending?.stanza === stanza) sending = null;
      let archived: false | Promise<void> = false;
      if (archivable(stanza) && !isService(from)) {
        const user = to.local;
        // An account nobody is connected to may not exist: nothing is archived for it then.
        const decision = server.sessions.resources(bare).length > 0
          ? wants(user, from)
          : server.userExists(user).then((ok) => (ok ? wants(user, from) : false));
        const xml = sending?.stanza === stanza ? sending.xml : null;
        const sent = sentCopies.get(stanza) ?? null;
        if (sent) sentCopies.delete(stanza);
        archived = enqueue(bare, decision, () => {
          const id = ids.next();
          // The sender's copy, made from the same serialisation, has the same body: one string for both.
          const entry: ArchiveEntry = {
            archive: bare, stanzaId: id, stamp: new Date(), fromJid: from.toString(), realJid: from.bareString(),
            body: sent?.stanza === xml ? sent.body : bodyText(stanza), stanza: xml ?? stanza.toString(),
          };
          stanza.children.push(new Element('stanza-id', { xmlns: NS.sid, by: bare, id }));
          return entry;
        }, sent);
      }
      const before = held.get(bare);
      if (archived === false && before === undefined) return false;
      // Delivered once the gate opens (the hook's result: it resolves to nothing, so nothing is consumed).
      const gate = archived === false ? before! : before === undefined ? archived : before.then(() => archived);
      settle(held, bare, gate);
      return gate;
    };

    // After blocking (100), before carbons (-50): the received copies carry the archive id.
    server.hooks.on('message/bare', ({ stanza, from, to }) => received(stanza, from, to), 50);
    server.hooks.on('message/full', ({ stanza, from, to }) => {
      // Routed to the bare JID (or to a resource that is gone): handled above. The address may be
      // written unnormalised.
      const addressed = stanza.attrs.to ?? '';
      if (addressed !== to.toString() && tryParseJid(addressed)?.toString() !== to.toString()) return false;
      return received(stanza, from, to);
    }, 50);

    // --- queries and preferences ---------------------------------------------------------------------

    const ownArchive = (from: Jid, to: Jid) => {
      // XEP-0313 §8.1: nobody else may read an account's archive.
      if (from.bareString() !== to.bareString()) throw new StanzaError('forbidden', 'only the account itself may use its archive');
    };
    /** The account's own messages in flight are in its archive before it is read. */
    const caughtUp = async (archive: string) => {
      await undecided.get(archive);
      await writer.flushed();
    };

    // --- a client sending again what a lost session's server never acknowledged ----------------------

    /**
     * Whether the account's own archive holds, among its recent entries, a message to `to` with this
     * origin-id (XEP-0359): the message is archived on both sides and was delivered or stored.
     */
    const alreadySent = async (bare: string, to: string, originId: string): Promise<boolean> => {
      // The first copy may still be on its way into the archive, held by the session that ended
      // (its recipient's preferences being read, its route waiting for Redis).
      await server.endedSessionsSettled(bare);
      await caughtUp(bare);
      const recent = await server.stores.archive.lastN(bare, RESENT_LOOKBACK, { since: new Date(Date.now() - RESENT_SINCE_MS) });
      return recent.some((m) => m.realJid === to && storedOriginId(m.stanza) === originId);
    };

    // A client whose session ended before the server acknowledged all it sent (a node stopping between
    // handling a message and the <a/> that counts it) cannot resume, binds anew and sends it again, same
    // origin-id. A one-to-one message its archive already has is acknowledged and not sent twice (a
    // room recognises its own). Only in a session's first seconds after a failed resumption: the
    // normal path pays no query.
    server.hooks.on('client/stanza', ({ stanza, session }) => {
      if (!session.afterFailedResume || Date.now() - session.record.since > RESENT_WINDOW_MS) return false;
      if (stanza.name !== 'message' || stanza.ns !== NS.client || stanza.attrs.type === 'groupchat' || !archivable(stanza)) return false;
      const originId = stanza.getChild('origin-id', NS.sid)?.attrs.id;
      const to = tryParseJid(stanza.attrs.to ?? '');
      if (!originId || !to || to.domain !== server.domain || !to.local || to.bareString() === session.bare) return false;
      return alreadySent(session.bare, to.bareString(), originId);
    }, 200);

    server.iq('account', NS.mam, 'get', async (req) => {
      ownArchive(req.from, req.to);
      const archive = req.to.bareString();
      switch (req.payload.name) {
        case 'query': return mamFormQuery();
        case 'prefs': return prefsElement(await prefsFor(req.to.local));
        case 'metadata':
          await caughtUp(archive);
          return mamMetadata(server, archive);
        default: throw new StanzaError('feature-not-implemented');
      }
    });

    server.iq('account', NS.mam, 'set', async (req) => {
      ownArchive(req.from, req.to);
      const archive = req.to.bareString();
      if (req.payload.name === 'query') {
        await caughtUp(archive);
        return answerMamQuery(server, req, { archive, realJids: true });
      }
      if (req.payload.name !== 'prefs') throw new StanzaError('feature-not-implemented');
      const user = req.to.local;
      const prefs = parsePrefs(req.payload);
      await server.stores.userData.put(user, PREFS_KIND, PREFS_KEY, JSON.stringify(prefs));
      // Every node (this one too) drops what it holds; the next message reads the new set.
      await server.cluster.broadcast(TOPIC, { user });
      if (server.localOf(archive).length > 0 && !loading.has(user)) cached.set(user, prefs);
      return prefsElement(prefs);
    });

    // --- account deletion ------------------------------------------------------------------------------

    server.hooks.on('user/deleted', async ({ username }) => {
      cached.delete(username);
      remote.delete(username);
      const archive = bareOf(username);
      await caughtUp(archive);
      await server.stores.archive.removeArchive(archive);
      return false;
    });
  },

  async stop(server) {
    await archiveWriter(server).flushed();
  },
};

/** Removes the stanza-ids naming this archive (XEP-0359 §5: only the archive may set them); true if any. */
function stripOwnIds(stanza: Element, archive: string): boolean {
  const before = stanza.children.length;
  stanza.removeChildren((c) => c.name === 'stanza-id' && c.ns === NS.sid && tryParseJid(c.attrs.by ?? '')?.toString() === archive);
  return stanza.children.length !== before;
}
