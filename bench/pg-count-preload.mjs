// Preloaded into a Perch server by bench/login-cost.mjs (node --import): counts the SQL statements the
// process sends through `pg` (by statement text, first line, numbers blanked) and writes the counts to
// $PERCH_PG_COUNT_FILE on SIGUSR2, so a benchmark can take the difference over a phase without
// pg_stat_statements or a statement log. Not loaded in normal operation.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const root = process.env.PERCH_PG_COUNT_ROOT ?? process.cwd();
const pg = createRequire(path.join(root, 'package.json'))('pg');
const counts = new Map();
let seq = 0;
const original = pg.Client.prototype.query;
pg.Client.prototype.query = function countedQuery(config, ...rest) {
  const text = typeof config === 'string' ? config : config?.text;
  if (typeof text === 'string') {
    const key = text.trim().split('\n')[0].replace(/\s+/g, ' ').slice(0, 90);
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return original.call(this, config, ...rest);
};
process.on('SIGUSR2', () => {
  const file = process.env.PERCH_PG_COUNT_FILE;
  if (!file) return;
  fs.writeFileSync(`${file}.tmp`, JSON.stringify({ seq: ++seq, counts: Object.fromEntries(counts) }));
  fs.renameSync(`${file}.tmp`, file);
});
