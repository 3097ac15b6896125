// The archive's quarters made ahead while the server runs, not only at start (migrate makes them then):
// a server up for longer than the quarters made ahead would otherwise write into the default
// partition until its next restart. A no-op on an archive that is not partitioned. Rows the default
// partition holds beyond what a start or a running server moves (MOVE_AT_START_LIMIT,
// MOVE_WHILE_SERVING_LIMIT) are a warning at start and at each check, naming the command that moves them;
// so are indexes still led by the archive's JID (an archive over a million messages at migration 16).
import type { Module, Server } from '../context.js';
import { defaultPartitionRows, ensureArchivePartitions, MOVE_AT_START_LIMIT, MOVE_WHILE_SERVING_LIMIT } from '../../storage/archive-partitions.js';
import { readKeyMode } from '../../storage/archive-keys.js';

/** How often the quarters ahead are checked (twice a day: cheap, and far inside a quarter). */
export const QUARTER_CHECK_MS = 12 * 3600 * 1000;

const timers = new WeakMap<Server, NodeJS.Timeout>();
const firstChecks = new WeakMap<Server, Promise<void>>();

/**
 * Makes the quarters that should exist by now and those ahead, moves the rows the default partition
 * caught when they are few, and warns when they are not.
 */
export async function keepQuartersAhead(server: Server): Promise<void> {
  try {
    const db = server.stores.db;
    const made = await ensureArchivePartitions(db, { moveAtMost: MOVE_WHILE_SERVING_LIMIT });
    if (made.length > 0) server.log.info('archive: partitions made ahead', { partitions: made });
    const waiting = await defaultPartitionRows(db, MOVE_AT_START_LIMIT);
    if (waiting > 0) {
      server.log.warn('archive: messages wait in the default partition, outside their quarters (queries read them there, more slowly); `perch archive partitions` moves them', {
        messages: waiting > MOVE_AT_START_LIMIT ? `over ${MOVE_AT_START_LIMIT}` : waiting,
      });
    }
    if ((await readKeyMode(db)) === 'filling') {
      server.log.warn('archive: its indexes are still led by each archive\'s JID, not its key (every query answers, each row costs more to write); `perch archive reindex` keys them beside the running server');
    }
  } catch (err) {
    server.log.error('archive: making the coming partitions failed (the default partition takes their rows meanwhile)', { err });
  }
}

export const archiveQuartersModule: Module = {
  name: 'archive-quarters',
  init(server) {
    // At start too: migrate made the quarters, this says what it left in the default partition.
    firstChecks.set(server, keepQuartersAhead(server));
    const timer = setInterval(() => void keepQuartersAhead(server), QUARTER_CHECK_MS);
    timer.unref();
    timers.set(server, timer);
  },
  async stop(server) {
    clearInterval(timers.get(server));
    timers.delete(server);
    await firstChecks.get(server);
  },
};
