// The performance targets (issue 13) as one table near the top of docs/benchmarks.md. Each runner writes the
// rows it measures into its own section as a data comment (<!-- targets:data KEY [...] -->, see targetsData),
// and rebuilds the table from every data comment on the page, so the table always agrees with the figures
// below it, whichever runner ran last.
import fs from 'node:fs';
import path from 'node:path';
import { writeDocsSection } from './lib.mjs';

/** Every target, in the order; the runner named measures it. */
export const TARGETS = [
  { id: 'login-cold', by: 'bench/run.mjs', target: 'Login storm, client SCRAM cache cold: ≥ 1.0× ejabberd on the same storage (logins/s, and CPU per login with PostgreSQL and Redis counted)' },
  { id: 'login-cached', by: 'bench/run.mjs', target: 'Login storm, client SCRAM cache warm: ≥ 1.0× ejabberd (same two figures)' },
  { id: 'login-starttls', by: 'bench/run.mjs', target: 'Login storm over STARTTLS: ≥ 1.0× ejabberd (same two figures)' },
  { id: 'chat-archived', by: 'bench/run.mjs', target: "Archived one-to-one chat ≥ 1.0× ejabberd's unarchived rate (saturation), p99 no worse (paced)" },
  { id: 'fanout-5000', by: 'bench/muc.mjs', target: "Room fan-out at 5,000 deliveries/s: p99 within 2 ms of PostgreSQL's own commit p99 (same run)" },
  { id: 'join-20', by: 'bench/muc.mjs', target: 'Join with 20 messages of history: join→subject p99 ≤ 15 ms' },
  { id: 'mam-last-1m', by: 'bench/muc.mjs', target: 'MAM last page at 1,000,000 messages: p99 ≤ 10 ms' },
  { id: 'fulltext-10m', by: 'bench/muc.mjs --mam-rows 10000000', target: 'MAM full-text search at 10,000,000 messages: p99 ≤ 50 ms' },
];

/**
 * The data comment a runner puts in its section: rows {id, value, met} with met true, false or null (not
 * decided: e.g. measured at a smaller size or without the peer).
 */
export function targetsData(key, rows) {
  return `<!-- targets:data ${key} ${JSON.stringify(rows).replaceAll('--', '- -')} -->`;
}

function readRows(doc) {
  const rows = new Map();
  for (const m of doc.matchAll(/<!-- targets:data ([a-z0-9-]+) (\[.*?\]) -->/g)) {
    try { for (const r of JSON.parse(m[2])) rows.set(r.id, { ...r, source: m[1] }); } catch { /* a hand-edited comment */ }
  }
  return rows;
}

/** The section between <!-- targets:begin --> and <!-- targets:end -->. */
export function targetsSection(doc) {
  const rows = readRows(doc);
  const L = ['<!-- targets:begin -->', '## Targets', '',
    'Perch against the performance goals, from the figures on this page (each row from the section that measures it; rebuilt after every run of a section). "–" in the last column: not decided by this run (a smaller size, a missing peer, or not measured).', '',
    '| target | measured | met | by |', '|---|---|---|---|'];
  for (const t of TARGETS) {
    const r = rows.get(t.id);
    const met = !r || r.met === null || r.met === undefined ? '–' : r.met ? 'yes' : '**no**';
    L.push(`| ${t.target} | ${r?.value ?? 'not measured'} | ${met} | \`${t.by}\` |`);
  }
  L.push('', '<!-- targets:end -->');
  return L.join('\n');
}

/** Rebuilds the targets table of docs/benchmarks.md from the data comments of its sections. */
export function writeTargets(root, log = console.log) {
  const file = path.join(root, 'docs', 'benchmarks.md');
  if (!fs.existsSync(file)) return;
  writeDocsSection(root, targetsSection(fs.readFileSync(file, 'utf8')), 'targets', null, log);
}
