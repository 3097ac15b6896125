// The persistent-chat operations of the admin service layer: every change to categories, rooms,
// groups, org units, add-ins, service settings and policies, whoever asks (ad-hoc commands, the CLI,
// a manager's XEP-0045 owner form or affiliation list). Each one checks the actor's right and the
// model's rules (access.ts), writes the database in one transaction, and publishes the change so
// every node applies it (live rooms re-check their occupants). A refused operation changes nothing.
import type { ChatRoomRecord, CategoryRecord, DataStores, RoomKind, RoomPrivacy } from '../../storage/types.js';
import type { ChatModel } from './model.js';

/** Who asks: a local admin (CLI through the socket, or offline), or an account (admin or not). */
export type ChatActor = { kind: 'local' } | { kind: 'account'; bare: string };

/** Why an operation was refused, with the XMPP condition the faces answer with. */
export class ChatOpError extends Error {
  constructor(
    message: string,
    readonly condition: 'bad-request' | 'not-acceptable' | 'forbidden' | 'item-not-found' | 'conflict' | 'not-allowed' = 'bad-request',
  ) {
    super(message);
  }
}

/** What the operations work with. model is null when no server runs (the CLI on a stopped data dir). */
export interface ChatOpContext {
  stores: DataStores;
  model: ChatModel | null;
  /** The server's domain (expanding domain principals, default service). */
  domain: string;
  /** Configured MUC service domains. */
  services: readonly string[];
  isAdmin(bare: string): boolean;
  /** Creates (or finds) the XEP-0045 room so it can be joined: persistent, named; null offline. */
  ensureMucRoom?(service: string, room: string, name: string, description: string): Promise<void>;
  /** Destroys the live XEP-0045 room (occupants leave with the reason); used by room delete. */
  destroyMucRoom?(service: string, room: string, reason: string): Promise<void>;
}

/** A list edit: replace, add/remove, or clear (null list: a room inherits its category's scope). */
export interface ListChange { replace?: string[] | null; add?: string[]; remove?: string[] }

export interface RoomChanges {
  name?: string;
  description?: string;
  category?: string;
  privacy?: RoomPrivacy;
  type?: RoomKind;
  invitations?: 'inherit' | 'off';
  disabled?: boolean;
  addin?: string | null;
  members?: ListChange;
  managers?: ListChange;
  presenters?: ListChange;
}

export interface CategoryChanges {
  name?: string;
  description?: string;
  allowed?: ListChange;
  denied?: ListChange;
  creators?: ListChange;
  invitations?: boolean;
  fileUpload?: boolean;
  chatHistory?: boolean;
}

/**
 * The operations' signatures (implemented in this file by the admin layer work):
 *   createRoom(ctx, actor, service, localpart, { category, ...RoomChanges }): Promise<ChatRoomRecord>
 *   updateRoom(ctx, actor, service, localpart, RoomChanges): Promise<{ before: ChatRoomRecord; after: ChatRoomRecord }>
 *   deleteRoom(ctx, actor, service, localpart, reason?): Promise<void>          (admins only)
 *   createCategory / updateCategory / deleteCategory (admins only; delete only when empty)
 *   group / org unit / user org unit / add-in / service settings / policy operations
 * Each throws ChatOpError and leaves everything unchanged when refused.
 */
export type { ChatRoomRecord, CategoryRecord };
