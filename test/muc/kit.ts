// An in-process room test kit: a real ServerCore on embedded storage with one MUC service, and fake
// client sessions in server.local that capture what the room delivers to them. Stanzas go straight
// to the service, so a test sees a room's behaviour without sockets.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Element } from '../../protocol/xml.js';
import { parseStanzaString } from '../../protocol/xml-stream.js';
import { parseJid } from '../../protocol/jid.js';
import { defaultConfig } from '../../src/config.js';
import { ServerCore } from '../../src/server.js';
import type { LocalSession } from '../../src/context.js';
import { mucServices } from '../../src/muc/module.js';
import type { MucService } from '../../src/muc/service.js';
import { chatModel } from '../../src/pchat/module.js';
import type { CategoryRecord, ChatRoomRecord, ChatServiceSettings } from '../../storage/types.js';

export const SERVICE = 'conference.localhost';

/** A fake client session: every stanza delivered to it is kept, parsed, in `inbox`. */
export interface FakeClient {
  readonly full: string;
  readonly bare: string;
  readonly inbox: Element[];
  /** Sends a stanza from this client to the MUC service (from is stamped). */
  send(stanza: Element): void;
  /** Joins room@service as nick (with the MUC extension unless plain), and waits for the self-presence. */
  join(room: string, nick: string, opts?: { password?: string; plain?: boolean }): Promise<Element>;
  /** Waits for the next delivered stanza that matches (already received ones count). */
  next(match: (el: Element) => boolean, ms?: number): Promise<Element>;
  clear(): void;
  /** Sends an IQ and waits for its answer (result or error). */
  iq(type: 'get' | 'set', to: string, payload: Element): Promise<Element>;
}

export interface RoomKit {
  readonly server: ServerCore;
  readonly service: MucService;
  client(bare: string, resource?: string): Promise<FakeClient>;
  stop(): Promise<void>;
}

export async function startRoomKit(opts: { admins?: string[]; messageBurst?: number; nodeId?: string; databaseUrl?: string } = {}): Promise<RoomKit> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'perch-muc-kit-'));
  const config = defaultConfig();
  config.dataDir = dataDir;
  config.nodeId = opts.nodeId ?? 'kit';
  config.logLevel = 'error';
  config.listen = { c2s: null, c2sDirectTls: null, component: null, metrics: null, upload: null, websocket: null, websocketPlain: null };
  config.muc.services = [{ domain: SERVICE, name: 'Chatrooms' }];
  if (opts.admins) config.admins = opts.admins;
  if (opts.messageBurst !== undefined) config.muc.messageBurst = opts.messageBurst;
  if (opts.databaseUrl) config.databaseUrl = opts.databaseUrl;
  const server = new ServerCore(config);
  await server.start();
  const service = mucServices(server).get(SERVICE)!;
  let serial = 0;
  return {
    server,
    service,
    async client(bare, resource = 'r') {
      const full = `${bare}/${resource}`;
      const inbox: Element[] = [];
      const waiters: { match: (el: Element) => boolean; resolve: (el: Element) => void }[] = [];
      const take = (el: Element) => {
        inbox.push(el);
        for (const w of [...waiters]) if (w.match(el)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(el); }
      };
      const j = parseJid(full);
      const session: LocalSession = {
        jid: j, username: j.local, full, bare, ip: '127.0.0.1', secure: true, lastActivity: null,
        record: { jid: full, node: server.sessions.nodeId, priority: 0, available: true, presence: null, interested: false, carbons: false, since: Date.now() },
        async updateRecord() {},
        send: (el) => take(el),
        sendRaw: (xml) => { const el = parseStanzaString(xml); if (el) take(el); },
        close() {},
        data: new Map(),
        closed: false,
      };
      server.local.set(full, session);
      await server.sessions.put(session.record);
      const client: FakeClient = {
        full, bare, inbox,
        send(stanza) {
          stanza.attrs.from = full;
          if (stanza.name !== 'presence' && stanza.attrs.id === undefined) stanza.attrs.id = `k${++serial}`;
          server.router.route(stanza);
        },
        async join(room, nick, o = {}) {
          const p = new Element('presence', { to: `${room}@${SERVICE}/${nick}` });
          if (!o.plain) {
            const x = p.c('x', { xmlns: 'http://jabber.org/protocol/muc' });
            if (o.password) x.c('password').t(o.password);
          }
          const answer = client.next((el) => el.name === 'presence' && el.attrs.from?.startsWith(`${room}@${SERVICE}/`) === true
            && (el.attrs.type === 'error' || el.getChild('x', 'http://jabber.org/protocol/muc#user')?.getChildren('status').some((s) => s.attrs.code === '110') === true));
          client.send(p);
          return answer;
        },
        next(match, ms = 2000) {
          const found = inbox.find(match);
          if (found) { inbox.splice(inbox.indexOf(found), 1); return Promise.resolve(found); }
          return new Promise((resolve, reject) => {
            const w = { match, resolve: (el: Element) => { clearTimeout(t); inbox.splice(inbox.indexOf(el), 1); resolve(el); } };
            const t = setTimeout(() => { waiters.splice(waiters.indexOf(w), 1); reject(new Error(`${full}: no matching stanza in ${ms} ms`)); }, ms);
            waiters.push(w);
          });
        },
        clear() { inbox.length = 0; },
        iq(type, to, payload) {
          const id = `iq${++serial}`;
          const answer = client.next((el) => el.name === 'iq' && el.attrs.id === id);
          client.send(new Element('iq', { type, to, id }).append(payload));
          return answer;
        },
      };
      return client;
    },
    async stop() {
      server.local.clear();
      await server.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** The error condition of an error stanza, or undefined. */
export function conditionOf(el: Element): string | undefined {
  if (el.attrs.type !== 'error') return undefined;
  return el.getChild('error')?.elements().find((e) => e.name !== 'text')?.name;
}

/** Status codes in a stanza's muc#user x. */
export function statusesOf(el: Element): number[] {
  return (el.getChild('x', 'http://jabber.org/protocol/muc#user')?.getChildren('status') ?? []).map((s) => Number(s.attrs.code));
}

/** The JID of a room of the kit's service. */
export function roomJid(room: string): string {
  return `${room}@${SERVICE}`;
}

/**
 * Creates a room owned by owner (a reserved room, §10.1.3) with these configuration fields submitted
 * (values as the form takes them), and returns the owner's self-presence.
 */
export async function createRoom(owner: FakeClient, room: string, fields: Record<string, string | string[]> = {}, nick = 'owner'): Promise<void> {
  await owner.join(room, nick);
  await submitConfig(owner, room, fields);
  owner.clear();
}

/** Submits the owner configuration form with these fields; throws when the room answers with an error. */
export async function submitConfig(owner: FakeClient, room: string, fields: Record<string, string | string[]>): Promise<void> {
  const q = new Element('query', { xmlns: 'http://jabber.org/protocol/muc#owner' });
  const x = q.c('x', { xmlns: 'jabber:x:data', type: 'submit' });
  x.c('field', { var: 'FORM_TYPE' }).c('value').t('http://jabber.org/protocol/muc#roomconfig');
  for (const [k, v] of Object.entries(fields)) {
    const f = x.c('field', { var: k });
    for (const one of Array.isArray(v) ? v : [v]) f.c('value').t(one);
  }
  const answer = await owner.iq('set', roomJid(room), q);
  if (answer.attrs.type !== 'result') throw new Error(`configuration refused: ${conditionOf(answer)}`);
}

/** Sends a groupchat message to a room. */
export function say(client: FakeClient, room: string, body: string, extra?: (m: Element) => void): void {
  const m = new Element('message', { to: roomJid(room), type: 'groupchat' });
  m.c('body').t(body);
  extra?.(m);
  client.send(m);
}

/** Waits for a groupchat message with this body. */
export function heard(client: FakeClient, body: string): Promise<Element> {
  return client.next((el) => el.name === 'message' && el.getChildText('body') === body);
}

/** Waits a moment for the room's outbox and archive commits to settle. */
export function settle(ms = 100): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// --- the persistent-chat model, seeded straight into the stores and published as the operations do ---

/** Creates or replaces a category of the kit's service (everyone at localhost in scope unless said). */
export async function seedCategory(kit: RoomKit, c: Partial<CategoryRecord> & { name: string }): Promise<CategoryRecord> {
  const rec: CategoryRecord = {
    service: SERVICE, description: '', allowed: ['domain:localhost'], denied: [], creators: [],
    invitations: false, fileUpload: true, chatHistory: true, editing: true, ...c,
  };
  await kit.server.stores.chat.putCategory(rec);
  await chatModel(kit.server).publish({ kind: 'category', service: SERVICE, names: [rec.name] });
  return rec;
}

/** Creates or replaces a governed room (and its stored XEP-0045 room when there is none yet). */
export async function seedRoom(kit: RoomKit, r: Partial<ChatRoomRecord> & { room: string; category: string }): Promise<ChatRoomRecord> {
  const rec: ChatRoomRecord = {
    service: SERVICE, name: r.room, description: '', privacy: 'closed', type: 'normal', invitations: 'inherit',
    disabled: false, addin: null, members: null, managers: [], presenters: [], createdAt: new Date(), ...r,
  };
  await kit.server.stores.chat.putRoom(rec);
  if (!(await kit.server.stores.rooms.get(SERVICE, rec.room))) {
    await kit.server.stores.rooms.put({
      service: SERVICE, name: rec.room, config: { persistent: true, public: rec.privacy !== 'secret', name: rec.name },
      affiliations: {}, subject: null, createdAt: new Date(), persistent: true,
    });
  }
  await chatModel(kit.server).publish({ kind: 'room', service: SERVICE, names: [rec.room] });
  return rec;
}

/** Changes a governed room's record as an operation would, and publishes it. */
export async function changeRoom(kit: RoomKit, room: string, change: Partial<ChatRoomRecord>): Promise<void> {
  const rec = await kit.server.stores.chat.room(SERVICE, room);
  if (!rec) throw new Error(`no governed room ${room}`);
  await kit.server.stores.chat.putRoom({ ...rec, ...change });
  await chatModel(kit.server).publish({ kind: 'room', service: SERVICE, names: [room] });
}

/** Creates a group (or sets its members: user and 'group:NAME' keys) and publishes the directory change. */
export async function seedGroup(kit: RoomKit, name: string, members: string[]): Promise<void> {
  await kit.server.stores.directory.putGroup(name, '');
  await kit.server.stores.directory.editGroupMembers(name, { add: members, remove: [], clear: true });
  await chatModel(kit.server).publish({ kind: 'directory' });
}

export async function seedSettings(kit: RoomKit, settings: Partial<ChatServiceSettings>): Promise<void> {
  const now = await kit.server.stores.chat.settings(SERVICE);
  await kit.server.stores.chat.putSettings(SERVICE, { ...now, ...settings });
  await chatModel(kit.server).publish({ kind: 'settings', service: SERVICE });
}

let governed: Promise<RoomKit> | null = null;

/**
 * A second kit whose service has categories (a governed service changes room creation for everyone,
 * so the plain room tests keep their own). Shared by the persistent-chat room tests; stopped after the run.
 */
export function governedKit(): Promise<RoomKit> {
  governed ??= startRoomKit({ admins: ['admin@localhost'], messageBurst: 50, nodeId: 'kit-gov' });
  return governed;
}

after(async () => {
  if (governed) await (await governed).stop();
  governed = null;
});

let shared: Promise<RoomKit> | null = null;

/**
 * One kit for all room feature tests (starting embedded storage once, not once per file); tests use
 * their own room and user names. Stopped after the whole run.
 */
export function sharedKit(): Promise<RoomKit> {
  shared ??= startRoomKit({ admins: ['admin@localhost'], messageBurst: 5 });
  return shared;
}

after(async () => {
  if (shared) await (await shared).stop();
  shared = null;
});
