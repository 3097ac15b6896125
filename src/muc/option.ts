// How a feature declares a room option (XEP-0045 §10.2 muc#roomconfig): one descriptor holds its
// field in the configuration form, its default, and how a submitted value is read and checked.
// `bool('moderated', 'muc#roomconfig_moderatedroom', …)` is the whole declaration of a simple option.
import type { FormField } from '../../protocol/forms.js';
import { MucProtocolError } from '../../protocol/muc.js';

/** A room's option values, by key (stored as the room record's config). */
export type RoomConfig = Record<string, unknown>;

export interface RoomOption {
  /** Key in the room's config (and in the stored record). */
  key: string;
  /** Form field var. */
  field: string;
  type: FormField['type'];
  label: string;
  /** Position in the owner's form (the fields of XEP-0045 §15.5.3 come in this order). */
  order: number;
  options?: { label?: string; value: string }[];
  /** The default value. */
  initial(): unknown;
  /** The current value as form values. */
  write(c: RoomConfig): string[];
  /** Reads submitted values into c; throws MucProtocolError('not-acceptable') for a bad value. */
  read(c: RoomConfig, values: string[]): void;
}

export function badValue(field: string, why: string): MucProtocolError {
  return new MucProtocolError('not-acceptable', `${field}: ${why}`);
}

export function parseBool(field: string, values: string[]): boolean {
  const v = values[0] ?? '';
  if (v === '1' || v === 'true') return true;
  if (v === '0' || v === 'false') return false;
  throw badValue(field, 'not a boolean');
}

export function bool(key: string, field: string, label: string, order: number, initial: boolean): RoomOption {
  return {
    key, field, type: 'boolean', label, order,
    initial: () => initial,
    write: (c) => [c[key] ? '1' : '0'],
    read: (c, values) => { c[key] = parseBool(field, values); },
  };
}

export function text(key: string, field: string, label: string, order: number, max: number): RoomOption {
  return {
    key, field, type: 'text-single', label, order,
    initial: () => '',
    write: (c) => [String(c[key])],
    read: (c, values) => {
      const v = values.join('\n');
      if (v.length > max) throw badValue(field, `longer than ${max} characters`);
      c[key] = v;
    },
  };
}

export function choice(key: string, field: string, label: string, order: number, choices: string[], initial: string): RoomOption {
  return {
    key, field, type: 'list-single', label, order,
    options: choices.map((value) => ({ value })),
    initial: () => initial,
    write: (c) => [String(c[key])],
    read: (c, values) => {
      const v = values[0] ?? '';
      if (!choices.includes(v)) throw badValue(field, `one of ${choices.join(', ')}`);
      c[key] = v;
    },
  };
}
