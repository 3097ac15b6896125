// The persistent-chat model as every node holds it in memory: per MUC service its categories, its
// rooms' settings and lists, add-ins and service settings; the policies; and the directory's
// principal sets. Rules (access.ts) are answered from here synchronously. Every change is written to
// the database by an operation (operations.ts) and then published: each node reloads what changed
// and tells its listeners (the rooms it holds re-check their occupants).
import type {
  AddinRecord, CategoryRecord, ChatPolicyRecord, ChatRoomRecord, ChatServiceSettings, DataStores,
} from '../../storage/types.js';
import { DEFAULT_CHAT_SETTINGS } from '../../storage/types.js';
import type { Subject } from './access.js';
import { Directory, type DirectoryScope } from './directory.js';

export type ChatChangeKind = 'room' | 'category' | 'directory' | 'policy' | 'settings' | 'addin' | 'content';

/** What changed, as published to every node. */
export interface ChatChange {
  kind: ChatChangeKind;
  service?: string;
  /** Rooms (localparts) or categories (names) that changed; for a rename, the old and the new name. */
  names?: string[];
  /** A category was renamed from names[0] to names[1]. */
  renamed?: boolean;
  /**
   * A directory change's reach, when known: the users whose own entries changed, the principals
   * (group:X, ou:/P) whose holders' sets changed, and whether the group nesting changed. Absent: all.
   */
  directory?: DirectoryScope;
  /**
   * A 'content' change: an administrator rewrote rooms' archives (names: the rooms). The node holding
   * each room reloads its join history and tells its occupants of each notice (XEP-0425, by the room).
   */
  content?: ContentChange;
  /** The node that made the change (it applied it before publishing). */
  origin?: string;
}

/** An archive rewrite: messages removed (no replacement) or replaced; cleared: old content deleted. */
export interface ContentChange {
  reason: string;
  notices?: { id: string; replacement?: string }[];
  cleared?: boolean;
}

export const CHAT_TOPIC = 'chat-model';

const lower = (s: string) => s.toLowerCase();

/** One MUC service's part of the model. */
export class ServiceModel {
  readonly categories = new Map<string, CategoryRecord>();
  readonly rooms = new Map<string, ChatRoomRecord>();
  /** lower(display name) → room localpart. */
  readonly roomNames = new Map<string, string>();
  readonly addins = new Map<string, AddinRecord>();
  settings: ChatServiceSettings = { ...DEFAULT_CHAT_SETTINGS };

  constructor(readonly domain: string) {}

  /** Has categories or governed rooms: the persistent-chat rules apply to this service. */
  get governed(): boolean {
    return this.categories.size > 0 || this.rooms.size > 0;
  }

  category(name: string): CategoryRecord | undefined {
    return this.categories.get(lower(name));
  }

  room(localpart: string): ChatRoomRecord | undefined {
    return this.rooms.get(localpart);
  }

  categoryOf(room: ChatRoomRecord): CategoryRecord | undefined {
    return this.categories.get(lower(room.category));
  }

  roomByName(name: string): ChatRoomRecord | undefined {
    const local = this.roomNames.get(lower(name));
    return local === undefined ? undefined : this.rooms.get(local);
  }

  addin(name: string): AddinRecord | undefined {
    return this.addins.get(lower(name));
  }

  setRoom(rec: ChatRoomRecord): void {
    this.dropRoom(rec.room);
    this.rooms.set(rec.room, rec);
    this.roomNames.set(lower(rec.name), rec.room);
  }

  dropRoom(localpart: string): void {
    const old = this.rooms.get(localpart);
    if (!old) return;
    this.rooms.delete(localpart);
    if (this.roomNames.get(lower(old.name)) === localpart) this.roomNames.delete(lower(old.name));
  }
}

export interface ChatModelHost {
  stores: Pick<DataStores, 'chat' | 'directory'>;
  isAdmin(bare: string): boolean;
  nodeId: string;
  /** Publishes to every node (this one too); absent without a cluster bus (the CLI on a stopped server). */
  broadcast?(change: ChatChange): Promise<void>;
  log: { warn(msg: string, fields?: Record<string, unknown>): void; error(msg: string, fields?: Record<string, unknown>): void };
}

export type ChatChangeListener = (change: ChatChange) => void | Promise<void>;

interface Policies {
  global: boolean | null;
  groups: Map<string, boolean>;
  /** The same entries keyed as principals ('group:NAME'), for the check. */
  groupKeys: Map<string, boolean>;
  users: Map<string, boolean>;
}

export class ChatModel {
  readonly directory: Directory;
  private readonly services = new Map<string, ServiceModel>();
  private policies: Policies = { global: null, groups: new Map(), groupKeys: new Map(), users: new Map() };
  private readonly listeners: ChatChangeListener[] = [];
  /** Changes are applied one at a time, in the order they arrive. */
  private applying: Promise<void> = Promise.resolve();

  constructor(private readonly host: ChatModelHost, domains: readonly string[]) {
    this.directory = new Directory(host.stores.directory);
    for (const d of domains) this.services.set(d, new ServiceModel(d));
  }

  /** Loads everything (at node start). */
  async start(): Promise<void> {
    await Promise.all([
      this.directory.start(),
      this.loadPolicies(),
      ...[...this.services.values()].map((s) => this.loadService(s)),
    ]);
  }

  /** Some service has categories or governed rooms. */
  get governed(): boolean {
    for (const s of this.services.values()) if (s.governed) return true;
    return false;
  }

  forService(domain: string): ServiceModel | undefined {
    return this.services.get(domain);
  }

  serviceDomains(): string[] {
    return [...this.services.keys()];
  }

  /** The subject for the rules, when the user's principals are cached (else undefined: ensureSubjects first). */
  subject(bare: string): Subject | undefined {
    const principals = this.directory.peek(bare);
    if (!principals) return undefined;
    return { bare, principals, admin: this.host.isAdmin(bare), enabled: this.enabledFor(bare, principals) };
  }

  async ensureSubjects(bares: Iterable<string>): Promise<void> {
    await this.directory.load(bares);
  }

  /** The subject, loading the user's directory entries when needed. */
  async subjectOf(bare: string): Promise<Subject> {
    const s = this.subject(bare);
    if (s) return s;
    await this.directory.load([bare]);
    const principals = this.directory.peek(bare) ?? this.directory.compute(bare, undefined);
    return { bare, principals, admin: this.host.isAdmin(bare), enabled: this.enabledFor(bare, principals) };
  }

  /** Persistent chat on for the user: their own entry, else their groups' (off if any says off), else global (default on). */
  enabledFor(bare: string, principals: ReadonlySet<string>): boolean {
    const own = this.policies.users.get(bare);
    if (own !== undefined) return own;
    const byKey = this.policies.groupKeys;
    if (byKey.size > 0) {
      // A user has a couple of dozen principals; walk them, not the policy list (a check's hot path).
      let on = false;
      for (const key of principals) {
        const enabled = byKey.get(key);
        if (enabled === false) return false;
        if (enabled) on = true;
      }
      if (on) return true;
    }
    return this.policies.global ?? true;
  }

  policyList(): ChatPolicyRecord[] {
    const out: ChatPolicyRecord[] = [];
    if (this.policies.global !== null) out.push({ scope: 'global', subject: '', enabled: this.policies.global });
    for (const [subject, enabled] of this.policies.groups) out.push({ scope: 'group', subject, enabled });
    for (const [subject, enabled] of this.policies.users) out.push({ scope: 'user', subject, enabled });
    return out;
  }

  onChange(listener: ChatChangeListener): void {
    this.listeners.push(listener);
  }

  /**
   * A change was written to the database: apply it here (so the caller sees it at once), then tell
   * every other node.
   */
  async publish(change: ChatChange): Promise<void> {
    await this.apply(change);
    if (this.host.broadcast) {
      await this.host.broadcast({ ...change, origin: this.host.nodeId }).catch((e: unknown) => {
        this.host.log.error('chat: publishing a change to the other nodes failed', { err: e, change: change.kind });
      });
    }
  }

  /** A change published by any node (the bus delivers ours back too: skipped). */
  received(change: ChatChange): void {
    if (change.origin === this.host.nodeId) return;
    void this.apply(change).catch(() => {});
  }

  private apply(change: ChatChange): Promise<void> {
    const run = this.applying.then(async () => {
      try {
        await this.reload(change);
      } catch (e) {
        this.host.log.error('chat: reloading a change failed', { err: e, change: change.kind });
        return;
      }
      for (const l of this.listeners) {
        try {
          await l(change);
        } catch (e) {
          this.host.log.error('chat: a change listener failed', { err: e, change: change.kind });
        }
      }
    });
    this.applying = run.catch(() => {});
    return run;
  }

  private async reload(change: ChatChange): Promise<void> {
    const svc = change.service ? this.services.get(change.service) : undefined;
    switch (change.kind) {
      case 'directory':
        await this.directory.invalidate(change.directory);
        return;
      case 'policy':
        await this.loadPolicies();
        return;
      case 'settings':
        if (svc) svc.settings = await this.host.stores.chat.settings(svc.domain);
        return;
      case 'addin':
        if (svc) await this.loadAddins(svc);
        return;
      case 'category':
        if (!svc) return;
        await this.loadCategories(svc);
        if (change.renamed && change.names?.length === 2) {
          const [from, to] = change.names as [string, string];
          for (const r of svc.rooms.values()) if (lower(r.category) === lower(from)) r.category = to;
        }
        return;
      case 'room':
        if (!svc) return;
        for (const name of change.names ?? []) {
          const rec = await this.host.stores.chat.room(svc.domain, name);
          if (rec) svc.setRoom(rec);
          else svc.dropRoom(name);
        }
        return;
    }
  }

  private async loadService(svc: ServiceModel): Promise<void> {
    const [rooms, settings] = await Promise.all([this.host.stores.chat.rooms(svc.domain), this.host.stores.chat.settings(svc.domain)]);
    await Promise.all([this.loadCategories(svc), this.loadAddins(svc)]);
    svc.settings = settings;
    svc.rooms.clear();
    svc.roomNames.clear();
    for (const r of rooms) svc.setRoom(r);
  }

  private async loadCategories(svc: ServiceModel): Promise<void> {
    const cats = await this.host.stores.chat.categories(svc.domain);
    svc.categories.clear();
    for (const c of cats) svc.categories.set(lower(c.name), c);
  }

  private async loadAddins(svc: ServiceModel): Promise<void> {
    const addins = await this.host.stores.chat.addins(svc.domain);
    svc.addins.clear();
    for (const a of addins) svc.addins.set(lower(a.name), a);
  }

  private async loadPolicies(): Promise<void> {
    const next: Policies = { global: null, groups: new Map(), groupKeys: new Map(), users: new Map() };
    for (const p of await this.host.stores.chat.policies()) {
      if (p.scope === 'global') next.global = p.enabled;
      else if (p.scope === 'group') {
        next.groups.set(p.subject, p.enabled);
        next.groupKeys.set(`group:${p.subject}`, p.enabled);
      }
      else next.users.set(p.subject, p.enabled);
    }
    this.policies = next;
  }
}
