// Where the CLI's admin operations go: through the running server's admin socket when a server
// holds the data directory, straight to the database when none does, and nowhere (with the reason)
// when a server holds it but cannot be reached: then nothing is changed.
import { existsSync } from 'node:fs';
import { readFile, unlink } from 'node:fs/promises';
import type { Config } from '../config.js';
import { openDataStores } from '../../storage/open.js';
import type { DataStores } from '../../storage/types.js';
import { AdminError, LOCAL_ADMIN, runCommand, type AdminInput, type AnyAdminCommand, type Progress } from '../admin/command.js';
import { notPrivate, pidPath, socketPath } from '../admin/socket.js';
import { connectAdminSocket, type RemoteAdmin } from './remote.js';

/** How long a server that accepts the connection has to say hello. */
const HELLO_TIMEOUT_MS = Number(process.env.PERCH_ADMIN_TIMEOUT_MS) || 10_000;

export type RunResult = { ok: true; output: unknown } | { ok: false; error: string; condition: string };

export interface AdminTarget {
  /** 'socket' (through the running server) or 'database' (no server runs). */
  readonly via: 'socket' | 'database';
  readonly domain: string;
  /** Through a socket: the node that serves it and its process id. */
  readonly server?: { node: string; pid: number };
  /** onProgress hears how far a long operation is, whether it runs here or in the server. */
  run(cmd: AnyAdminCommand, input: AdminInput, onProgress?: (p: Progress) => void): Promise<RunResult>;
  close(): Promise<void>;
}

/** The target cannot be used; nothing was changed. */
export class Unreachable extends Error {}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The process id in the data directory's pid file, when that process still runs. */
async function holder(dataDir: string): Promise<number | null> {
  const pid = Number((await readFile(pidPath(dataDir), 'utf8').catch(() => '')).trim());
  return Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid) ? pid : null;
}

export async function openAdminTarget(config: Config, onProgress?: (line: string) => void): Promise<AdminTarget> {
  const dir = config.dataDir;
  const path = socketPath(dir);
  // A socket others could have put there is not trusted (and its absence needs no check).
  if (existsSync(path)) {
    for (const p of [dir, path]) {
      const refusal = await notPrivate(p);
      if (refusal) throw new Unreachable(`${refusal}; nothing was changed`);
    }
  }
  const r = await connectAdminSocket(path, HELLO_TIMEOUT_MS);
  if (r.kind === 'connected') return socketTarget(r.client);
  if (r.kind === 'unusable') throw new Unreachable(`${r.reason}; nothing was changed`);
  // A socket file nobody listens on is what a server that died leaves behind.
  if (r.stale) await unlink(path).catch(() => {});
  const pid = await holder(dir);
  if (pid !== null) {
    throw new Unreachable(`a server (pid ${pid}) holds ${dir} but serves no admin socket (see its log); nothing was changed`);
  }
  return databaseTarget(config, await openDataStores({
    databaseUrl: config.databaseUrl, dataDir: dir,
    onMigrationProgress: (done, total, name) => onProgress?.(`migration ${done}/${total}: ${name}`),
  }));
}

function socketTarget(client: RemoteAdmin): AdminTarget {
  return {
    via: 'socket',
    domain: client.hello.domain,
    server: { node: client.hello.node, pid: client.hello.pid },
    async run(cmd, input, onProgress) {
      const reply = await client.call(cmd.id, input, onProgress);
      return reply.ok ? { ok: true, output: reply.output } : { ok: false, error: reply.error, condition: reply.condition };
    },
    async close() { client.close(); },
  };
}

function databaseTarget(config: Config, stores: DataStores): AdminTarget {
  const ctx = { actor: LOCAL_ADMIN, domain: config.domain, scramIterations: config.scramIterations, stores, server: null, config };
  return {
    via: 'database',
    domain: config.domain,
    async run(cmd, input, onProgress) {
      try {
        return { ok: true, output: await runCommand(cmd, onProgress ? { ...ctx, progress: onProgress } : ctx, input) };
      } catch (e) {
        if (e instanceof AdminError) return { ok: false, error: e.message, condition: e.condition };
        throw e;
      }
    },
    close: () => stores.db.close(),
  };
}
