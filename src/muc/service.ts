// A MUC service (conference.<domain>): finds the room a stanza is for and hands it over. In a cluster
// each room lives on one node at a time, the holder of the room's lease in the session store; other
// nodes forward the room's stanzas there, so one node orders, archives and fans out every message.
import { randomBytes } from 'node:crypto';
import { Element } from '../../protocol/xml.js';
import { parseStanzaString } from '../../protocol/xml-stream.js';
import { Jid, tryParseJid } from '../../protocol/jid.js';
import { StanzaError, errorReply } from '../../protocol/errors.js';
import { NS } from '../../protocol/namespaces.js';
import { MUC_NS } from '../../protocol/muc.js';
import { parseRsm, buildRsmResult } from '../../protocol/rsm.js';
import type { Server } from '../context.js';
import type { ArchiveWriter } from '../archive-writer.js';
import { Room, type RoomHost } from './room.js';
import { RoomHooks, type Admission, type FeatureContext, type RoomFeature, type RoomLister } from './events.js';
import type { DataForm } from '../../protocol/forms.js';
import { buildForm } from '../../protocol/forms.js';
import { coreParts } from './core-parts.js';
import { commandItems, commandNodeInfo, handleCommandRequest } from '../commands/registry.js';

/** Answers an IQ to the service's own JID whose payload is in a registered namespace. */
export type ServiceIqHandler = (iq: { type: 'get' | 'set'; payload: Element; from: Jid; stanza: Element }) => Promise<Element>;

export interface MucServiceOptions {
  domain: string;
  name: string;
  /** Who may create rooms: anyone, accounts of this server (and its subdomains), or server admins. */
  roomCreation: 'anyone' | 'local' | 'admins';
  messagesPerSecond: number;
  messageBurst: number;
  maxNickLength: number;
}

/** How long a node holds a room without renewing; renewed every third of it. */
const LEASE_MS = 15_000;
/** An empty persistent room stays loaded this long before it is unloaded. */
const IDLE_UNLOAD_MS = 60_000;
/** How long a remembered owner of a room on another node is trusted before asking again. */
const REMOTE_TTL_MS = 5_000;
const MAX_HOPS = 3;
const CLUSTER_TOPIC = 'muc';

interface ForwardedStanza { service: string; xml: string; hops: number }

export class MucService implements RoomHost, FeatureContext {
  /** The room events of this service, filled once by the core parts and the features. */
  readonly hooks: RoomHooks;
  readonly writer: ArchiveWriter;
  readonly limits: RoomHost['limits'];
  readonly domain: string;
  private readonly rooms = new Map<string, Room>();
  /** Stanzas for rooms being looked up (lease, then load), in arrival order. */
  private readonly pending = new Map<string, { stanza: Element; hops: number }[]>();
  /** Rooms with an admission step (or a task) in progress: what came later for the room waits here, in order. */
  private readonly ordered = new Map<string, (() => Promise<void> | undefined)[]>();
  private readonly remote = new Map<string, { node: string; at: number }>();
  private readonly saving = new Map<string, Promise<void>>();
  private readonly dirty = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  private readonly serviceIqs = new Map<string, ServiceIqHandler>();

  constructor(readonly server: Server, readonly options: MucServiceOptions, writer: ArchiveWriter, features: readonly RoomFeature[]) {
    this.domain = options.domain;
    this.writer = writer;
    this.limits = { messagesPerSecond: options.messagesPerSecond, messageBurst: options.messageBurst, maxNickLength: options.maxNickLength };
    this.hooks = new RoomHooks(server.log);
    for (const f of [...coreParts, ...features]) f.init(this.hooks, this);
  }

  get log(): Server['log'] {
    return this.server.log;
  }

  start(): void {
    this.server.router.addDomain(this.domain, (stanza) => this.route(stanza, 0));
    this.timer = setInterval(() => void this.tick(), LEASE_MS / 3);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.server.router.removeDomain(this.domain);
    await this.writer.flushed();
    await Promise.all([...this.saving.values()]);
    await Promise.all([...this.rooms.keys()].map((name) => this.server.sessions.releaseLease(this.leaseKey(name)).catch(() => {})));
    this.rooms.clear();
  }

  /** A room this node holds, if loaded. */
  loadedRoom(name: string): Room | undefined {
    return this.rooms.get(name);
  }

  /** Loaded rooms (this node owns them). */
  loadedRooms(): IterableIterator<Room> {
    return this.rooms.values();
  }

  /** Runs task in the room's order (see FeatureContext.inRoomOrder). */
  inRoomOrder(name: string, task: () => Promise<void> | void): void {
    this.inOrder(name, () => {
      const r = task();
      return r instanceof Promise ? r : undefined;
    });
  }

  private leaseKey(name: string): string {
    return `muc:${this.domain}:${name}`;
  }

  // --- routing -------------------------------------------------------------------------------------

  /** Stanzas forwarded by other nodes. */
  onForwarded(data: ForwardedStanza): void {
    const stanza = parseStanzaString(data.xml);
    if (stanza) this.route(stanza, data.hops);
  }

  route(stanza: Element, hops: number): void {
    const to = tryParseJid(stanza.attrs.to ?? '');
    if (!to) return;
    if (!to.local) {
      this.serviceStanza(stanza, to);
      return;
    }
    const name = to.local;
    const from = tryParseJid(stanza.attrs.from ?? '');
    if (from) this.hooks.prefetching(stanza, from);
    this.inOrder(name, () => this.admit(name, stanza, hops));
  }

  /** Runs step now when nothing for the room is waiting, else behind what waits; an async step holds the room's later steps. */
  private inOrder(name: string, step: () => Promise<void> | undefined): void {
    const queue = this.ordered.get(name);
    if (queue) {
      queue.push(step);
      return;
    }
    let pending: Promise<void> | undefined;
    try {
      pending = step();
    } catch (e) {
      this.stepFailed(name, e);
    }
    if (!pending) return;
    this.ordered.set(name, []);
    void this.drain(name, pending);
  }

  private stepFailed(name: string, e: unknown): void {
    this.server.log.error('muc: room step failed', { err: e, room: name });
    this.server.metrics.handlerErrors.inc({ where: 'room' });
  }

  private async drain(name: string, first: Promise<void>): Promise<void> {
    const queue = this.ordered.get(name)!;
    let pending: Promise<void> | undefined = first;
    while (pending) {
      try {
        await pending;
      } catch (e) {
        this.stepFailed(name, e);
      }
      pending = undefined;
      while (!pending && queue.length > 0) {
        try {
          pending = queue.shift()!();
        } catch (e) {
          this.stepFailed(name, e);
        }
      }
    }
    this.ordered.delete(name);
  }

  /** The admission steps (events.ts), then the room. */
  private admit(name: string, stanza: Element, hops: number): Promise<void> | undefined {
    const from = tryParseJid(stanza.attrs.from ?? '');
    if (!from) return undefined;
    const admission = new StanzaAdmission(this, name, stanza, from);
    let waiting: Promise<'handled' | undefined> | undefined;
    try {
      waiting = this.hooks.admission(admission);
    } catch (e) {
      admission.fail(e);
      return undefined;
    }
    if (!waiting) {
      this.deliver(name, stanza, hops);
      return undefined;
    }
    return waiting.then(
      (verdict) => { if (verdict !== 'handled') this.deliver(name, stanza, hops); },
      (e: unknown) => { admission.fail(e); },
    );
  }

  /** Hands an admitted stanza to the room: here, after loading it, or on the node that holds it. */
  private deliver(name: string, stanza: Element, hops: number): void {
    const room = this.rooms.get(name);
    if (room) {
      room.handle(stanza);
      return;
    }
    const queue = this.pending.get(name);
    if (queue) {
      queue.push({ stanza, hops });
      return;
    }
    const known = this.remote.get(name);
    if (known && Date.now() - known.at < REMOTE_TTL_MS) {
      this.forward(known.node, stanza, hops);
      return;
    }
    this.pending.set(name, [{ stanza, hops }]);
    void this.resolve(name);
  }

  private forward(node: string, stanza: Element, hops: number): void {
    if (hops >= MAX_HOPS) {
      this.server.log.warn('muc: stanza bounced between nodes; dropped', { to: stanza.attrs.to });
      const reply = errorReply(stanza, new StanzaError('remote-server-timeout', 'the room is moving between nodes; try again'));
      if (reply) this.server.router.route(reply);
      return;
    }
    const data: ForwardedStanza = { service: this.domain, xml: stanza.toString(), hops: hops + 1 };
    this.server.cluster.send(node, CLUSTER_TOPIC, data);
  }

  /** Takes the room's lease (or finds who has it), loads the room, then handles what queued up. */
  private async resolve(name: string): Promise<void> {
    let holder: string | null = null;
    let room: Room | null = null;
    try {
      holder = await this.server.sessions.acquireLease(this.leaseKey(name), LEASE_MS);
      if (holder === this.server.sessions.nodeId) {
        const [record, occupants] = await Promise.all([
          this.server.stores.rooms.get(this.domain, name),
          this.server.sessions.stateGetAll(this.leaseKey(name)),
        ]);
        room = new Room(this, name, record);
        if (record) {
          await this.hooks.prepared(room);
          // Another node held the room before (and died, or let it go with people inside).
          if (Object.keys(occupants).length > 0) room.restoreOccupants(occupants);
        } else room.isNew = true;
      }
    } catch (e) {
      this.server.log.error('muc: room lookup failed', { err: e, room: name });
    }
    const queue = this.pending.get(name) ?? [];
    this.pending.delete(name);
    if (room) {
      this.remote.delete(name);
      this.rooms.set(name, room);
      for (const { stanza } of queue) this.roomOrCreate(room, stanza);
      // A held join (a recorded creation) decides later; an idle empty room is unloaded by tick().
      if (room.isNew && room.empty && !room.holding) this.unload(room, false);
      return;
    }
    if (holder) {
      this.remote.set(name, { node: holder, at: Date.now() });
      for (const { stanza, hops } of queue) this.forward(holder, stanza, hops);
      return;
    }
    for (const { stanza } of queue) {
      const reply = errorReply(stanza, new StanzaError('internal-server-error', 'the room is unavailable'));
      if (reply) this.server.router.route(reply);
    }
  }

  /** A room that does not exist yet only comes into being by a join from someone allowed to create. */
  private roomOrCreate(room: Room, stanza: Element): void {
    if (!room.isNew) {
      room.handle(stanza);
      return;
    }
    const from = tryParseJid(stanza.attrs.from ?? '');
    const to = tryParseJid(stanza.attrs.to ?? '');
    if (!from || !to) return;
    const isJoin = stanza.name === 'presence' && stanza.attrs.type === undefined && to.resource !== '';
    if (!isJoin) {
      if (stanza.name === 'presence' && stanza.attrs.type === 'unavailable') return;
      // §7.2.1: a join without a nick is jid-malformed, whether or not the room exists.
      const noNick = stanza.name === 'presence' && stanza.attrs.type === undefined;
      const reply = errorReply(stanza, noNick ? new StanzaError('jid-malformed', 'a room nick is required') : new StanzaError('item-not-found', 'no such room'));
      if (reply) this.server.router.route(reply);
      return;
    }
    try {
      this.mayCreate(from, to.local);
    } catch (e) {
      const reply = errorReply(stanza, e instanceof StanzaError ? e : new StanzaError('internal-server-error'));
      if (reply) this.server.router.route(reply);
      return;
    }
    room.handle(stanza);
  }

  private mayCreate(creator: Jid, name: string): void {
    const policy = this.options.roomCreation;
    const local = creator.domain === this.server.domain;
    if (policy === 'admins' && !this.server.isAdmin(creator.bareString())) throw new StanzaError('not-allowed', 'only administrators may create rooms');
    if (policy === 'local' && !local) throw new StanzaError('not-allowed', 'only users of this server may create rooms');
    this.hooks.check('room/pre-create', { service: this.domain, name, creator });
  }

  // --- the service's own JID ----------------------------------------------------------------------------

  /** Registers the answer to IQs to the service's JID in one namespace (advertised in its disco#info). */
  serviceIq(ns: string, handler: ServiceIqHandler): void {
    this.serviceIqs.set(ns, handler);
  }

  private serviceStanza(stanza: Element, to: Jid): void {
    const from = tryParseJid(stanza.attrs.from ?? '');
    if (!from) return;
    const reply = (payload: Element) => {
      this.server.router.route(new Element('iq', { type: 'result', id: stanza.attrs.id ?? '', from: this.domain, to: from.toString() }).append(payload));
    };
    const fail = (e: unknown) => {
      const err = e instanceof StanzaError ? e : new StanzaError('internal-server-error');
      if (!(e instanceof StanzaError)) this.server.log.error('muc service request failed', { err: e });
      const r = errorReply(stanza, err);
      if (r) this.server.router.route(r);
    };
    if (stanza.name !== 'iq') {
      if (stanza.attrs.type !== 'error') fail(new StanzaError('service-unavailable'));
      return;
    }
    const type = stanza.attrs.type;
    if (type === 'result' || type === 'error') return;
    if (to.resource) return fail(new StanzaError('service-unavailable'));
    const payload = stanza.elements()[0];
    if (type === 'get' && payload?.is('query', NS.discoInfo) && !payload.attrs.node) {
      const q = new Element('query', { xmlns: NS.discoInfo });
      q.c('identity', { category: 'conference', type: 'text', name: this.options.name });
      const features: string[] = [NS.discoInfo, NS.discoItems, MUC_NS.muc, MUC_NS.occupantId, NS.rsm, NS.commands, ...this.serviceIqs.keys()];
      const forms: DataForm[] = [];
      try {
        this.hooks.build('service/disco-info', { from, features, forms });
      } catch (e) {
        return fail(e);
      }
      for (const f of features) q.c('feature', { var: f });
      for (const form of forms) q.append(buildForm(form));
      return reply(q);
    }
    // Ad-hoc commands registered for this service's JID (XEP-0050).
    if (type === 'set' && payload?.is('command', NS.commands)) {
      handleCommandRequest(this.server, this.domain, payload, from, to).then(reply, fail);
      return;
    }
    if (type === 'get' && payload?.is('query', NS.discoItems) && payload.attrs.node === NS.commands) {
      return reply(new Element('query', { xmlns: NS.discoItems, node: NS.commands }).append(...commandItems(this.server, this.domain, from)));
    }
    if (type === 'get' && payload?.is('query', NS.discoInfo) && payload.attrs.node) {
      try {
        const info = commandNodeInfo(this.server, this.domain, payload.attrs.node, from);
        if (info) return reply(info);
      } catch (e) {
        return fail(e);
      }
    }
    if (type === 'get' && payload?.is('query', NS.discoItems) && !payload.attrs.node) {
      this.listRooms(payload, from).then(reply, fail);
      return;
    }
    if (type === 'get' && payload?.is('unique', NS.mucUnique)) {
      return reply(new Element('unique', { xmlns: NS.mucUnique }).t(cryptoName()));
    }
    if (type === 'get' && payload?.is('ping', NS.ping)) {
      this.server.router.route(new Element('iq', { type: 'result', id: stanza.attrs.id ?? '', from: this.domain, to: from.toString() }));
      return;
    }
    // Other nodes, and other namespaces, go to what registered for them.
    const handler = payload && (type === 'get' || type === 'set') ? this.serviceIqs.get(payload.attrs.xmlns ?? '') : undefined;
    if (handler && payload && (type === 'get' || type === 'set')) {
      handler({ type, payload, from, stanza }).then(reply, fail);
      return;
    }
    fail(new StanzaError('service-unavailable'));
  }

  /** The public rooms as the store lists them (hidden and locked rooms are not in it), by localpart. */
  readonly publicRooms: RoomLister = {
    page: async (after, max) => {
      const rooms = await this.server.stores.rooms.list(this.domain, { publicOnly: true, after, limit: max });
      return rooms.map((r) => ({ name: r.name, title: typeof r.config.name === 'string' && r.config.name ? r.config.name : r.name }));
    },
    count: () => this.server.stores.rooms.count(this.domain, { publicOnly: true }),
  };

  /** The rooms listed to the requester (public ones unless a feature lists them), paged with XEP-0059 (after = room JID); count and index as the XEP asks. */
  private async listRooms(query: Element, from: Jid): Promise<Element> {
    const rsm = parseRsm(query.getChild('set', NS.rsm));
    const max = Math.min(rsm.max ?? 100, 500);
    const afterJid = typeof rsm.after === 'string' ? rsm.after : undefined;
    const after = afterJid ? (tryParseJid(afterJid)?.local ?? afterJid) : undefined;
    const lister = this.hooks.decide('service/room-list', { from }) ?? this.publicRooms;
    const page = await lister.page(after, max);
    const out = new Element('query', { xmlns: NS.discoItems });
    for (const r of page) out.c('item', { jid: `${r.name}@${this.domain}`, name: r.title });
    if (query.getChild('set', NS.rsm)) {
      // The size of the list itself.
      const count = await lister.count();
      const result: Parameters<typeof buildRsmResult>[0] = { count };
      if (page.length > 0) {
        result.first = { id: `${page[0]!.name}@${this.domain}` };
        result.last = `${page[page.length - 1]!.name}@${this.domain}`;
      }
      out.append(buildRsmResult(result));
    }
    return out;
  }

  // --- RoomHost ----------------------------------------------------------------------------------------

  /** Writes the room record; writes that come while one is in flight are folded into one more. */
  save(room: Room): void {
    const key = room.name;
    if (this.saving.has(key)) {
      this.dirty.add(key);
      return;
    }
    const run = async (): Promise<void> => {
      do {
        this.dirty.delete(key);
        try {
          await this.server.stores.rooms.put(room.toRecord());
        } catch (e) {
          this.server.log.error('muc: saving room failed', { err: e, room: room.jid });
        }
      } while (this.dirty.has(key));
      this.saving.delete(key);
    };
    this.saving.set(key, run());
  }

  /** Set by the module to feed its commit-latency histogram. */
  onCommitted: (seconds: number) => void = () => {};

  committed(seconds: number): void {
    this.onCommitted(seconds);
  }

  occupantsChanged(room: Room): void {
    const key = this.leaseKey(room.name);
    for (const [nick, value] of room.takeChangedOccupants()) {
      // One connection keeps these writes in order; a failure only costs a takeover its occupant list.
      this.server.sessions.stateSet(key, nick, value).catch((e) => this.server.log.warn('muc: saving occupants failed', { err: e, room: room.jid }));
    }
  }

  destroyed(room: Room, removeArchive: boolean): void {
    this.rooms.delete(room.name);
    void (async () => {
      await this.server.sessions.stateDelete(this.leaseKey(room.name));
      await this.saving.get(room.name);
      await this.server.stores.rooms.delete(this.domain, room.name);
      if (removeArchive) await this.server.stores.archive.removeArchive(room.jid);
      await this.server.sessions.releaseLease(this.leaseKey(room.name));
    })().catch((e) => this.server.log.error('muc: destroying room failed', { err: e, room: room.jid }));
  }

  emptied(room: Room): void {
    if (!room.persistent && !room.locked) {
      this.rooms.delete(room.name);
      void (async () => {
        await this.saving.get(room.name);
        await this.server.stores.rooms.delete(this.domain, room.name);
        await this.server.sessions.releaseLease(this.leaseKey(room.name));
      })().catch((e) => this.server.log.error('muc: removing temporary room failed', { err: e, room: room.jid }));
    } else if (room.locked) {
      // Nobody configured it: a locked room that empties never existed (§10.1.1).
      this.unload(room, true);
    }
  }

  private unload(room: Room, forget: boolean): void {
    this.rooms.delete(room.name);
    void (async () => {
      await this.saving.get(room.name);
      if (forget) await this.server.stores.rooms.delete(this.domain, room.name);
      await this.server.sessions.releaseLease(this.leaseKey(room.name));
    })().catch((e) => this.server.log.error('muc: unloading room failed', { err: e, room: room.jid }));
  }

  /** Keeps the leases of loaded rooms and unloads persistent rooms that stayed empty. */
  private async tick(): Promise<void> {
    const now = Date.now();
    for (const room of [...this.rooms.values()]) {
      if (room.empty && now - room.lastActive > IDLE_UNLOAD_MS && !this.saving.has(room.name)) {
        this.unload(room, false);
        continue;
      }
      try {
        const ok = await this.server.sessions.renewLease(this.leaseKey(room.name), LEASE_MS);
        if (!ok && this.rooms.get(room.name) === room) {
          this.server.log.warn('muc: lost the lease of a room; another node has it now', { room: room.jid });
          this.rooms.delete(room.name);
        }
      } catch (e) {
        this.server.log.warn('muc: lease renewal failed', { err: e, room: room.jid });
      }
    }
    for (const [name, r] of this.remote) if (now - r.at > REMOTE_TTL_MS) this.remote.delete(name);
  }

  /** A node died: its sessions leave every room here; rooms it held are found again on next use. */
  nodeLost(node: string, fullJids: Set<string>): void {
    for (const [name, r] of this.remote) if (r.node === node) this.remote.delete(name);
    for (const room of this.rooms.values()) room.dropSessions(fullJids);
  }
}

/** A stanza at the room's door (events.ts Admission), answering from the room's JID. */
class StanzaAdmission implements Admission {
  readonly room: Room | undefined;
  constructor(private readonly service: MucService, readonly name: string, readonly stanza: Element, readonly from: Jid) {
    this.room = service.loadedRoom(name);
  }

  result(payload?: Element): 'handled' {
    const r = new Element('iq', { type: 'result', id: this.stanza.attrs.id ?? '', from: `${this.name}@${this.service.domain}`, to: this.from.toString() });
    if (payload) r.append(payload);
    this.service.server.router.route(r);
    return 'handled';
  }

  fail(e: unknown): 'handled' {
    if (!(e instanceof StanzaError)) {
      this.service.server.log.error('muc: admission failed', { err: e, room: this.name });
      this.service.server.metrics.handlerErrors.inc({ where: 'room' });
    }
    const r = errorReply(this.stanza, e instanceof StanzaError ? e : new StanzaError('internal-server-error'), `${this.name}@${this.service.domain}`);
    if (r) this.service.server.router.route(r);
    return 'handled';
  }
}

function cryptoName(): string {
  return `room-${randomBytes(6).toString('hex')}`;
}

export { CLUSTER_TOPIC, type ForwardedStanza };
