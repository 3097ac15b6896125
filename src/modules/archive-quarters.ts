// The archive's quarters made ahead while the server runs, not only at start (migrate makes them then):
// a server up for longer than the quarters made ahead would otherwise write into the default
// partition until its next restart. A no-op on an archive that is not partitioned.
import type { Module, Server } from '../context.js';
import { ensureArchivePartitions } from '../../storage/archive-partitions.js';

/** How often the quarters ahead are checked (twice a day: cheap, and far inside a quarter). */
export const QUARTER_CHECK_MS = 12 * 3600 * 1000;

const timers = new WeakMap<Server, NodeJS.Timeout>();

/** Makes the quarters that should exist by now and those ahead (and moves rows the default caught). */
export async function keepQuartersAhead(server: Server): Promise<void> {
  try {
    const made = await ensureArchivePartitions(server.stores.db);
    if (made.length > 0) server.log.info('archive: partitions made ahead', { partitions: made });
  } catch (err) {
    server.log.error('archive: making the coming partitions failed (the default partition takes their rows meanwhile)', { err });
  }
}

export const archiveQuartersModule: Module = {
  name: 'archive-quarters',
  init(server) {
    const timer = setInterval(() => void keepQuartersAhead(server), QUARTER_CHECK_MS);
    timer.unref();
    timers.set(server, timer);
  },
  stop(server) {
    clearInterval(timers.get(server));
    timers.delete(server);
  },
};
