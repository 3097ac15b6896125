// Publish-subscribe (XEP-0060) on the wire: namespaces, error conditions, node configuration forms
// and event payloads. Pure codec: no policy, no storage.
import { randomBytes } from 'node:crypto';
import { Element } from './xml.js';
import { NS } from './namespaces.js';
import { StanzaError, type StanzaErrorCondition } from './errors.js';
import { parseForm, formType, type DataForm } from './forms.js';


export const PUBSUB = {
  main: NS.pubsub,
  owner: NS.pubsubOwner,
  event: NS.pubsubEvent,
  errors: NS.pubsubErrors,
  nodeConfig: NS.pubsubNodeConfig,
  publishOptions: NS.pubsubPublishOptions,
  metaData: NS.pubsubMetaData,
} as const;

/** An XEP-0060 error: the stanza condition plus the pubsub#errors condition (§7, §6, §5). */
export function pubsubError(condition: StanzaErrorCondition, pubsubCondition?: string, text?: string, feature?: string): StanzaError {
  const appEl = pubsubCondition
    ? new Element(pubsubCondition, feature ? { xmlns: PUBSUB.errors, feature } : { xmlns: PUBSUB.errors })
    : undefined;
  return new StanzaError(condition, text, undefined, appEl);
}

/** Node configuration as stored: field var → value(s), values as their form text. */
export type NodeConfig = Record<string, string | string[]>;

export const ACCESS_MODELS = ['authorize', 'open', 'presence', 'roster', 'whitelist'] as const;
export type AccessModel = typeof ACCESS_MODELS[number];

interface FieldSpec { var: string; type: string; label?: string; options?: { label: string; value: string }[] }
const opts = (...values: string[]): { label: string; value: string }[] => values.map((value) => ({ label: value, value }));

/** The most items a node keeps; what pubsub#max_items 'max' means. */
export const MAX_ITEMS_LIMIT = 256;

/** The node configuration fields we honour (XEP-0060 §16.4.4), in the order the form lists them. */
export const CONFIG_FIELDS: FieldSpec[] = [
  { var: 'pubsub#title', type: 'text-single', label: 'Title' },
  { var: 'pubsub#description', type: 'text-single', label: 'Description' },
  { var: 'pubsub#type', type: 'text-single', label: 'The type of node data, usually specified by the namespace of the payload (if any)' },
  { var: 'pubsub#max_items', type: 'text-single', label: 'Max # of items to persist' },
  { var: 'pubsub#persist_items', type: 'boolean', label: 'Persist items to storage' },
  { var: 'pubsub#access_model', type: 'list-single', label: 'Specify the subscriber model', options: opts(...ACCESS_MODELS) },
  { var: 'pubsub#publish_model', type: 'list-single', label: 'Specify the publisher model', options: opts('publishers', 'subscribers', 'open') },
  { var: 'pubsub#send_last_published_item', type: 'list-single', options: opts('never', 'on_sub', 'on_sub_and_presence') },
  { var: 'pubsub#deliver_notifications', type: 'boolean', label: 'Whether to deliver event notifications' },
  { var: 'pubsub#deliver_payloads', type: 'boolean', label: 'Whether to deliver payloads with event notifications' },
  {
    var: 'pubsub#notification_type', type: 'list-single', label: 'Specify the delivery style for notifications',
    options: [{ label: 'Messages of type normal', value: 'normal' }, { label: 'Messages of type headline', value: 'headline' }],
  },
  { var: 'pubsub#notify_delete', type: 'boolean', label: 'Whether to notify subscribers when the node is deleted' },
  { var: 'pubsub#notify_retract', type: 'boolean', label: 'Whether to notify subscribers when items are removed from the node' },
];
const BOOLEAN_TRUE = new Set(['1', 'true']);
const BOOLEAN_FALSE = new Set(['0', 'false']);

/** The <x/> form a node owner fills in (type form) or the one describing a node (type result). */
export function configForm(config: NodeConfig, formTypeName: string = PUBSUB.nodeConfig, type: DataForm['type'] = 'form'): Element {
  const x = new Element('x', { xmlns: NS.dataForms, type });
  x.c('field', { var: 'FORM_TYPE', type: 'hidden' }).c('value').t(formTypeName);
  for (const spec of CONFIG_FIELDS) {
    const f = x.c('field', spec.label !== undefined ? { var: spec.var, label: spec.label, type: spec.type } : { type: spec.type, var: spec.var });
    if (spec.var === 'pubsub#max_items') {
      // XEP-0060 §16.4.4 'max'; the range tells clients the limit.
      f.c('validate', { xmlns: NS.xdataValidate, datatype: 'pubsub:integer-or-max' })
        .c('range', { min: '1', max: String(MAX_ITEMS_LIMIT) });
    }
    for (const o of spec.options ?? []) f.c('option', { label: o.label }).c('value').t(o.value);
    const v = config[spec.var];
    for (const one of v === undefined ? [] : Array.isArray(v) ? v : [v]) {
      f.c('value').t(spec.type === 'boolean' ? (one === 'true' ? '1' : '0') : one);
    }
  }
  return x;
}

/**
 * The fields of a submitted configuration or publish-options form, checked and normalised
 * (booleans as 'true'/'false'). Unknown fields and bad values are not-acceptable (§8.2.5).
 */
export function parseConfigForm(x: Element, expectedType: string): NodeConfig {
  let form: DataForm;
  try { form = parseForm(x); } catch { throw new StanzaError('bad-request', 'malformed data form'); }
  const type = formType(form);
  if (type !== undefined && type !== expectedType) throw new StanzaError('bad-request', `FORM_TYPE must be ${expectedType}`);
  const out: NodeConfig = {};
  if (form.type === 'cancel') return out;
  for (const f of form.fields) {
    if (!f.var || f.var === 'FORM_TYPE') continue;
    const spec = CONFIG_FIELDS.find((s) => s.var === f.var);
    if (!spec) throw new StanzaError('not-acceptable', `unsupported field ${f.var}`);
    const v = f.values[0] ?? '';
    if (spec.type === 'boolean') {
      if (BOOLEAN_TRUE.has(v)) out[f.var] = 'true';
      else if (BOOLEAN_FALSE.has(v)) out[f.var] = 'false';
      else throw new StanzaError('not-acceptable', `${f.var} must be a boolean`);
    } else if (spec.options && !spec.options.some((o) => o.value === v)) {
      throw new StanzaError('not-acceptable', `${f.var} does not allow ${v}`);
    } else if (spec.var === 'pubsub#max_items' && v !== 'max' && !/^[0-9]{1,9}$/.test(v)) {
      throw new StanzaError('not-acceptable', 'pubsub#max_items must be a number or max');
    } else {
      out[f.var] = v;
    }
  }
  return out;
}

/** The <message/> carrying one event to a subscriber. */
export function eventMessage(from: string, to: string, payload: Element, type = 'headline'): Element {
  const m = new Element('message', { from, to, type, id: randomBytes(6).toString('hex') });
  m.c('event', { xmlns: PUBSUB.event }).append(payload);
  return m;
}
