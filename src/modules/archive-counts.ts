// The archive's size deltas folded into the kept sizes while the server runs (migration 15): each
// write appends a delta row per archive it touches, and sizes sums the kept row with its deltas, so
// folding changes no answer, only how many rows a read sums. Once a second after this node's archive
// writer has written, and once a minute whatever it did (deltas from deletes, imports, other nodes).
// Several nodes may fold at once: a fold that finds another running skips.
import type { Module, Server } from '../context.js';
import { archiveWriter } from '../archive-writer.js';

export const COUNT_FOLD_MS = 1000;
/** Folds at least this often even when this node wrote nothing. */
export const COUNT_FOLD_IDLE_MS = 60_000;

interface FoldState {
  timer: NodeJS.Timeout;
  /** The writer's batches at the last fold. */
  batches: number;
  last: number;
  running: Promise<void> | null;
  failing: boolean;
}

const states = new WeakMap<Server, FoldState>();

/** Folds now if this node's writer wrote since the last fold, or the last was COUNT_FOLD_IDLE_MS ago. */
export async function foldArchiveCounts(server: Server): Promise<void> {
  const state = states.get(server);
  if (!state || state.running) return;
  const batches = archiveWriter(server).batches;
  if (batches === state.batches && Date.now() - state.last < COUNT_FOLD_IDLE_MS) return;
  state.running = (async () => {
    try {
      await server.stores.archive.foldCounts();
      state.batches = batches;
      state.last = Date.now();
      if (state.failing) server.log.info('archive: size deltas folded again');
      state.failing = false;
    } catch (err) {
      // Reads stay exact meanwhile (they sum the deltas): once per outage, not once a second.
      if (!state.failing) server.log.warn('archive: folding size deltas failed; retrying every second', { err });
      state.failing = true;
    } finally {
      state.running = null;
    }
  })();
  await state.running;
}

export const archiveCountsModule: Module = {
  name: 'archive-counts',
  init(server) {
    const timer = setInterval(() => void foldArchiveCounts(server), COUNT_FOLD_MS);
    timer.unref();
    states.set(server, { timer, batches: 0, last: Date.now(), running: null, failing: false });
  },
  async stop(server) {
    const state = states.get(server);
    if (!state) return;
    clearInterval(state.timer);
    await state.running;
    states.delete(server);
  },
};
