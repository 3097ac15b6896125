// Data forms (XEP-0004): the <x xmlns='jabber:x:data'/> element as a plain object and back.
// Multi-item results (<reported/>/<item/>) are not modelled; they are skipped when parsing.
import { Element } from './xml.js';
import { NS } from './namespaces.js';

export interface FormField {
  var?: string;
  type?: string;
  label?: string;
  desc?: string;
  required?: boolean;
  values: string[];
  options?: { label?: string; value: string }[];
}

export interface DataForm {
  type: 'form' | 'submit' | 'cancel' | 'result';
  title?: string;
  instructions?: string[];
  fields: FormField[];
}

const FORM_TYPES = new Set(['form', 'submit', 'cancel', 'result']);
/** Field types of XEP-0004 §3.3. */
const FIELD_TYPES = new Set([
  'boolean', 'fixed', 'hidden', 'jid-multi', 'jid-single', 'list-multi', 'list-single',
  'text-multi', 'text-private', 'text-single',
]);
/** Types that may carry more than one <value/> (XEP-0004 §3.3). */
const MULTI_TYPES = new Set(['jid-multi', 'list-multi', 'text-multi']);

/** Parses a data form; throws Error when the element is not a well-formed form. */
export function parseForm(x: Element): DataForm {
  if (x.name !== 'x' || x.ns !== NS.dataForms) throw new Error('not a data form');
  const type = x.attrs.type;
  if (type === undefined || !FORM_TYPES.has(type)) throw new Error(`invalid form type: ${type ?? '(none)'}`);
  const form: DataForm = { type: type as DataForm['type'], fields: [] };
  const seen = new Set<string>();
  for (const child of x.elements()) {
    if (child.ns !== NS.dataForms) continue;
    if (child.name === 'title') form.title = child.text();
    else if (child.name === 'instructions') (form.instructions ??= []).push(child.text());
    else if (child.name === 'field') {
      const field = parseField(child);
      if (field.var !== undefined) {
        // XEP-0004 §3.2: var MUST be unique within a form (reported/item aside).
        if (seen.has(field.var)) throw new Error(`duplicate field: ${field.var}`);
        seen.add(field.var);
      }
      form.fields.push(field);
    }
  }
  return form;
}

function parseField(f: Element): FormField {
  const field: FormField = { values: [] };
  const { var: name, type, label } = f.attrs;
  if (type !== undefined) {
    if (!FIELD_TYPES.has(type)) throw new Error(`invalid field type: ${type}`);
    field.type = type;
  }
  // XEP-0004 §3.2: var is required unless the field is of type fixed.
  if (name === undefined) {
    if (type !== 'fixed') throw new Error('field without var');
  } else field.var = name;
  if (label !== undefined) field.label = label;
  for (const c of f.elements()) {
    if (c.ns !== NS.dataForms) continue;
    if (c.name === 'value') field.values.push(c.text());
    else if (c.name === 'desc') field.desc = c.text();
    else if (c.name === 'required') field.required = true;
    else if (c.name === 'option') {
      const value = c.getChild('value', NS.dataForms);
      if (!value) throw new Error('option without value');
      const opt: { label?: string; value: string } = { value: value.text() };
      if (c.attrs.label !== undefined) opt.label = c.attrs.label;
      (field.options ??= []).push(opt);
    }
  }
  if (field.values.length > 1 && type !== undefined && !MULTI_TYPES.has(type)) {
    throw new Error(`field ${name ?? ''} of type ${type} has several values`);
  }
  if (type === 'boolean' && field.values.length === 1 && !/^(0|1|true|false)$/.test(field.values[0]!)) {
    throw new Error(`invalid boolean value for ${name ?? ''}`);
  }
  return field;
}

/** Builds the <x xmlns='jabber:x:data'/> element of a form. */
export function buildForm(form: DataForm): Element {
  const x = new Element('x', { xmlns: NS.dataForms, type: form.type });
  if (form.title !== undefined) x.c('title').t(form.title);
  for (const line of form.instructions ?? []) x.c('instructions').t(line);
  for (const field of form.fields) {
    const attrs: Record<string, string> = {};
    if (field.var !== undefined) attrs.var = field.var;
    if (field.type !== undefined) attrs.type = field.type;
    if (field.label !== undefined) attrs.label = field.label;
    const f = x.c('field', attrs);
    if (field.desc !== undefined) f.c('desc').t(field.desc);
    if (field.required) f.c('required');
    for (const v of field.values) f.c('value').t(v);
    for (const opt of field.options ?? []) {
      const o = f.c('option', opt.label !== undefined ? { label: opt.label } : {});
      o.c('value').t(opt.value);
    }
  }
  return x;
}

/** The first value of a field, or undefined when the field is absent or empty. */
export function formValue(form: DataForm, name: string): string | undefined {
  return form.fields.find((f) => f.var === name)?.values[0];
}

/** All values of a field (empty when absent). */
export function formValues(form: DataForm, name: string): string[] {
  return form.fields.find((f) => f.var === name)?.values ?? [];
}

/** The FORM_TYPE of a form (XEP-0068): the value of the hidden field named FORM_TYPE. */
export function formType(form: DataForm): string | undefined {
  const f = form.fields.find((x) => x.var === 'FORM_TYPE');
  if (!f || (f.type !== undefined && f.type !== 'hidden')) return undefined;
  return f.values[0];
}
