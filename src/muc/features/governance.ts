// Rooms under the persistent-chat model (docs/persistent-chat.md): who enters, speaks, reads and
// configures a governed room is what src/pchat/access.ts says, and nothing else. Joins are refused
// with the rule's condition and text; affiliations come from the record (managers are owners,
// members of closed and secret rooms are members, those the category denies are outcasts), not from
// the stored XEP-0045 list; a secret room does not exist for those who may not see it. A manager's
// owner form and affiliation edits become the model's operations (src/pchat/operations.ts), so the
// rules of a change live in one place; destroying a governed room is for administrators. On a
// governed service a new room must be given a category. Changes published by any node re-check the
// occupants of the rooms this node holds, in each room's order.
import { Element } from '../../../protocol/xml.js';
import { tryParseJid } from '../../../protocol/jid.js';
import { StanzaError } from '../../../protocol/errors.js';
import { NS } from '../../../protocol/namespaces.js';
import { parseForm, type DataForm, type FormField } from '../../../protocol/forms.js';
import { MUC_NS, STATUS, MucProtocolError, destroyQuery, mucUserX, type Affiliation } from '../../../protocol/muc.js';
import { canonicalPrincipal, PrincipalError } from '../../../protocol/principal.js';
import type { CategoryRecord, ChatRoomRecord, RoomKind, RoomPrivacy } from '../../../storage/types.js';
import {
  affiliationOf, canCreate, canJoin, existsFor, canManage, canPost, canRead, canSee, isMember, joinRefusal, type Subject,
} from '../../pchat/access.js';
import {
  ChatOpError, createRoom, deleteRoom, serverOpContext, updateRoom, type ChatActor, type ChatOpContext, type RoomChanges, type ListChange,
} from '../../pchat/operations.js';
import type { Server } from '../../context.js';
import type { Admission, FeatureContext, RoomFeature } from '../events.js';
import type { Room } from '../room.js';
import type { Occupant } from '../occupants.js';
import {
  governedRoom, governedService, serviceModel, subjectFor, syncConfig, type GovernedRoom, type GovernedService,
} from '../governed.js';

export const NS_CATEGORY = 'urn:x-perch:category:0';
export const NS_PRINCIPAL = 'urn:x-perch:principal:0';
export const NS_CHAT_SERVICE = 'urn:x-perch:chat-service:0';

const F = {
  category: 'x-perch#category',
  privacy: 'x-perch#privacy',
  type: 'x-perch#type',
  invitations: 'x-perch#invitations',
  addin: 'x-perch#addin',
  disabled: 'x-perch#disabled',
  addinUrl: 'x-perch#addin-url',
  fileUpload: 'x-perch#file-upload',
  history: 'x-perch#history',
  name: 'muc#roomconfig_roomname',
  description: 'muc#roomconfig_roomdesc',
} as const;
/** Fields of the owner form that the model's operations apply (the room never sees them). */
const MODEL_FIELDS: readonly string[] = [F.category, F.privacy, F.type, F.invitations, F.addin, F.disabled, F.name, F.description];
const PRIVACIES: readonly RoomPrivacy[] = ['open', 'closed', 'secret'];
const KINDS: readonly RoomKind[] = ['normal', 'auditorium'];
const INVITATIONS = ['inherit', 'off'] as const;

export const DISABLED_REASON = 'This room has been disabled';
const LOST_ACCESS_REASON = 'You are no longer allowed in this room';
const MEMBERS_ONLY_REASON = 'This room is now for its members only';

/** An operation's refusal as the stanza error the XMPP face answers with. */
function asStanzaError(e: unknown): unknown {
  if (e instanceof ChatOpError) return new StanzaError(e.condition, e.message);
  if (e instanceof PrincipalError) return new StanzaError('not-acceptable', e.message);
  return e;
}

function actorOf(server: Server, bare: string): ChatActor {
  return bare === server.domain ? { kind: 'local' } : { kind: 'account', bare };
}

function opContext(server: Server): ChatOpContext {
  return {
    ...serverOpContext(server),
    // Sent, not awaited: the room handles it in its order, after the request being admitted now.
    destroyMucRoom: async (service, room, reason) => {
      const iq = new Element('iq', { type: 'set', id: `chat-delete-${room}`, to: `${room}@${service}`, from: server.domain });
      server.router.route(iq.append(destroyQuery({ reason })));
    },
  };
}

/** The categories where the subject may create rooms. */
function creatable(g: GovernedService, s: Subject): CategoryRecord[] {
  return [...g.service.categories.values()].filter((c) => canCreate(s, c)).sort((a, b) => a.name.localeCompare(b.name));
}

function fieldValue(form: DataForm, name: string): string | undefined {
  const f = form.fields.find((x) => x.var === name);
  return f ? (f.values[0] ?? '') : undefined;
}

function oneOf<T extends string>(field: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value)) throw new MucProtocolError('not-acceptable', `${field}: one of ${allowed.join(', ')}`);
  return value as T;
}

/** What a submitted owner form changes in the record (fields left out or unchanged change nothing). */
function formChanges(form: DataForm, rec: Pick<ChatRoomRecord, 'category' | 'privacy' | 'type' | 'invitations' | 'addin' | 'disabled' | 'name' | 'description'> | null): RoomChanges {
  const c: RoomChanges = {};
  const category = fieldValue(form, F.category);
  if (category && category.toLowerCase() !== rec?.category.toLowerCase()) c.category = category;
  const privacy = fieldValue(form, F.privacy);
  if (privacy && privacy !== rec?.privacy) c.privacy = oneOf(F.privacy, privacy, PRIVACIES);
  const type = fieldValue(form, F.type);
  if (type && type !== rec?.type) c.type = oneOf(F.type, type, KINDS);
  const invitations = fieldValue(form, F.invitations);
  if (invitations && invitations !== rec?.invitations) c.invitations = oneOf(F.invitations, invitations, INVITATIONS);
  const addin = fieldValue(form, F.addin);
  if (addin !== undefined && (addin || null) !== (rec?.addin ?? null)) c.addin = addin || null;
  const disabled = fieldValue(form, F.disabled);
  if (disabled !== undefined && disabled !== '') {
    if (!['0', '1', 'true', 'false'].includes(disabled)) throw new MucProtocolError('not-acceptable', `${F.disabled}: not a boolean`);
    const on = disabled === '1' || disabled === 'true';
    if (on !== (rec?.disabled ?? false)) c.disabled = on;
  }
  const name = fieldValue(form, F.name);
  if (name && name !== rec?.name) c.name = name;
  const description = fieldValue(form, F.description);
  if (description !== undefined && description !== (rec?.description ?? '')) c.description = description;
  return c;
}

/** Removes the fields the model applies from a submitted form, so the room reads only its own. */
function stripModelFields(x: Element): void {
  x.children = x.children.filter((c) => typeof c === 'string' || c.name !== 'field' || !MODEL_FIELDS.includes(c.attrs.var ?? ''));
}

/** A muc#admin item naming a principal: a JID, or a group, org unit or domain in a principal child. */
function principalItem(key: string, affiliation: Affiliation): Element {
  const item = new Element('item', { affiliation });
  if (key.includes(':')) item.c('principal', { xmlns: NS_PRINCIPAL, key });
  else item.attrs.jid = key;
  return item;
}

/** The lists of a governed room as muc#admin shows them. */
function listOf(g: GovernedRoom, affiliation: Affiliation): string[] {
  switch (affiliation) {
    case 'owner': return g.record.managers;
    case 'member': return g.record.privacy === 'open' ? [] : (g.record.members ?? g.category.allowed);
    case 'outcast': return g.category.denied;
    default: return [];
  }
}

interface Snapshot { privacy: RoomPrivacy; type: RoomKind; name: string; disabled: boolean }
const snap = (r: ChatRoomRecord): Snapshot => ({ privacy: r.privacy, type: r.type, name: r.name, disabled: r.disabled });

export const governance: RoomFeature = {
  name: 'governance',
  init(hooks, ctx) {
    const server = ctx.server;
    const gov = (room: Room) => governedRoom(server, ctx.domain, room.name);
    /** The record as the room last applied it, to tell what a change changed. */
    const applied = new WeakMap<Room, Snapshot>();
    /** Each occupant's affiliation as last shown, to tell occupants whose affiliation changed. */
    const shownAffiliation = new WeakMap<Occupant, Affiliation>();
    const remember = (room: Room, rec: ChatRoomRecord) => { if (!applied.has(room)) applied.set(room, snap(rec)); };

    // --- admission: the sender's subject, and requests the model's operations take over -------------

    // The sender's principal set: its read starts as the stanza arrives (prefetch), and the admission
    // step waits for it in the room's order.
    hooks.prefetch((_stanza, from) => {
      const g = governedService(server, ctx.domain);
      const bare = from.bareString();
      if (!g || bare === server.domain || g.model.subject(bare)) return;
      g.model.ensureSubjects([bare]).catch(() => {});
    });
    hooks.admit(({ from }) => {
      const g = governedService(server, ctx.domain);
      const bare = from.bareString();
      if (!g || bare === server.domain || g.model.subject(bare)) return undefined;
      return g.model.ensureSubjects([bare]).then(() => undefined);
    });

    // A room one may neither see nor manage does not exist for them, whatever they ask (owner form,
    // lists, destroy, messages): the answer is the one a missing room gives. A disabled room stays
    // visible to those who would see it enabled (they are told it is disabled).
    hooks.admit((a) => {
      const g = governedRoom(server, ctx.domain, a.name);
      const bare = a.from.bareString();
      if (!g || bare === server.domain) return undefined;
      const { stanza } = a;
      const type = stanza.attrs.type;
      if (type === 'error' || type === 'result' || (stanza.name === 'presence' && type === 'unavailable')) return undefined;
      const s = subjectFor(g, bare);
      if (existsFor(s, g.record, g.category)) return undefined;
      return Promise.resolve(a.fail(new StanzaError('item-not-found', 'no such room')));
    });

    hooks.admit((a) => {
      const { stanza } = a;
      if (stanza.name === 'message') return invitation(a);
      if (stanza.name !== 'iq') return undefined;
      const to = stanza.attrs.to ?? '';
      if (to.includes('/')) return undefined;
      const payload = stanza.elements()[0];
      if (!payload) return undefined;
      if (payload.is('query', MUC_NS.owner) && stanza.attrs.type === 'set') return ownerRequest(a, payload);
      if (payload.is('query', MUC_NS.admin)) return adminRequest(a, payload, stanza.attrs.type === 'get');
      if (payload.is('query', NS.mam) && stanza.attrs.type === 'set') return archiveQuery(a);
      return undefined;
    });

    const ownerRequest = (a: Admission, query: Element): Promise<'handled' | undefined> | undefined => {
      const bare = a.from.bareString();
      const g = governedRoom(server, ctx.domain, a.name);
      const destroy = query.getChild('destroy', MUC_NS.owner);
      if (destroy) {
        if (!g || bare === server.domain) return undefined;
        if (!server.isAdmin(bare)) return Promise.resolve(a.fail(new StanzaError('forbidden', 'only administrators delete rooms')));
        const reason = destroy.getChildText('reason', MUC_NS.owner);
        return deleteRoom(opContext(server), actorOf(server, bare), ctx.domain, a.name, reason)
          .then(() => a.result(), (e: unknown) => a.fail(asStanzaError(e)));
      }
      const x = query.getChild('x', NS.dataForms);
      if (!x) return undefined;
      let form: DataForm;
      try { form = parseForm(x); } catch { return undefined; }
      if (form.type !== 'submit') return undefined;
      if (g) {
        let changes: RoomChanges;
        try { changes = formChanges(form, g.record); } catch (e) { return Promise.resolve(a.fail(e)); }
        if (Object.keys(changes).length === 0) {
          stripModelFields(x);
          return undefined;
        }
        return updateRoom(opContext(server), actorOf(server, bare), ctx.domain, a.name, changes).then(
          () => { stripModelFields(x); return undefined; },
          (e: unknown) => a.fail(asStanzaError(e)),
        );
      }
      // A new room on a governed service: its owner form creates it in a category.
      const svc = governedService(server, ctx.domain);
      if (!svc || !a.room?.locked) return undefined;
      return createFromForm(a, svc, form, x);
    };

    const createFromForm = async (a: Admission, g: GovernedService, form: DataForm, x: Element): Promise<'handled' | undefined> => {
      const bare = a.from.bareString();
      try {
        const s = subjectFor(g, bare);
        const changes = formChanges(form, null);
        let category = changes.category;
        if (!category) {
          // An instant room (an empty submitted form) goes to the one category the user may create in.
          const mine = creatable(g, s);
          if (mine.length !== 1) throw new MucProtocolError('not-acceptable', `choose a category (${F.category})`);
          category = mine[0]!.name;
        }
        await createRoom(opContext(server), actorOf(server, bare), ctx.domain, a.name, { ...changes, category });
      } catch (e) {
        return a.fail(asStanzaError(e));
      }
      stripModelFields(x);
      return undefined;
    };

    const adminRequest = (a: Admission, query: Element, get: boolean): Promise<'handled' | undefined> | undefined => {
      const g = governedRoom(server, ctx.domain, a.name);
      if (!g) return undefined;
      const items = query.getChildren('item', MUC_NS.admin);
      const affItems = items.filter((i) => i.attrs.affiliation !== undefined && i.attrs.role === undefined);
      if (affItems.length === 0) return undefined;
      const bare = a.from.bareString();
      if (get) {
        try {
          const wanted = affItems[0]!.attrs.affiliation as Affiliation;
          const s = bare === server.domain ? null : subjectFor(g, bare);
          const may = !s || canManage(s, g.record, g.category)
            || (g.record.privacy !== 'open' && isMember(s, g.record, g.category) && wanted !== 'outcast');
          if (!may) throw new MucProtocolError('forbidden', 'you may not see this list');
          const q = new Element('query', { xmlns: MUC_NS.admin });
          for (const key of listOf(g, wanted)) q.append(principalItem(key, wanted));
          return Promise.resolve(a.result(q));
        } catch (e) {
          return Promise.resolve(a.fail(e));
        }
      }
      if (affItems.length !== items.length) {
        return Promise.resolve(a.fail(new MucProtocolError('bad-request', 'change roles and affiliations in separate requests')));
      }
      const members: Required<Pick<ListChange, 'add' | 'remove'>> = { add: [], remove: [] };
      const managers: Required<Pick<ListChange, 'add' | 'remove'>> = { add: [], remove: [] };
      try {
        for (const item of affItems) {
          const raw = item.getChild('principal', NS_PRINCIPAL)?.attrs.key ?? item.attrs.jid;
          if (!raw) throw new MucProtocolError('bad-request', 'an affiliation change needs a jid or a principal');
          const key = canonicalPrincipal(raw);
          switch (item.attrs.affiliation) {
            case 'member': members.add.push(key); break;
            case 'owner': managers.add.push(key); break;
            case 'none':
              if (g.record.members?.includes(key)) members.remove.push(key);
              if (g.record.managers.includes(key)) managers.remove.push(key);
              break;
            case 'outcast': throw new MucProtocolError('not-allowed', 'who is denied is set on the category, not the room');
            case 'admin': throw new MucProtocolError('not-allowed', 'rooms in categories have managers (owner) and members, no admins');
            default: throw new MucProtocolError('bad-request', 'unknown affiliation');
          }
        }
      } catch (e) {
        return Promise.resolve(a.fail(asStanzaError(e)));
      }
      const changes: RoomChanges = {};
      if (members.add.length + members.remove.length > 0) changes.members = members;
      if (managers.add.length + managers.remove.length > 0) changes.managers = managers;
      if (Object.keys(changes).length === 0) return Promise.resolve(a.result());
      return updateRoom(opContext(server), actorOf(server, bare), ctx.domain, a.name, changes)
        .then(() => a.result(), (e: unknown) => a.fail(asStanzaError(e)));
    };

    /**
     * A manager's mediated invitation (§7.8.2) to a closed or secret room makes the invitees members,
     * through the operation, before the room sends it; from anyone else the room decides as usual.
     */
    const invitation = (a: Admission): Promise<'handled' | undefined> | undefined => {
      const { stanza } = a;
      const type = stanza.attrs.type ?? 'normal';
      if (type === 'groupchat' || type === 'error' || (stanza.attrs.to ?? '').includes('/')) return undefined;
      const invites = stanza.getChild('x', MUC_NS.user)?.getChildren('invite', MUC_NS.user) ?? [];
      if (invites.length === 0) return undefined;
      const g = governedRoom(server, ctx.domain, a.name);
      // A room without a member list has everyone in scope as member already (the operation refuses anyone else).
      if (!g || g.record.privacy === 'open' || g.record.members === null) return undefined;
      const s = g.model.subject(a.from.bareString());
      if (!s || !canManage(s, g.record, g.category)) return undefined;
      const invitees: string[] = [];
      for (const el of invites) {
        const to = el.attrs.to ? tryParseJid(el.attrs.to) : null;
        if (to?.local) invitees.push(to.bareString());
      }
      if (invitees.length === 0) return undefined;
      return (async (): Promise<'handled' | undefined> => {
        await g.model.ensureSubjects(invitees);
        const add = invitees.filter((b) => { const t = g.model.subject(b); return !t || !isMember(t, g.record, g.category); });
        if (add.length === 0) return undefined;
        try {
          await updateRoom(opContext(server), actorOf(server, a.from.bareString()), ctx.domain, a.name, { members: { add } });
        } catch (e) {
          return a.fail(asStanzaError(e));
        }
        return undefined;
      })();
    };

    /** A category without history keeps no archive: those who may read get an empty result. */
    const archiveQuery = (a: Admission): Promise<'handled' | undefined> | undefined => {
      const g = governedRoom(server, ctx.domain, a.name);
      if (!g || g.category.chatHistory) return undefined;
      const s = g.model.subject(a.from.bareString());
      if (!s || !canJoin(s, g.record, g.category)) return undefined; // the room refuses it as it would any read
      const fin = new Element('fin', { xmlns: NS.mam, complete: 'true' });
      fin.c('set', { xmlns: NS.rsm }).c('count').t('0');
      return Promise.resolve(a.result(fin));
    };

    // --- entering, affiliations, speaking, reading ---------------------------------------------------

    hooks.on('room/pre-create', ({ name, creator }) => {
      const g = governedService(server, ctx.domain);
      if (!g || g.service.room(name)) return undefined;
      const s = subjectFor(g, creator.bareString());
      if (creatable(g, s).length === 0) throw new StanzaError('not-allowed', 'you may create rooms in no category of this service');
      return undefined;
    });

    // After lock: on a governed service a new room waits for its category (an instant room included);
    // a room the model already has (created by an admin) opens at once.
    hooks.on('room/created', ({ room }) => {
      const g = gov(room);
      if (g) {
        room.locked = false;
        syncConfig(room.config, g.record);
        remember(room, g.record);
      } else if (governedService(server, ctx.domain)) {
        room.locked = true;
      }
      return undefined;
    }, -10);

    hooks.on('room/loaded', ({ room }) => {
      const g = gov(room);
      if (g) {
        syncConfig(room.config, g.record);
        remember(room, g.record);
      }
      return undefined;
    });

    hooks.on('occupant/pre-join', ({ room, bare }) => {
      const g = gov(room);
      if (!g || bare === server.domain) return undefined;
      const refusal = joinRefusal(subjectFor(g, bare), g.record, g.category);
      if (refusal) throw new MucProtocolError(refusal.condition, refusal.text);
      if (syncConfig(room.config, g.record)) room.save();
      remember(room, g.record);
      return undefined;
    }, 60);

    hooks.on('occupant/joined', ({ room, occupant }) => {
      if (gov(room)) shownAffiliation.set(occupant, room.affiliationOf(occupant.bare));
      return undefined;
    });

    // Below membership (server admins and the server are owners of every room).
    hooks.on('occupant/affiliation', ({ room, bare }) => {
      const g = gov(room);
      if (!g) return undefined;
      const s = g.model.subject(bare);
      return s ? affiliationOf(s, g.record, g.category) : 'none';
    }, 90);

    hooks.on('message/pre-groupchat', ({ room, occupant }) => {
      const g = gov(room);
      if (!g) return undefined;
      if (!canPost(subjectFor(g, occupant.bare), g.record, g.category)) {
        throw new MucProtocolError('forbidden', g.record.type === 'auditorium' ? 'only presenters post in this auditorium' : 'you may not post in this room');
      }
      return undefined;
    }, 50);

    hooks.on('archive/pre-read', ({ room, bare }) => {
      const g = gov(room);
      if (!g || bare === server.domain) return undefined;
      const s = subjectFor(g, bare);
      if (!canSee(s, g.record, g.category) && !canManage(s, g.record, g.category)) throw new StanzaError('item-not-found', 'no such room');
      if (!canRead(s, g.record, g.category)) throw new StanzaError('forbidden', 'you may not read the archive of this room');
      return undefined;
    }, 200);

    // --- discovery -----------------------------------------------------------------------------------

    hooks.on('disco/pre-query', ({ room, from }) => {
      const g = gov(room);
      const bare = from.bareString();
      if (!g || bare === server.domain) return undefined;
      const s = subjectFor(g, bare);
      if (!canSee(s, g.record, g.category) && !canManage(s, g.record, g.category)) throw new StanzaError('item-not-found', 'no such room');
      return undefined;
    });

    // Last, over what the XEP-0045 features said: the record decides.
    hooks.on('disco/info', ({ room, identity, features, fields }) => {
      const g = gov(room);
      if (!g) return undefined;
      const { record: r, category: c } = g;
      identity.name = r.name;
      const mapped = new Set(['muc_membersonly', 'muc_open', 'muc_public', 'muc_hidden', 'muc_moderated', 'muc_unmoderated']);
      const kept = features.filter((f) => !mapped.has(f));
      features.length = 0;
      features.push(...kept, r.privacy === 'open' ? 'muc_open' : 'muc_membersonly', r.privacy === 'secret' ? 'muc_hidden' : 'muc_public',
        r.type === 'auditorium' ? 'muc_moderated' : 'muc_unmoderated', NS_CATEGORY);
      for (const f of fields) {
        if (f.var === 'muc#roomconfig_roomname') f.values = [r.name];
        if (f.var === 'muc#roominfo_description') f.values = [r.description];
      }
      const addin = r.addin ? g.service.addin(r.addin) : undefined;
      fields.push(
        { var: F.category, type: 'text-single', label: 'Category', values: [c.name] },
        { var: F.privacy, type: 'text-single', label: 'Privacy', values: [r.privacy] },
        { var: F.type, type: 'text-single', label: 'Type', values: [r.type] },
        { var: F.addin, type: 'text-single', label: 'Add-in', values: [addin?.name ?? ''] },
        { var: F.addinUrl, type: 'text-single', label: 'Add-in URL', values: [addin?.url ?? ''] },
        { var: F.fileUpload, type: 'boolean', label: 'File upload', values: [c.fileUpload ? '1' : '0'] },
        { var: F.history, type: 'boolean', label: 'Chat history', values: [c.chatHistory ? '1' : '0'] },
      );
      return undefined;
    }, -10);

    // --- the owner form ------------------------------------------------------------------------------

    hooks.on('config/form', ({ room, form, from }) => {
      const svc = governedService(server, ctx.domain);
      if (!svc) return undefined;
      const g = gov(room);
      const s = from && from !== server.domain ? svc.model.subject(from) : undefined;
      const choices = (s ? creatable(svc, s) : []).map((c) => c.name);
      if (g && !choices.some((n) => n.toLowerCase() === g.category.name.toLowerCase())) choices.unshift(g.category.name);
      const list = (v: string, label: string, values: readonly string[], value: string, required = false): FormField => {
        const f: FormField = { var: v, type: 'list-single', label, values: [value], options: values.map((x) => ({ value: x })) };
        if (required) f.required = true;
        return f;
      };
      if (!g) {
        // A new room: where it goes and how private it is.
        form.fields.push(
          list(F.category, 'Category', choices, choices.length === 1 ? choices[0]! : '', true),
          list(F.privacy, 'Privacy', PRIVACIES, 'closed'),
          list(F.type, 'Type', KINDS, 'normal'),
        );
        return undefined;
      }
      const r = g.record;
      for (const f of form.fields) {
        if (f.var === F.name) f.values = [r.name];
        if (f.var === F.description) f.values = [r.description];
      }
      form.fields.push(
        list(F.category, 'Category', choices, g.category.name),
        list(F.privacy, 'Privacy', PRIVACIES, r.privacy),
        list(F.type, 'Type', KINDS, r.type),
        list(F.invitations, 'Invitations', INVITATIONS, r.invitations),
        list(F.addin, 'Add-in', ['', ...[...g.service.addins.values()].map((x) => x.name)], r.addin ?? ''),
        { var: F.disabled, type: 'boolean', label: 'Disabled (everyone leaves; only an administrator enables it again)', values: [r.disabled ? '1' : '0'] },
      );
      return undefined;
    });

    // What the form set for XEP-0045 is overruled by the record (privacy, name, description).
    hooks.on('config/submitted', ({ room, next }) => {
      const g = gov(room);
      if (!g) return undefined;
      syncConfig(next, g.record);
      return undefined;
    });

    // --- the service ---------------------------------------------------------------------------------

    hooks.on('service/room-list', ({ from }) => {
      const g = governedService(server, ctx.domain);
      if (!g) return undefined;
      return roomList(ctx, g, from.bareString());
    });

    hooks.on('service/disco-info', ({ features, forms }) => {
      const g = serviceModel(server, ctx.domain);
      if (!g) return undefined;
      if (g.service.governed) features.push(NS_CATEGORY);
      const st = g.service.settings;
      forms.push({
        type: 'result',
        fields: [
          { var: 'FORM_TYPE', type: 'hidden', values: [NS_CHAT_SERVICE] },
          { var: 'default-history', type: 'text-single', label: 'Default chat history', values: [String(st.defaultHistory)] },
          { var: 'max-file-size-kb', type: 'text-single', label: 'Largest file (KB)', values: [String(st.maxFileSizeKb)] },
          { var: 'participant-update-limit', type: 'text-single', label: 'Participant update limit', values: [String(st.participantUpdateLimit)] },
          { var: 'room-management-url', type: 'text-single', label: 'Room management', values: [st.roomManagementUrl] },
        ],
      });
      return undefined;
    });

    // --- live changes --------------------------------------------------------------------------------

    const recheck = async (room: Room): Promise<void> => {
      if (ctx.loadedRoom(room.name) !== room) return;
      const first = gov(room);
      if (!first) return;
      await first.model.ensureSubjects([...room.occupants.values()].map((o) => o.bare));
      // From here on synchronous: the room's state and the model are read at one moment.
      const g = gov(room);
      if (!g || ctx.loadedRoom(room.name) !== room) return;
      const r = g.record;
      const before = applied.get(room);
      applied.set(room, snap(r));
      if (syncConfig(room.config, r)) room.save();
      if (r.disabled) {
        for (const occ of [...room.occupants.values()]) room.remove(occ, [STATUS.removedShutdown], null, DISABLED_REASON);
        room.host.occupantsChanged(room);
        return;
      }
      const nowMembersOnly = before !== undefined && before.privacy === 'open' && r.privacy !== 'open';
      for (const occ of [...room.occupants.values()]) {
        if (occ.bare === server.domain) continue;
        const s = g.model.subject(occ.bare);
        if (!s) continue;
        if (!canJoin(s, r, g.category)) {
          // 322 when the room became members-only and the user is simply not a member; 321 otherwise.
          const status = nowMembersOnly && !isMember(s, r, g.category) && canSee(s, { ...r, privacy: 'open' }, g.category)
            ? STATUS.removedMembersOnly : STATUS.removedAffiliationChange;
          room.remove(occ, [status], null, status === STATUS.removedMembersOnly ? MEMBERS_ONLY_REASON : LOST_ACCESS_REASON);
          continue;
        }
        const affiliation = room.affiliationOf(occ.bare);
        const role = room.defaultRole(affiliation, occ.bare);
        const shown = shownAffiliation.get(occ);
        if (role !== occ.role || (shown !== undefined && shown !== affiliation)) {
          occ.role = role;
          room.broadcastPresence(occ);
        }
        shownAffiliation.set(occ, affiliation);
      }
      if (before && (before.privacy !== r.privacy || before.type !== r.type || before.name !== r.name) && room.occupants.size > 0) {
        const msg = new Element('message', { from: room.jid, type: 'groupchat' }).append(mucUserX({ statuses: [STATUS.configChanged] }));
        room.send(room.sessions(), msg.toString(), 'message');
      }
      room.host.occupantsChanged(room);
    };

    const g0 = serviceModel(server, ctx.domain);
    g0?.model.onChange((change) => {
      if (change.service !== undefined && change.service !== ctx.domain && change.kind !== 'directory' && change.kind !== 'policy') return;
      if (change.kind === 'settings' || change.kind === 'addin' || change.kind === 'content') return;
      const names = change.kind === 'room' ? new Set(change.names ?? []) : null;
      for (const room of [...ctx.loadedRooms()]) {
        if (names && !names.has(room.name)) continue;
        // Not awaited: the change may come from a request this room is admitting right now.
        ctx.inRoomOrder(room.name, () => recheck(room));
      }
    });
  },
};

/** The rooms listed to a user on a governed service: public plain rooms, and the governed rooms they may see. */
function roomList(ctx: FeatureContext, g: GovernedService, bare: string): { page(after: string | undefined, max: number): Promise<{ name: string; title: string }[]>; count(): Promise<number> } {
  const server = ctx.server;
  const visible = async (): Promise<{ name: string; title: string }[]> => {
    if (bare === server.domain) return [...g.service.rooms.values()].map((r) => ({ name: r.room, title: r.name }));
    const s = await g.model.subjectOf(bare);
    const out: { name: string; title: string }[] = [];
    for (const r of g.service.rooms.values()) {
      const c = g.service.categoryOf(r);
      if (c && canSee(s, r, c)) out.push({ name: r.room, title: r.name });
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  };
  /** Plain public rooms after a localpart, skipping governed ones (read in chunks). */
  const plain = async (after: string | undefined, max: number): Promise<{ name: string; title: string }[]> => {
    const out: { name: string; title: string }[] = [];
    let cursor = after;
    const chunk = Math.max(max + 1, 100);
    for (;;) {
      const rooms = await server.stores.rooms.list(ctx.domain, { publicOnly: true, after: cursor, limit: chunk });
      for (const r of rooms) {
        if (g.service.room(r.name)) continue;
        out.push({ name: r.name, title: typeof r.config.name === 'string' && r.config.name ? r.config.name : r.name });
        if (out.length >= max) return out;
      }
      if (rooms.length < chunk) return out;
      cursor = rooms[rooms.length - 1]!.name;
    }
  };
  return {
    async page(after, max) {
      const [gov, pub] = await Promise.all([visible(), plain(after, max)]);
      const merged = [...gov.filter((r) => after === undefined || r.name > after), ...pub];
      merged.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      return merged.slice(0, max);
    },
    async count() {
      const [gov, pub] = await Promise.all([visible(), plain(undefined, Number.MAX_SAFE_INTEGER)]);
      return gov.length + pub.length;
    },
  };
}
