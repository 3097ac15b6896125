#!/usr/bin/env node
// Stream parser micro-benchmark: Perch's XmlStreamParser against ltx's parser (as the @xmpp/xml
// stream parser uses it: ltx's SAX tokenizer + ltx Elements per stanza) and sax (strict mode, a
// plain-object tree per stanza), on one realistic client stream of chat messages and presence,
// fed in 16 KiB Buffer chunks. Every parser decodes UTF-8 itself or through a StringDecoder (ltx
// and sax take strings), inside the timed loop, and must report the same number of stanzas.
//
//   node bench/parser.mjs [--quick] [--mib 8] [--reps 7]
import { createRequire } from 'node:module';
import { StringDecoder } from 'node:string_decoder';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(ROOT, 'package.json'));
const { XmlStreamParser } = await import(path.join(ROOT, 'dist/protocol/xml-stream.js'));
const pkg = (name) => JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules', name, 'package.json'), 'utf8'));
const ltxPkg = pkg('ltx');
const saxPkg = pkg('sax');
const { Parser: XmppXmlParser } = await import(path.join(ROOT, 'node_modules/@xmpp/xml/index.js'));
const sax = require('sax');

const argv = process.argv.slice(2);
const opt = (name, dflt) => { const i = argv.indexOf(name); return i === -1 ? dflt : Number(argv[i + 1]); };
const QUICK = argv.includes('--quick');
const MIB = opt('--mib', QUICK ? 2 : 8);
const REPS = opt('--reps', QUICK ? 3 : 7);
const CHUNK = 16 * 1024;

// ------------------------------------------------------------------------------------------------
// input: what a busy client stream carries: mostly chat messages (with receipts, chat states,
// delays, some escaped text and non-ASCII), presence with caps, and a few IQs.

function buildStream(targetBytes) {
  let seed = 42;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  const words = ['hello', 'there', 'meeting', 'at', '10:00', 'café', 'déjà', 'vu', 'ok', 'see', 'you', 'tomorrow', '👍', 'the', 'build', 'is', 'green', 'again', 'naïve', 'résumé', 'Grüße', '日本語', 'a&amp;b', '&lt;tag&gt;', 'x'];
  const text = (n) => Array.from({ length: n }, () => words[Math.floor(rnd() * words.length)]).join(' ');
  const jid = () => `user${Math.floor(rnd() * 5000)}@example.org`;
  const parts = [`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0' xml:lang='en'>`];
  let bytes = Buffer.byteLength(parts[0]);
  let stanzas = 0;
  let id = 0;
  while (bytes < targetBytes) {
    const r = rnd();
    let s;
    if (r < 0.6) {
      s = `<message to='${jid()}' from='${jid()}/phone' type='chat' id='m${++id}' xml:lang='en'><body>${text(3 + Math.floor(rnd() * 25))}</body>` +
        `<active xmlns='http://jabber.org/protocol/chatstates'/><request xmlns='urn:xmpp:receipts'/>` +
        (rnd() < 0.3 ? `<delay xmlns='urn:xmpp:delay' from='example.org' stamp='2026-11-24T06:00:00.123Z'/>` : '') +
        (rnd() < 0.5 ? `<stanza-id xmlns='urn:xmpp:sid:0' by='${jid()}' id='${'a'.repeat(8)}-${id}'/>` : '') + `</message>`;
    } else if (r < 0.7) {
      s = `<message to='${jid()}' from='${jid()}/laptop' type='chat' id='m${++id}'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`;
    } else if (r < 0.93) {
      s = `<presence from='${jid()}/desktop' to='${jid()}' id='p${++id}'><show>${rnd() < 0.5 ? 'away' : 'dnd'}</show><status>${text(4)}</status>` +
        `<priority>5</priority><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://example.org/client' ver='q07IKJEyjvHSyhy//CH0CxmKi8w='/></presence>`;
    } else {
      s = `<iq type='get' id='i${++id}' to='example.org'><ping xmlns='urn:xmpp:ping'/></iq>`;
    }
    parts.push(s);
    bytes += Buffer.byteLength(s);
    stanzas++;
  }
  const buf = Buffer.from(parts.join(''));
  const chunks = [];
  for (let i = 0; i < buf.length; i += CHUNK) chunks.push(buf.subarray(i, i + CHUNK));
  return { buf, chunks, stanzas };
}

// ------------------------------------------------------------------------------------------------
// parsers, each returning the number of stanzas seen

const PARSERS = {
  [`XmlStreamParser (Perch, dist/protocol/xml-stream.js)`]: (chunks) => {
    let n = 0;
    const p = new XmlStreamParser({
      streamStart() {},
      stanza() { n++; },
      streamEnd() {},
      error(cond, text) { throw new Error(`${cond}: ${text}`); },
    }, { maxStanzaSize: 256 * 1024, maxDepth: 32 });
    for (const c of chunks) p.write(c);
    return n;
  },
  [`ltx ${ltxPkg.version} (SAX tokenizer + ltx Element per stanza, as @xmpp/xml's Parser)`]: (chunks) => {
    let n = 0;
    const p = new XmppXmlParser();
    p.on('element', () => { n++; });
    p.on('error', (e) => { throw e; });
    const d = new StringDecoder('utf8');
    for (const c of chunks) p.write(d.write(c));
    return n;
  },
  [`sax ${saxPkg.version} (strict, plain-object tree per stanza)`]: (chunks) => {
    let n = 0;
    const p = sax.parser(true, { xmlns: false, position: false });
    const stack = [];
    p.onopentag = (node) => {
      const el = { name: node.name, attrs: node.attributes, children: [] };
      if (stack.length > 1) stack[stack.length - 1].children.push(el);
      stack.push(el);
    };
    p.onclosetag = () => { stack.pop(); if (stack.length === 1) n++; };
    p.ontext = (t) => { if (stack.length > 1) stack[stack.length - 1].children.push(t); };
    p.onerror = (e) => { throw e; };
    const d = new StringDecoder('utf8');
    for (const c of chunks) p.write(d.write(c));
    return n;
  },
};

// ------------------------------------------------------------------------------------------------

const input = buildStream(MIB * 1024 * 1024);
const results = [];
console.log(`input: ${(input.buf.length / 1048576).toFixed(1)} MiB, ${input.stanzas} stanzas, ${input.chunks.length} chunks of ${CHUNK / 1024} KiB; best of ${REPS}`);
for (const [name, run] of Object.entries(PARSERS)) {
  run(input.chunks.slice(0, 64)); // warm-up
  let best = Infinity;
  for (let r = 0; r < REPS; r++) {
    const t0 = process.hrtime.bigint();
    const n = run(input.chunks);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (n !== input.stanzas) throw new Error(`${name}: ${n} stanzas, expected ${input.stanzas}`);
    best = Math.min(best, ms);
  }
  const res = { parser: name, ms: Math.round(best * 10) / 10, mb_per_s: Math.round((input.buf.length / 1e6 / (best / 1000)) * 10) / 10, stanzas_per_s: Math.round(input.stanzas / (best / 1000)) };
  results.push(res);
  console.log(`${name}: ${res.mb_per_s} MB/s, ${res.stanzas_per_s.toLocaleString('en-US')} stanzas/s (${res.ms} ms)`);
}
console.log(JSON.stringify({ scenario: 'parser', node: process.version, input: { description: 'client stream: 70% chat messages (receipts, chat states, some delay/stanza-id, non-ASCII text), 23% presence with caps, 7% IQ', bytes: input.buf.length, stanzas: input.stanzas, chunk: CHUNK, reps: REPS }, results }));
