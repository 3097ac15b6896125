// One target's fuzzing run, inside a worker thread started by runTarget (engine.ts).
import { workerData, parentPort } from 'node:worker_threads';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { fuzzLoop, type WorkerData } from './engine.js';
import { PROTOCOL_MODULES, type Protocol } from './target.js';
import { TARGETS } from './targets/index.js';

const data = workerData as WorkerData;
const target = TARGETS.find((t) => t.name === data.opts.target);
if (!target) throw new Error(`no fuzz target ${data.opts.target}`);

const protocol = {} as Record<string, unknown>;
for (const [key, file] of Object.entries(PROTOCOL_MODULES)) {
  protocol[key] = await import(pathToFileURL(join(data.opts.instrumentedRoot, 'protocol', `${file}.js`)).href);
}
const run = await target.setup(protocol as Protocol);
await fuzzLoop(target, run, data, (m) => parentPort!.postMessage(m));
