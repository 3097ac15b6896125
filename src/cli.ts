#!/usr/bin/env -S node --v8-pool-size=1
// The perch executable (package.json bin). The commands live in src/cli/.
import v8 from 'node:v8';
import { main } from './cli/main.js';

// The embedded database is WebAssembly: compile it fully once at start instead of tiering it up in
// background threads while the first clients are served (measured: login storm right after start).
v8.setFlagsFromString('--no-wasm-dynamic-tiering');

main(process.argv.slice(2)).then(
  (code) => { if (code >= 0) process.exit(code); },
  (e: unknown) => {
    process.stderr.write(`perch: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
