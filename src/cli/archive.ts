// `perch archive partition|partitions|reindex|expire`: the archive table's upkeep, straight on the database
// (beside a running server: the conversion copies in batches and holds writers only for its last step).
import { readFile } from 'node:fs/promises';
import type { Config } from '../config.js';
import { pidPath } from '../admin/socket.js';
import { openDataStores } from '../../storage/open.js';
import {
  archiveIsPartitioned, ensureArchivePartitions, expireArchive, moveDefaultPartitionRows, partitionArchive, rekeyOnline, type ReindexOutcome,
} from '../../storage/archive-partitions.js';
import { ProgressView } from './progress.js';
import { UsageError, EXIT_OK, EXIT_FAILED, type Io } from './admin.js';

const HELP = `Usage: perch archive partition [--batch N]
       perch archive partitions [--from DATE]
       perch archive reindex
       perch archive expire --before DATE [--batch N]

partition    convert a single archive table (a database over a million messages when it was
             migrated) to quarterly partitions, copying N rows a transaction (default 50000) with a
             progress bar; resumable; writers wait only for the last step
partitions   list the archive's partitions and their rows (planner estimates), creating the
             coming quarters' ones that are missing and moving the rows the default partition
             holds into their quarters' (one quarter a transaction, with a progress bar); with
             --from, also those from DATE's quarter on (before loading older history in SQL: rows
             no partition covers wait in the default one; a start or a running server moves up to
             100000 of them and warns of more)
reindex      key the archive by integer (a database over a million messages when it was
             migrated): every row given its archive's key, then each index built anew on the key
             beside the running server, partition by partition, with a progress bar; running
             servers read by key within a minute, and the old indexes go after that; resumable
expire       remove every archived message stamped before DATE (retention): whole quarters are
             dropped as partitions, the rest deleted N ids a statement (default 10000)
`;

export async function archiveMain(config: Config, args: string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === '--help' || rest.includes('--help')) {
    io.out(HELP);
    return EXIT_OK;
  }
  const flag = (name: string): string | undefined => {
    const i = rest.indexOf(`--${name}`);
    if (i === -1) return undefined;
    const v = rest[i + 1];
    if (v === undefined) throw new UsageError(`--${name} needs a value`);
    return v;
  };
  const batchText = flag('batch');
  const batch = batchText === undefined ? undefined : Number(batchText);
  if (batch !== undefined && !(Number.isInteger(batch) && batch > 0)) throw new UsageError('--batch takes a positive whole number');
  if (!['partition', 'partitions', 'reindex', 'expire'].includes(sub)) throw new UsageError(`unknown archive command: ${sub}\n\n${HELP}`);
  const before = sub === 'expire' ? new Date(flag('before') ?? 'missing') : null;
  if (before && Number.isNaN(before.getTime())) throw new UsageError('expire needs --before DATE (e.g. 2025-01-01 or 2025-01-01T00:00:00Z)');
  const fromText = sub === 'partitions' ? flag('from') : undefined;
  const from = fromText === undefined ? undefined : new Date(fromText);
  if (from && Number.isNaN(from.getTime())) throw new UsageError('--from takes a DATE (e.g. 2019-01-01 or 2019-01-01T00:00:00Z)');

  // PGlite has one owner at a time: with a server running on it, these wait until it is stopped.
  if (config.databaseUrl === null && config.dataDir !== null) {
    const pid = Number((await readFile(pidPath(config.dataDir), 'utf8').catch(() => '')).trim());
    let running = false;
    try { running = Number.isInteger(pid) && pid > 0 && pid !== process.pid && process.kill(pid, 0); } catch (e) { running = (e as NodeJS.ErrnoException).code === 'EPERM'; }
    if (running) throw new UsageError(`a server (pid ${pid}) holds ${config.dataDir}: stop it first (the embedded database has one owner)`);
  }
  // The default partition's rows are moved (or not) by the command itself, with its progress.
  const stores = await openDataStores({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, moveStrayRowsAtMost: 0 });
  const db = stores.db;
  try {
    if (sub === 'partition') {
      if (await archiveIsPartitioned(db)) {
        io.out('the archive is partitioned already\n');
        return EXIT_OK;
      }
      const view = new ProgressView({ write: (t) => io.err(t), tty: io.errIsTty === true });
      const copied = await partitionArchive(db, { ...(batch ? { batch } : {}), onProgress: (done, total) => view.update({ phase: 'copy', done, total, unit: 'messages' }) });
      view.finish();
      await ensureArchivePartitions(db);
      io.out(`the archive is partitioned by quarter (${copied} messages copied)\n`);
    } else if (sub === 'reindex') {
      const view = new ProgressView({ write: (t) => io.err(t), tty: io.errIsTty === true });
      const outcome = await rekeyOnline(db, {
        onProgress: (phase, done, total) => view.update(phase === 'keys'
          ? { phase: 'archive keys', done, total, unit: 'ids' }
          : { phase: 'indexes', done, total, unit: 'partition indexes' }),
      });
      view.finish();
      io.out(({
        keyed: 'the archive is keyed by integer: every index leads with the archive\'s key\n',
        already: 'the archive is keyed by integer already\n',
        'not-partitioned': 'the archive is one table (not partitioned): perch archive partition converts it and keys its indexes\n',
      } satisfies Record<ReindexOutcome, string>)[outcome]);
      const [gin] = await db.query<{ def: string }>(`SELECT pg_get_indexdef(to_regclass('archive_tsv')) AS def`);
      if (outcome !== 'not-partitioned' && gin && !/\(akey, tsv\)/.test(gin.def)) {
        io.out('the full-text index stays on the text alone: PostgreSQL has no btree_gin extension here, or this role may not install it (CREATE EXTENSION btree_gin as a superuser, then run this again)\n');
      }
      if (outcome === 'not-partitioned') return EXIT_FAILED;
    } else if (sub === 'partitions') {
      const view = new ProgressView({ write: (t) => io.err(t), tty: io.errIsTty === true });
      const strays = await moveDefaultPartitionRows(db, (done, total) => view.update({ phase: 'default partition', done, total, unit: 'quarters' }));
      view.finish();
      if (strays.moved > 0) io.out(`moved ${strays.moved} message(s) from the default partition into ${strays.quarters} quarter(s)\n`);
      await ensureArchivePartitions(db, from ? { from } : {});
      const rows = await db.query<{ name: string; bound: string; estimate: unknown }>(
        `SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound, c.reltuples::bigint AS estimate
           FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass('archive') ORDER BY 1`);
      if (rows.length === 0) io.out('the archive is one table (not partitioned): perch archive partition converts it\n');
      for (const r of rows) io.out(`${r.name}\t${r.bound}\t~${Math.max(0, Number(r.estimate))} messages\n`);
    } else {
      const r = await expireArchive(db, before!, batch ? { batch } : {});
      io.out(`dropped ${r.dropped.length} partition(s)${r.dropped.length ? ` (${r.dropped.join(', ')})` : ''}, deleted ${r.deleted} more message(s) stamped before ${before!.toISOString()}\n`);
    }
    return EXIT_OK;
  } finally {
    await db.close();
  }
}
