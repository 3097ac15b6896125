// `perch node list|drain`: the descriptors of src/admin/nodes.ts through the usual noun face, plus
// `drain --wait`, which returns only once the node has stopped (scripts that restart nodes in turn).
import type { Config } from '../config.js';
import { nodeDrainCommand, nodeListCommand } from '../admin/nodes.js';
import type { DrainStarted, NodeStatus } from '../cluster-nodes.js';
import { chatCommandHelp, chatMain, parseChatArgs } from './chat.js';
import { openAdminTarget, Unreachable, type AdminTarget } from './target.js';
import { EXIT_FAILED, EXIT_OK, EXIT_USAGE, type Io } from './admin.js';

/** How long --wait waits for the drained node to stop. */
const WAIT_MS = Number(process.env.PERCH_DRAIN_WAIT_MS) || 300_000;

const WAIT_HELP = `  ${'--wait'.padEnd(26)} return once the node has stopped (exit 1 if it has not within 5 minutes)\n`;

export async function nodeMain(config: Config, args: string[], io: Io): Promise<number> {
  const wait = args.includes('--wait');
  const rest = args.filter((a) => a !== '--wait');
  if (rest[0] === 'drain' && (rest.includes('--help') || rest.includes('-h'))) {
    io.out(chatCommandHelp(nodeDrainCommand).replace(/(  --json[^\n]*\n)/, `$1${WAIT_HELP}`));
    return EXIT_OK;
  }
  if (!wait) return chatMain(config, 'node', rest, io);
  if (rest[0] !== 'drain') {
    io.err('perch: --wait goes with perch node drain\n');
    return EXIT_USAGE;
  }
  const { input, json } = parseChatArgs(nodeDrainCommand, rest.slice(1));
  let target: AdminTarget;
  try {
    target = await openAdminTarget(config, (line) => io.err(line + '\n'));
  } catch (e) {
    if (!(e instanceof Unreachable)) throw e;
    io.err(`perch: ${e.message}\n`);
    return EXIT_FAILED;
  }
  const t0 = Date.now();
  try {
    const r = await target.run(nodeDrainCommand, input);
    if (!r.ok) {
      if (json) io.out(JSON.stringify({ ok: false, error: r.error, condition: r.condition }) + '\n');
      io.err(`perch: node-drain: ${r.error}\n`);
      return r.condition === 'bad-request' ? EXIT_USAGE : EXIT_FAILED;
    }
    const started = r.output as DrainStarted;
    if (!json) for (const n of nodeDrainCommand.render(started).notes) io.out(n.text + '\n');
    const stopped = target.server?.node === started.node
      ? await processGone(target.server.pid)
      : await leftTheList(target, started.node);
    const seconds = ((Date.now() - t0) / 1000).toFixed(1);
    if (json) io.out(JSON.stringify({ ok: stopped, output: { ...started, stopped, seconds: Number(seconds) } }) + '\n');
    if (!stopped) {
      io.err(`perch: node ${started.node} still runs ${seconds} s after its drain began\n`);
      return EXIT_FAILED;
    }
    if (!json) io.out(`node ${started.node} drained and stopped after ${seconds} s\n`);
    return EXIT_OK;
  } finally {
    await target.close();
  }
}

/** The node beside this CLI: its process ends. */
async function processGone(pid: number): Promise<boolean> {
  const deadline = Date.now() + WAIT_MS;
  while (Date.now() < deadline) {
    try {
      process.kill(pid, 0);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ESRCH') return true;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return false;
}

/** Another node: it is no longer among the nodes up. */
async function leftTheList(target: AdminTarget, node: string): Promise<boolean> {
  const deadline = Date.now() + WAIT_MS;
  while (Date.now() < deadline) {
    const r = await target.run(nodeListCommand, {});
    if (r.ok && !(r.output as NodeStatus[]).some((n) => n.id === node)) return true;
    await new Promise((r) => setTimeout(r, 500));
  }
  return false;
}
