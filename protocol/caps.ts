// Entity capabilities (XEP-0115): the verification string of a disco#info answer (§5.1).
import { createHash } from 'node:crypto';
import { Element } from './xml.js';
import { NS } from './namespaces.js';
import { parseForm, formType, type DataForm } from './forms.js';

export interface CapsIdentity {
  category: string;
  type: string;
  lang?: string;
  name?: string;
}

/** Sorting by "i;octet" collation (RFC 4790 §9.3): by UTF-8 bytes, not UTF-16 code units. */
function octetCompare(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/**
 * The string S of XEP-0115 §5.1 that is hashed into 'ver'. Forms without a hidden FORM_TYPE field
 * are left out, as a verifying entity ignores them (§5.4).
 */
export function capsString(identities: CapsIdentity[], features: Iterable<string>, forms: DataForm[] = []): string {
  let s = '';
  const ids = identities
    .map((i) => `${i.category}/${i.type}/${i.lang ?? ''}/${i.name ?? ''}`)
    .sort(octetCompare);
  for (const id of ids) s += id + '<';
  for (const f of [...features].sort(octetCompare)) s += f + '<';
  const typed = forms
    .map((form) => ({ form, type: hiddenFormType(form) }))
    .filter((x): x is { form: DataForm; type: string } => x.type !== undefined)
    .sort((a, b) => octetCompare(a.type, b.type));
  for (const { form, type } of typed) {
    s += type + '<';
    const fields = form.fields
      .filter((f) => f.var !== undefined && f.var !== 'FORM_TYPE')
      .sort((a, b) => octetCompare(a.var!, b.var!));
    for (const field of fields) {
      s += field.var! + '<';
      for (const v of [...field.values].sort(octetCompare)) s += v + '<';
    }
  }
  return s;
}

function hiddenFormType(form: DataForm): string | undefined {
  const field = form.fields.find((f) => f.var === 'FORM_TYPE');
  return field?.type === 'hidden' ? formType(form) : undefined;
}

/** The 'ver' attribute: base64 of the SHA-1 of S (XEP-0115 §5.1 steps 8 and 9). */
export function capsVer(identities: CapsIdentity[], features: Iterable<string>, forms: DataForm[] = []): string {
  return createHash('sha1').update(capsString(identities, features, forms), 'utf8').digest('base64');
}

/** The 'ver' of a disco#info <query/> element (identities, features and XEP-0128 forms it holds). */
export function capsVerOfQuery(query: Element): string {
  const identities: CapsIdentity[] = [];
  const features: string[] = [];
  const forms: DataForm[] = [];
  for (const c of query.elements()) {
    if (c.name === 'identity' && c.ns === NS.discoInfo) {
      const id: CapsIdentity = { category: c.attrs.category ?? '', type: c.attrs.type ?? '' };
      const lang = c.attrs['xml:lang'];
      if (lang !== undefined) id.lang = lang;
      if (c.attrs.name !== undefined) id.name = c.attrs.name;
      identities.push(id);
    } else if (c.name === 'feature' && c.ns === NS.discoInfo && c.attrs.var !== undefined) {
      features.push(c.attrs.var);
    } else if (c.name === 'x' && c.ns === NS.dataForms) {
      forms.push(parseForm(c));
    }
  }
  return capsVer(identities, features, forms);
}

/** The <c/> element that announces capabilities with a SHA-1 verification string. */
export function capsElement(node: string, ver: string): Element {
  return new Element('c', { xmlns: NS.caps, hash: 'sha-1', node, ver });
}
