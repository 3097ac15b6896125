// Network-level fuzz, by hand: starts a Perch server on embedded defaults and runs the fuzzer of
// conformance/net-fuzz-kit.ts against it for minutes (the CI form runs 40 s), then prints the figures
// (inputs, stanza errors and stream errors by condition, findings, the well-behaved client's worst
// round trip, memory) and the server's error log lines.
//
//   npm run build && node bench/net-fuzz.mjs [--minutes 5] [--seed 1] [--workers 6]
//
// A finding prints the input (and what the connection was sent before it); replay it with the same seed.
import { startServer, randomName } from '../dist/conformance/harness.js';
import { runNetFuzz, NET_FUZZ_CONFIG } from '../dist/conformance/net-fuzz-kit.js';


const args = process.argv.slice(2);
const opt = (name, dflt) => { const i = args.indexOf(`--${name}`); return i === -1 ? dflt : Number(args[i + 1]); };
const minutes = opt('minutes', 5);
const seed = opt('seed', 1);
const workers = opt('workers', 6);

const users = Array.from({ length: 6 }, (_, i) => randomName(`nf${i}`));
const watcher = randomName('nfw');
const server = await startServer({
  users: Object.fromEntries([...users, watcher].map((u) => [u, 'pw'])), configYaml: NET_FUZZ_CONFIG, registration: true, startTimeoutMs: 90_000,
});
let crashes = 0;
void server.exited.then((code) => { if (code !== 0) crashes++; });
try {
  const report = await runNetFuzz({
    port: server.ports.c2s, metricsPort: server.ports.metrics, users, watcher, room: `${randomName('fuzz')}@conference.localhost`,
    durationMs: minutes * 60_000, seed, workers,
    alive: () => server.process.exitCode === null && server.process.signalCode === null,
    log: (l) => console.error(l),
  });
  const errors = server.logs.filter((l) => /"level":"error"/.test(l));
  console.log(JSON.stringify({ ...report, crashes, serverErrorLines: errors.length }, null, 2));
  for (const l of errors.slice(0, 20)) console.log(l);
} finally {
  await server.stop();
}
