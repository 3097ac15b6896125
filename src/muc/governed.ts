// Rooms under the persistent-chat model (src/pchat/): the model's view of a service and of one room,
// for the room features that apply the model's rules (governance, auditorium, chat history, large
// rooms). A service is governed when its model has categories or governed rooms; a room is governed
// when the model has its record. Everything else keeps plain XEP-0045 behaviour.
import { StanzaError } from '../../protocol/errors.js';
import type { CategoryRecord, ChatRoomRecord } from '../../storage/types.js';
import type { Server } from '../context.js';
import type { Subject } from '../pchat/access.js';
import type { ChatModel, ServiceModel } from '../pchat/model.js';
import { chatModelOf } from '../pchat/module.js';
import type { Room } from './room.js';
import type { RoomConfig } from './option.js';

export interface GovernedService {
  model: ChatModel;
  service: ServiceModel;
}

export interface GovernedRoom extends GovernedService {
  record: ChatRoomRecord;
  category: CategoryRecord;
}

/** A record whose category is missing (it should not happen): nobody is in its scope. */
const NO_CATEGORY: Omit<CategoryRecord, 'service' | 'name'> = {
  description: '', allowed: [], denied: [], creators: [], invitations: false, fileUpload: false, chatHistory: true, editing: true,
};

/** The model of a service, whether governed or not (undefined without the model module). */
export function serviceModel(server: Server, domain: string): GovernedService | undefined {
  const model = chatModelOf(server);
  const service = model?.forService(domain);
  return model && service ? { model, service } : undefined;
}

/** The service's settings (undefined without the model module), without an object per call: asked per presence. */
export function serviceSettings(server: Server, domain: string): ServiceModel['settings'] | undefined {
  return chatModelOf(server)?.forService(domain)?.settings;
}

/** The service's model when it is governed. */
export function governedService(server: Server, domain: string): GovernedService | undefined {
  const g = serviceModel(server, domain);
  return g?.service.governed ? g : undefined;
}

/**
 * The room's record and category when the room is governed. Asked several times per presence a room
 * builds (affiliation, role, who is shown): a room without a record costs two look-ups, no object.
 */
export function governedRoom(server: Server, domain: string, name: string): GovernedRoom | undefined {
  const model = chatModelOf(server);
  const service = model?.forService(domain);
  const record = service?.room(name);
  if (!model || !service || !record) return undefined;
  const category = service.categoryOf(record) ?? { ...NO_CATEGORY, service: domain, name: record.category };
  return { model, service, record, category };
}

export function governedRoomOf(room: Room, server: Server): GovernedRoom | undefined {
  return governedRoom(server, room.host.domain, room.name);
}

/**
 * The subject for a synchronous check. The admission step loaded it before the stanza reached the
 * room; a directory change in between can drop it from the cache, and then the client tries again.
 */
export function subjectFor(g: GovernedService, bare: string): Subject {
  const s = g.model.subject(bare);
  if (!s) throw new StanzaError('resource-constraint', 'the directory is being reloaded; try again', 'wait');
  return s;
}

/** Sets the XEP-0045 options a governed room's record fixes (privacy → members-only and public, name, description); true when one changed. */
export function syncConfig(config: RoomConfig, record: ChatRoomRecord): boolean {
  const want: Record<string, unknown> = {
    membersOnly: record.privacy !== 'open',
    public: record.privacy !== 'secret',
    persistent: true,
    name: record.name,
    description: record.description,
  };
  let changed = false;
  for (const [k, v] of Object.entries(want)) {
    if (k in config && config[k] !== v) {
      config[k] = v;
      changed = true;
    }
  }
  return changed;
}
