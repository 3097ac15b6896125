#!/usr/bin/env node
// Two builds of Perch compared on bench/workers.mjs, alternating in one run (before, after, before,
// after...), so that a busy machine weighs on both alike: CPU per operation, rate, and what went wrong
// (chat: bounced, out of order; room fan-out: lost, duplicated or reordered).
//
//   npm run build && node bench/workers-ab.mjs --before /path/to/other/checkout [--rounds 2] [--quick]
//     [--cases chat,fanout] [--workers 1,2] [--port 32222] [--redis-port 32379]
//
// --before: another checkout of the repository, built (npm run build there), with node_modules. The
// after build is this checkout. Each round starts bench/workers.mjs of each build once.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const value = (name, dflt) => { const i = argv.indexOf(name); return i !== -1 && argv[i + 1] !== undefined ? argv[i + 1] : dflt; };
const BEFORE = value('--before', null);
if (!BEFORE) throw new Error('--before DIR: the checkout to compare with');
const ROUNDS = Number(value('--rounds', 2));
const pass = ['--cases', value('--cases', 'chat,fanout'), '--workers', value('--workers', '1,2'), '--port', value('--port', '32222'), '--redis-port', value('--redis-port', '32379')];
if (argv.includes('--quick')) pass.push('--quick');
const WORK = fs.mkdtempSync(path.join(os.tmpdir(), 'perch-workers-ab-'));
const log = (s) => process.stdout.write(`${s}\n`);

function run(label, dir, round) {
  const out = path.join(WORK, `${label}.jsonl`);
  log(`---- round ${round}/${ROUNDS}: ${label} (${dir})`);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(dir, 'bench/workers.mjs'), '--rounds', '1', '--out', out, ...pass], { stdio: ['ignore', 'pipe', 'inherit'] });
    child.stdout.on('data', (d) => { for (const l of String(d).split('\n')) if (l.includes('=>') || l.includes('perch:') || /out of order|lost/.test(l)) log(`  ${l.trim().slice(0, 240)}`); });
    child.on('exit', () => resolve());
  });
}

const median = (xs) => { const s = xs.filter((x) => typeof x === 'number' && !Number.isNaN(x)).sort((a, b) => a - b); return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : null; };

/** What went wrong in a run, from the load generator's own figures. */
function faults(row) {
  const r = row.raw;
  if (row.case === 'chat') return { bounced: r.result.errors_back, out_of_order: r.result.out_of_order, duplicates: r.result.duplicates };
  if (row.case === 'fanout') return { lost: r.lost, dup_or_reorder: r.dup_or_reorder, errors: r.errors ?? r.error_count ?? null };
  return {};
}

for (let round = 1; round <= ROUNDS; round++) {
  await run('before', BEFORE, round);
  await run('after', ROOT, round);
}
const rows = (label) => { try { return fs.readFileSync(path.join(WORK, `${label}.jsonl`), 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)); } catch { return []; } };
const before = rows('before');
const after = rows('after');
log('\n| case | workers | server CPU ms/op before → after (ratio) | rate before → after | Redis CPU s before → after | faults before → after (per run) |');
log('|---|---|---|---|---|---|');
for (const c of [...new Set([...before, ...after].map((r) => r.case))]) {
  for (const n of [...new Set([...before, ...after].filter((r) => r.case === c).map((r) => r.workers))]) {
    const b = before.filter((r) => r.case === c && r.workers === n);
    const a = after.filter((r) => r.case === c && r.workers === n);
    const ms = (rs) => median(rs.map((r) => r.server_cpu_ms_per_op));
    const rate = (rs) => median(rs.map((r) => r.rate));
    const redis = (rs) => median(rs.map((r) => r.run_cpu_s.redis));
    const f = (v, d) => (v === null ? '–' : v.toFixed(d));
    const ratio = ms(b) && ms(a) ? (ms(a) / ms(b)).toFixed(2) + '×' : '–';
    log(`| ${c} | ${n} | ${f(ms(b), 3)} → ${f(ms(a), 3)} (${ratio}) | ${f(rate(b), 0)} → ${f(rate(a), 0)} | ${f(redis(b), 2)} → ${f(redis(a), 2)} | ${JSON.stringify(b.map(faults))} → ${JSON.stringify(a.map(faults))} |`);
  }
}
log(`\nraw: ${WORK}`);
