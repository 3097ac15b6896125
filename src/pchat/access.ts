// Who may do what in the persistent-chat model: the spec's access functions (scope, members, canSee,
// canJoin, canPost, canManage, canCreate), the only source of truth for joins, posts, disco, listings,
// archive reads, invitations and admin operations. Pure and synchronous: a subject carries the set of
// principal keys that cover the user (the user, its groups with their ancestors, its org unit and the
// units above, its domain), so every check is a few set look-ups over short lists.
import type { Affiliation, Role } from '../../protocol/muc.js';
import type { CategoryRecord, ChatRoomRecord } from '../../storage/types.js';

/** A user as the rules see them. */
export interface Subject {
  bare: string;
  /** Every principal key that covers the user (see directory.ts). */
  principals: ReadonlySet<string>;
  /** A server administrator. */
  admin: boolean;
  /** Persistent chat is on for the user (policy: user, then groups, then global). */
  enabled: boolean;
}

export type CategoryRules = Pick<CategoryRecord, 'allowed' | 'denied' | 'creators'>;
export type RoomRules = Pick<ChatRoomRecord, 'privacy' | 'type' | 'disabled' | 'members' | 'managers' | 'presenters'>;

/** Does one of the list's principals cover the subject? */
export function covers(principals: ReadonlySet<string>, list: readonly string[] | null): boolean {
  if (!list) return false;
  for (let i = 0; i < list.length; i++) if (principals.has(list[i]!)) return true;
  return false;
}

/** scope(cat) = expand(allowed) − expand(denied): deny always wins. */
export function inScope(s: Subject, cat: CategoryRules): boolean {
  return covers(s.principals, cat.allowed) && !covers(s.principals, cat.denied);
}

export function isDenied(s: Subject, cat: CategoryRules): boolean {
  return covers(s.principals, cat.denied);
}

/** members(room) = expand(room.members) ∩ scope(cat); a room without a list inherits the scope. */
export function isMember(s: Subject, room: RoomRules, cat: CategoryRules): boolean {
  if (!inScope(s, cat)) return false;
  return room.members === null ? true : covers(s.principals, room.members);
}

export function canSee(s: Subject, room: RoomRules, cat: CategoryRules): boolean {
  if (!s.enabled || room.disabled) return false;
  return room.privacy === 'secret' ? isMember(s, room, cat) : inScope(s, cat);
}

export function canJoin(s: Subject, room: RoomRules, cat: CategoryRules): boolean {
  if (!s.enabled || room.disabled) return false;
  return room.privacy === 'open' ? inScope(s, cat) : isMember(s, room, cat);
}

export function isPresenter(s: Subject, room: RoomRules, cat: CategoryRules): boolean {
  return room.type === 'auditorium' && covers(s.principals, room.presenters) && inScope(s, cat);
}

/** Auditoriums: presenters only, whatever the MUC role; admins and managers too must be presenters. */
export function canPost(s: Subject, room: RoomRules, cat: CategoryRules): boolean {
  return canJoin(s, room, cat) && (room.type === 'normal' || isPresenter(s, room, cat));
}

/**
 * Admins, and managers the category does not deny (deny wins here too: a manager later denied by the
 * category loses the room). Management does not need the policy: it is an admin face, not chat.
 */
export function canManage(s: Subject, room: RoomRules, cat: CategoryRules): boolean {
  return s.admin || (covers(s.principals, room.managers) && !isDenied(s, cat));
}

export function canCreate(s: Subject, cat: CategoryRules): boolean {
  return s.admin || (s.enabled && covers(s.principals, cat.creators) && inScope(s, cat));
}

/** Reading the archive (MAM, search): as joining, and only where the category keeps history. */
export function canRead(s: Subject, room: RoomRules, cat: CategoryRules & { chatHistory: boolean }): boolean {
  return cat.chatHistory && canJoin(s, room, cat);
}

/**
 * The XEP-0045 affiliation the rules give: managers are owners, members of a closed or secret room are
 * members, those the category denies are outcasts; an open room has no member list (everyone in scope
 * enters as 'none').
 */
export function affiliationOf(s: Subject, room: RoomRules, cat: CategoryRules): Affiliation {
  if (isDenied(s, cat) && !s.admin) return 'outcast';
  if (canManage(s, room, cat)) return 'owner';
  if (room.privacy !== 'open' && isMember(s, room, cat)) return 'member';
  return 'none';
}

/** The role an occupant gets: in an auditorium presenters speak and everyone else listens. */
export function roleOf(s: Subject, room: RoomRules, cat: CategoryRules, affiliation: Affiliation): Role {
  if (!canJoin(s, room, cat)) return 'none';
  if (room.type === 'auditorium') {
    if (affiliation === 'owner') return 'moderator';
    return isPresenter(s, room, cat) ? 'participant' : 'visitor';
  }
  return affiliation === 'owner' ? 'moderator' : 'participant';
}

/**
 * Does the room exist for the subject at all? Not when they may neither see it (were it enabled) nor
 * manage it, unless the category denies them a room that is no secret (they are told they are denied).
 * Every request about a room that does not exist for someone is answered as for a missing room.
 */
export function existsFor(s: Subject, room: RoomRules, cat: CategoryRules): boolean {
  if (canManage(s, room, cat) || canSee(s, room.disabled ? { ...room, disabled: false } : room, cat)) return true;
  return s.enabled && room.privacy !== 'secret' && isDenied(s, cat);
}

/**
 * Why a subject may not join, as the XEP-0045 condition and a text; null when they may. Secret rooms
 * and disabled rooms do not exist for those who may not see them.
 */
export function joinRefusal(s: Subject, room: RoomRules, cat: CategoryRules): { condition: 'item-not-found' | 'forbidden' | 'registration-required'; text: string } | null {
  if (canJoin(s, room, cat)) return null;
  // Those the category denies are outcasts of a room whose existence is no secret.
  if (s.enabled && room.privacy !== 'secret' && isDenied(s, cat)) return { condition: 'forbidden', text: 'you are not allowed in rooms of this category' };
  if (!canSee(s, room, cat)) {
    if (room.disabled && (s.admin || canManage(s, room, cat))) return { condition: 'forbidden', text: 'this room is disabled' };
    if (room.disabled && inScope(s, cat) && room.privacy !== 'secret') return { condition: 'forbidden', text: 'this room is disabled' };
    return { condition: 'item-not-found', text: 'no such room' };
  }
  return { condition: 'registration-required', text: 'this room is for its members only' };
}
