// The local admin socket: where it lives, who may use it, and what travels on it. Both the server
// (faces/socket.ts) and the CLI (src/cli/remote.ts) use these.
//
// Wire: one JSON object per line. On connect the server says hello; then each request
// {id, command, input} gets one reply {id, ok, output} or {id, ok: false, error, condition}.
// A request with `progress: true` may first get progress lines {id, progress: {phase, done, total?,
// unit?}} (at most PROGRESS_PER_SECOND a second) while its operation runs; requests without it
// never do, so clients that do not know progress lines never see one.
import cluster from 'node:cluster';
import { lstat } from 'node:fs/promises';
import { join } from 'node:path';

export const SOCKET_NAME = 'admin.sock';
/** Written beside the socket while a server holds the data directory; holds its process id. */
export const PID_NAME = 'server.pid';
export const PROTOCOL_VERSION = 1;

export interface Hello { perch: 'admin'; version: number; domain: string; node: string; pid: number }
export interface AdminRequest { id: number; command: string; input: Record<string, string[]>; progress?: boolean }
/** A long operation's position, sent before its reply to a request that asked for progress. */
export interface ProgressLine { id: number; progress: { phase: string; done: number; total?: number; unit?: string } }
export const PROGRESS_PER_SECOND = 10;

/** A line after the hello: a progress line or a reply. */
export function isProgressLine(v: unknown): v is ProgressLine {
  return typeof v === 'object' && v !== null && 'progress' in v && typeof (v as ProgressLine).progress === 'object' && !('ok' in v);
}
export type AdminReply =
  | { id: number; ok: true; output: unknown }
  | { id: number; ok: false; error: string; condition: string };

export function socketPath(dataDir: string): string {
  return join(dataDir, SOCKET_NAME);
}

/**
 * A worker of `perch start --workers N` (src/workers.ts) serves its own socket here, and the primary
 * serves socketPath(), forwarding each connection to one worker: every admin operation acts on the
 * whole cluster, so any worker answers for all.
 */
export function workerSocketPath(dataDir: string, worker: number): string {
  return join(dataDir, 'workers', `${worker}.sock`);
}

/** The environment variable that numbers a worker process (set by the primary). */
export const WORKER_ENV = 'PERCH_WORKER';

/** This process's worker number, or null when it is not a worker. */
export function workerNumber(): number | null {
  if (!cluster.isWorker) return null;
  const n = Number(process.env[WORKER_ENV]);
  return Number.isInteger(n) && n > 0 ? n : null;
}

export function pidPath(dataDir: string): string {
  return join(dataDir, PID_NAME);
}

/**
 * Why a path may not be trusted as owner-only, or null when it may: the socket is authenticated by
 * file permissions alone, so neither it nor its directory may be writable by group or others
 * (anyone who can write the directory can replace the socket).
 */
export async function notPrivate(path: string): Promise<string | null> {
  let mode: number;
  try {
    mode = (await lstat(path)).mode;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  return (mode & 0o022) !== 0
    ? `${path} is writable by group or others (mode ${(mode & 0o777).toString(8)}); the admin socket needs owner-only permissions (chmod go-w)`
    : null;
}

/** Splits a stream of text into lines. */
export function lineReader(onLine: (line: string) => void): (chunk: string) => void {
  let partial = '';
  return (chunk) => {
    partial += chunk;
    let i: number;
    while ((i = partial.indexOf('\n')) !== -1) {
      const line = partial.slice(0, i);
      partial = partial.slice(i + 1);
      if (line.trim() !== '') onLine(line);
    }
  };
}
