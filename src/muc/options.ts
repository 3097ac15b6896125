// Room options (XEP-0045 §10.2 muc#roomconfig): each option is one descriptor — its field in the
// configuration form, its default, how a submitted value is read — so adding an option is adding an
// entry here and reading `room.config.<key>` where it matters.
import type { FormField } from '../../protocol/forms.js';
import { MucProtocolError, type Role } from '../../protocol/muc.js';

export type Whois = 'moderators' | 'anyone';
export type AllowPm = 'anyone' | 'participants' | 'moderators' | 'none';

export interface RoomConfig {
  name: string;
  description: string;
  language: string;
  persistent: boolean;
  public: boolean;
  membersOnly: boolean;
  moderated: boolean;
  /** Empty: no password. */
  password: string;
  /** 0: no limit. */
  maxUsers: number;
  whois: Whois;
  allowInvites: boolean;
  changeSubject: boolean;
  allowPm: AllowPm;
  /** Roles whose presence is broadcast (muc#roomconfig_presencebroadcast). */
  presenceBroadcast: Role[];
  /** Messages of history sent on join when the client asks for no fewer (1–500). */
  historyLength: number;
  voiceRequests: boolean;
}

export const MAX_HISTORY = 500;

export function defaultRoomConfig(): RoomConfig {
  return {
    name: '',
    description: '',
    language: '',
    persistent: false,
    public: true,
    membersOnly: false,
    moderated: false,
    password: '',
    maxUsers: 0,
    whois: 'moderators',
    allowInvites: false,
    changeSubject: false,
    allowPm: 'anyone',
    presenceBroadcast: ['moderator', 'participant', 'visitor'],
    historyLength: 30,
    voiceRequests: true,
  };
}

interface RoomOption {
  key: keyof RoomConfig;
  field: string;
  type: FormField['type'];
  label: string;
  options?: { label?: string; value: string }[];
  /** The current value as form values. */
  write(c: RoomConfig): string[];
  /** Reads submitted values into c; throws MucProtocolError('not-acceptable') for a bad value. */
  read(c: RoomConfig, values: string[]): void;
}

function bad(field: string, why: string): MucProtocolError {
  return new MucProtocolError('not-acceptable', `${field}: ${why}`);
}

function parseBool(field: string, values: string[]): boolean {
  const v = values[0] ?? '';
  if (v === '1' || v === 'true') return true;
  if (v === '0' || v === 'false') return false;
  throw bad(field, 'not a boolean');
}

type BoolKey = { [K in keyof RoomConfig]: RoomConfig[K] extends boolean ? K : never }[keyof RoomConfig];
type TextKey = { [K in keyof RoomConfig]: RoomConfig[K] extends string ? K : never }[keyof RoomConfig];

function bool(key: BoolKey, field: string, label: string): RoomOption {
  return {
    key, field, type: 'boolean', label,
    write: (c) => [c[key] ? '1' : '0'],
    read: (c, values) => { c[key] = parseBool(field, values); },
  };
}

function text(key: TextKey, field: string, label: string, max: number, type: FormField['type'] = 'text-single'): RoomOption {
  return {
    key, field, type, label,
    write: (c) => [String(c[key])],
    read: (c, values) => {
      const v = values.join('\n');
      if (v.length > max) throw bad(field, `longer than ${max} characters`);
      (c as unknown as Record<string, string>)[key] = v;
    },
  };
}

function choice<K extends 'whois' | 'allowPm'>(key: K, field: string, label: string, choices: RoomConfig[K][]): RoomOption {
  return {
    key, field, type: 'list-single', label,
    options: choices.map((value) => ({ value })),
    write: (c) => [c[key]],
    read: (c, values) => {
      const v = values[0] ?? '';
      if (!(choices as string[]).includes(v)) throw bad(field, `one of ${choices.join(', ')}`);
      c[key] = v as RoomConfig[K];
    },
  };
}

/** 'none' (a Prosody extension): joiners also get the unavailable presence of absent affiliated users. */
const ROLES_BROADCAST: Role[] = ['moderator', 'participant', 'visitor', 'none'];

export const ROOM_OPTIONS: readonly RoomOption[] = [
  text('name', 'muc#roomconfig_roomname', 'Title', 200),
  text('description', 'muc#roomconfig_roomdesc', 'Description', 2000),
  text('language', 'muc#roomconfig_lang', 'Language tag for room (e.g. \'en\', \'de\', \'fr\' etc.)', 35),
  bool('persistent', 'muc#roomconfig_persistentroom', 'Persistent (room stays when empty)'),
  bool('public', 'muc#roomconfig_publicroom', 'Include room information in public lists'),
  bool('membersOnly', 'muc#roomconfig_membersonly', 'Only allow members to join'),
  bool('moderated', 'muc#roomconfig_moderatedroom', 'Moderated (only occupants with voice may speak)'),
  bool('allowInvites', 'muc#roomconfig_allowinvites', 'Allow members to invite new members'),
  bool('changeSubject', 'muc#roomconfig_changesubject', 'Allow anyone to set the room\'s subject'),
  bool('voiceRequests', 'muc#roomconfig_allowvoicerequests', 'Allow visitors to request voice'),
  {
    // Read together with the secret by the room: turning protection off clears the password.
    key: 'password', field: 'muc#roomconfig_passwordprotectedroom', type: 'boolean', label: 'Password protected',
    write: (c) => [c.password ? '1' : '0'],
    read: (_c, values) => { parseBool('muc#roomconfig_passwordprotectedroom', values); },
  },
  {
    key: 'password', field: 'muc#roomconfig_roomsecret', type: 'text-private', label: 'Password',
    write: (c) => [c.password],
    read: (c, values) => { c.password = values[0] ?? ''; },
  },
  {
    key: 'maxUsers', field: 'muc#roomconfig_maxusers', type: 'list-single', label: 'Maximum number of occupants',
    options: ['none', '10', '20', '30', '50', '100', '500', '1000'].map((value) => ({ value })),
    write: (c) => [c.maxUsers === 0 ? 'none' : String(c.maxUsers)],
    read: (c, values) => {
      const v = values[0] ?? 'none';
      if (v === 'none' || v === '' || v === '0') { c.maxUsers = 0; return; }
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > 1_000_000) throw bad('muc#roomconfig_maxusers', 'a positive number or none');
      c.maxUsers = n;
    },
  },
  choice('whois', 'muc#roomconfig_whois', 'Who may see occupants\' real JIDs', ['moderators', 'anyone']),
  choice('allowPm', 'muc#roomconfig_allowpm', 'Who may send private messages', ['anyone', 'participants', 'moderators', 'none']),
  {
    key: 'presenceBroadcast', field: 'muc#roomconfig_presencebroadcast', type: 'list-multi',
    label: 'Roles whose presence is broadcast',
    options: ROLES_BROADCAST.map((value) => ({ value })),
    write: (c) => [...c.presenceBroadcast],
    read: (c, values) => {
      for (const v of values) if (!(ROLES_BROADCAST as string[]).includes(v)) throw bad('muc#roomconfig_presencebroadcast', `unknown role ${v}`);
      c.presenceBroadcast = ROLES_BROADCAST.filter((r) => values.includes(r));
    },
  },
  {
    key: 'historyLength', field: 'muc#maxhistoryfetch', type: 'text-single',
    label: `Maximum number of history messages returned by the room (1-${MAX_HISTORY})`,
    write: (c) => [String(c.historyLength)],
    read: (c, values) => {
      const n = Number(values[0]);
      if (!Number.isInteger(n) || n < 1 || n > MAX_HISTORY) throw bad('muc#maxhistoryfetch', `a number from 1 to ${MAX_HISTORY}`);
      c.historyLength = n;
    },
  },
];

const BY_FIELD = new Map(ROOM_OPTIONS.map((o) => [o.field, o]));

/** Fields answered in the form but set through other means (affiliation lists). */
export const LIST_FIELDS = {
  owners: 'muc#roomconfig_roomowners',
  admins: 'muc#roomconfig_roomadmins',
} as const;

export function optionForField(field: string): RoomOption | undefined {
  return BY_FIELD.get(field);
}

/** Restores a stored config over the defaults, ignoring keys this version does not know. */
export function restoreConfig(stored: Record<string, unknown>): RoomConfig {
  const c = defaultRoomConfig();
  for (const k of Object.keys(c) as (keyof RoomConfig)[]) {
    const v = stored[k];
    if (v !== undefined && typeof v === typeof c[k]) (c as unknown as Record<string, unknown>)[k] = v;
  }
  return c;
}
