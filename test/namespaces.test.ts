// One namespace table: protocol/namespaces.ts `NS` holds every XML namespace the server speaks, each
// value once; code elsewhere names NS entries instead of spelling namespaces out.
import { expect } from 'chai';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { NS } from '../protocol/namespaces.js';
import { MUC_NS } from '../protocol/muc.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** Rooms and the ad-hoc command files are being reworked separately. */
const EXCLUDED = ['protocol/namespaces.ts'];
/** A quoted string that is an XMPP namespace. */
const NAMESPACE_LITERAL = /['"`](urn:xmpp:|urn:ietf:params:xml:ns:|http:\/\/jabber\.org\/|jabber:|vcard-temp|http:\/\/etherx\.jabber\.org\/|http:\/\/www\.w3\.org\/XML\/)[^'"`]*['"`]/g;

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(path.join(ROOT, dir))) {
    const rel = `${dir}/${name}`;
    if (statSync(path.join(ROOT, rel)).isDirectory()) out.push(...sourceFiles(rel));
    else if (name.endsWith('.ts')) out.push(rel);
  }
  return out;
}

/** The text without comments (a `//` after ':' is part of a URL, not a comment). */
function withoutComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:])\/\/.*$/gm, '$1');
}

describe('namespace table', () => {
  it('holds each namespace once', () => {
    const byValue = new Map<string, string[]>();
    for (const [key, value] of Object.entries(NS)) byValue.set(value, [...(byValue.get(value) ?? []), key]);
    const twice = [...byValue.entries()].filter(([, keys]) => keys.length > 1);
    expect(twice).to.deep.equal([]);
  });

  it('gives the MUC short names the values of NS', () => {
    for (const value of Object.values(MUC_NS)) expect(Object.values(NS)).to.include(value);
  });

  it('is the only place a namespace is spelled out in protocol/ and src/', () => {
    const found: string[] = [];
    for (const file of [...sourceFiles('protocol'), ...sourceFiles('src')]) {
      if (EXCLUDED.some((p) => file.startsWith(p))) continue;
      const text = withoutComments(readFileSync(path.join(ROOT, file), 'utf8'));
      for (const m of text.matchAll(NAMESPACE_LITERAL)) found.push(`${file}: ${m[0]}`);
    }
    expect(found).to.deep.equal([]);
  });
});
