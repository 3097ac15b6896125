// The room features every MUC service installs, in this order (one line per feature file).
import type { RoomFeature } from '../events.js';
import { roomInfo } from './room-info.js';
import { persistent } from './persistent.js';
import { hidden } from './hidden.js';
import { membersOnly } from './members-only.js';
import { moderated } from './moderated.js';
import { password } from './password.js';
import { maxUsers } from './max-users.js';
import { lock } from './lock.js';
import { whois } from './whois.js';
import { presenceBroadcast } from './presence-broadcast.js';
import { privateMessages } from './private-messages.js';
import { history } from './history.js';
import { subject } from './subject.js';
import { register } from './register.js';
import { voiceRequest } from './voice-request.js';
import { invitations } from './invitations.js';
import { moderation } from './moderation.js';
import { roomArchive } from './room-archive.js';
import { hats } from './hats.js';
import { occupantId } from './occupant-id.js';
import { selfPing } from './self-ping.js';
import { floodLimit } from './flood-limit.js';
import { governance } from './governance.js';
import { auditorium } from './auditorium.js';
import { chatHistory } from './chat-history.js';
import { largeRoom } from './large-room.js';
import { chatMessages } from './chat-messages.js';
import { archiveAdmin } from './archive-admin.js';
import { interactions } from './interactions.js';

export const roomFeatures: readonly RoomFeature[] = [
  roomInfo, persistent, hidden, membersOnly, moderated, password, maxUsers, lock, whois, presenceBroadcast,
  privateMessages, history, subject, register, voiceRequest, invitations, moderation, roomArchive, hats,
  occupantId, selfPing, floodLimit, governance, auditorium, chatHistory, largeRoom, chatMessages, archiveAdmin,
  interactions,
];
