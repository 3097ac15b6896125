#!/usr/bin/env node
// `npm run bench`: the whole of docs/benchmarks.md in one command. Runs each section's runner in turn (each
// rewrites only its own section, between its <!-- KEY:begin --> and <!-- KEY:end --> markers), then rebuilds
// the targets table from the sections' figures. A runner whose file is absent is skipped.
//
//   npm run bench                        every section, full sizes (hours on the 2-core box)
//   npm run bench -- --quick             every section at small sizes (smoke run; still rewrites the page
//                                        unless --no-docs)
//   npm run bench -- --only xmpp,muc     some sections
//   npm run bench -- --port-base 36000   ports of the run (each runner takes its own hundred above it)
//
// --quick (each runner's smoke-run flag), --no-docs and --port-base are passed on to the runners.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeTargets } from './targets.mjs';

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(BENCH, '..');

/**
 * The sections, in page order: the runner, its flag for a smoke run, and the offset of its ports from
 * --port-base (null: the runner has ports of its own and no --port-base).
 */
const SECTIONS = [
  { key: 'xmpp', runner: 'run.mjs', quick: '--quick', portOffset: 0 }, // logins and one-to-one chat, the parser
  { key: 'muc', runner: 'muc.mjs', quick: '--quick', portOffset: 400 }, // rooms, joins, room archives
  { key: 'sizing', runner: 'sizing.mjs', quick: '--short', portOffset: null }, // the original's sizing
];

const argv = process.argv.slice(2);
const argValue = (name) => { const i = argv.indexOf(name); return i === -1 ? null : argv[i + 1]; };
const only = argValue('--only')?.split(',') ?? null;
const base = argValue('--port-base') === null ? null : Number(argValue('--port-base'));
const log = (s) => process.stdout.write(`${s}\n`);

let failed = 0;
for (const { key, runner, quick, portOffset } of SECTIONS) {
  if (only && !only.includes(key)) continue;
  const file = path.join(BENCH, runner);
  if (!fs.existsSync(file)) { log(`==== ${key}: bench/${runner} absent, skipped`); continue; }
  const a = [file, ...(argv.includes('--quick') ? [quick] : []), ...(argv.includes('--no-docs') ? ['--no-docs'] : []),
    ...(base === null || portOffset === null ? [] : ['--port-base', String(base + portOffset)])];
  log(`==== ${new Date().toISOString().slice(11, 19)} ${key}: node ${path.relative(ROOT, file)} ${a.slice(1).join(' ')}`);
  const r = spawnSync(process.execPath, a, { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) { failed++; log(`!! ${key}: exited with ${r.status ?? r.signal}`); }
}
if (!argv.includes('--no-docs')) writeTargets(ROOT, log);
process.exit(failed ? 1 : 0);
