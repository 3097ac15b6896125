// The parts of every room that XEP-0045 does not leave optional, installed before the features.
import type { RoomFeature } from './events.js';
import { membership } from './membership.js';
import { disco } from './disco.js';
import { adminIq } from './admin-iq.js';
import { ownerIq } from './owner-iq.js';

export const coreParts: readonly RoomFeature[] = [membership, disco, adminIq, ownerIq];
