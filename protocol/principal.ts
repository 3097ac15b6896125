// Principals of the persistent-chat model: who an access list names. Written as a bare JID,
// `group:NAME`, `ou:/PATH` or `domain:example.org`; compared by a canonical key (lower-case names,
// normalised paths), so `Group:Sales` and `group:sales` are one principal.
import { tryParseJid } from './jid.js';

export type Principal =
  | { kind: 'user'; jid: string }
  | { kind: 'group'; name: string }
  | { kind: 'ou'; path: string }
  | { kind: 'domain'; domain: string };

export class PrincipalError extends Error {}

/** Most characters a group name or one org unit path segment may have. */
export const MAX_PRINCIPAL_NAME = 256;

/** A canonical org unit path: '/corp/emea/sales' (lower case, no empty segment, no trailing slash). */
export function normaliseOuPath(raw: string): string {
  const t = raw.trim();
  if (!t.startsWith('/')) throw new PrincipalError(`${raw}: an org unit path starts with / (e.g. /corp/emea)`);
  const segments = t.split('/').slice(1);
  if (segments.length === 0 || segments.some((s) => s.trim() === '')) throw new PrincipalError(`${raw}: an org unit path has no empty segment`);
  // The limit holds for the canonical form: lower case may lengthen a segment ('İ' becomes 'i̇').
  const canonical = segments.map((s) => s.trim().toLowerCase());
  for (const s of canonical) if (s.length > MAX_PRINCIPAL_NAME) throw new PrincipalError(`${raw}: a path segment is longer than ${MAX_PRINCIPAL_NAME}`);
  return '/' + canonical.join('/');
}

/** The path and each ancestor, nearest last: '/a/b' → ['/a', '/a/b']. */
export function ouLineage(path: string): string[] {
  const out: string[] = [];
  const parts = path.split('/').slice(1);
  for (let i = 1; i <= parts.length; i++) out.push('/' + parts.slice(0, i).join('/'));
  return out;
}

export function normaliseGroupName(raw: string): string {
  const t = raw.trim();
  if (t === '') throw new PrincipalError('a group name is empty');
  if (t.includes(',')) throw new PrincipalError(`${raw}: a group name has no comma`);
  const canonical = t.toLowerCase();
  if (canonical.length > MAX_PRINCIPAL_NAME) throw new PrincipalError(`group name longer than ${MAX_PRINCIPAL_NAME} characters`);
  return canonical;
}

/** Parses one principal as an admin writes it; throws PrincipalError saying what is wrong. */
export function parsePrincipal(raw: string): Principal {
  const t = raw.trim();
  const colon = t.indexOf(':');
  const prefix = colon > 0 ? t.slice(0, colon).toLowerCase() : '';
  if (prefix === 'group') return { kind: 'group', name: normaliseGroupName(t.slice(colon + 1)) };
  if (prefix === 'ou') return { kind: 'ou', path: normaliseOuPath(t.slice(colon + 1)) };
  if (prefix === 'domain') {
    const j = tryParseJid(t.slice(colon + 1).trim());
    if (!j || j.local || j.resource) throw new PrincipalError(`${raw}: not a domain`);
    return { kind: 'domain', domain: j.domain };
  }
  const j = tryParseJid(t);
  if (!j || !j.local || j.resource) throw new PrincipalError(`${raw}: not a principal (a bare JID, group:NAME, ou:/PATH or domain:DOMAIN)`);
  return { kind: 'user', jid: j.bareString() };
}

/** The canonical key: the form stored in lists and held in a user's principal set. */
export function principalKey(p: Principal): string {
  switch (p.kind) {
    case 'user': return p.jid;
    case 'group': return `group:${p.name}`;
    case 'ou': return `ou:${p.path}`;
    case 'domain': return `domain:${p.domain}`;
  }
}

/** parsePrincipal then principalKey. */
export function canonicalPrincipal(raw: string): string {
  return principalKey(parsePrincipal(raw));
}

/** Parses a key that was stored canonical (no validation beyond the prefix). */
export function principalOfKey(key: string): Principal {
  if (key.startsWith('group:')) return { kind: 'group', name: key.slice(6) };
  if (key.startsWith('ou:')) return { kind: 'ou', path: key.slice(3) };
  if (key.startsWith('domain:')) return { kind: 'domain', domain: key.slice(7) };
  return { kind: 'user', jid: key };
}

/**
 * A list edit as the CLI and forms write it: `+a,-b` adds and removes, plain entries replace the
 * list, an empty string clears it. Returns null for "clear".
 */
export interface ListEdit { replace: string[] | null; add: string[]; remove: string[]; clear: boolean }
export function parseListEdit(values: readonly string[]): ListEdit {
  const items = values.flatMap((v) => v.split(',')).map((v) => v.trim());
  const edit: ListEdit = { replace: null, add: [], remove: [], clear: false };
  const nonEmpty = items.filter((v) => v !== '');
  if (nonEmpty.length === 0) {
    edit.clear = true;
    return edit;
  }
  for (const v of nonEmpty) {
    if (v.startsWith('+')) edit.add.push(canonicalPrincipal(v.slice(1)));
    else if (v.startsWith('-')) edit.remove.push(canonicalPrincipal(v.slice(1)));
    else (edit.replace ??= []).push(canonicalPrincipal(v));
  }
  if (edit.replace && (edit.add.length > 0 || edit.remove.length > 0)) {
    throw new PrincipalError('a list is either replaced (a,b) or edited (+a,-b), not both');
  }
  return edit;
}

/** Applies an edit to a list (null: unset, e.g. a room that inherits its members). */
export function applyListEdit(list: readonly string[] | null, edit: ListEdit): string[] | null {
  if (edit.clear) return null;
  if (edit.replace) return [...new Set(edit.replace)];
  const out = new Set(list ?? []);
  for (const a of edit.add) out.add(a);
  for (const r of edit.remove) out.delete(r);
  return [...out];
}
