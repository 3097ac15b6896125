// The CLI's side of the local admin socket: one connection, requests answered in order.
import net from 'node:net';
import { PROTOCOL_VERSION, isProgressLine, lineReader, type AdminReply, type Hello, type ProgressLine } from '../admin/socket.js';

/**
 * How long the CLI waits for a reply, or for the next progress line of an operation that reports
 * progress (a long export keeps the wait open as long as it moves).
 */
const REPLY_TIMEOUT_MS = 120_000;

export type Connected = { kind: 'connected'; client: RemoteAdmin };
/** Nothing listens on the path (no file, or a file left by a server that is gone). */
export type Absent = { kind: 'absent'; stale: boolean };
/** Something holds the socket but does not speak, or may not be used. */
export type Unusable = { kind: 'unusable'; reason: string };

export class RemoteAdmin {
  private nextId = 1;
  private readonly waiting = new Map<number, (r: AdminReply) => void>();
  private readonly progress = new Map<number, (p: ProgressLine['progress']) => void>();

  constructor(private readonly socket: net.Socket, readonly hello: Hello) {}

  /** Fed the lines after the hello. */
  onLine(line: string): void {
    let msg: unknown;
    try { msg = JSON.parse(line); } catch { return; }
    if (isProgressLine(msg)) {
      this.progress.get(msg.id)?.(msg.progress);
      return;
    }
    const reply = msg as AdminReply;
    this.waiting.get(reply.id)?.(reply);
    this.waiting.delete(reply.id);
    this.progress.delete(reply.id);
  }

  onClose(): void {
    for (const [id, done] of this.waiting) done({ id, ok: false, error: 'the server closed the admin socket before answering', condition: 'closed' });
    this.waiting.clear();
  }

  /** Runs a command; with onProgress, asks for the operation's progress lines and hands them over. */
  call(command: string, input: Record<string, string[]>, onProgress?: (p: ProgressLine['progress']) => void): Promise<AdminReply> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      const expire = () => {
        this.waiting.delete(id);
        this.progress.delete(id);
        resolve({ id, ok: false, error: 'no reply from the server in time; the operation may or may not have been applied', condition: 'timeout' });
      };
      let timer = setTimeout(expire, REPLY_TIMEOUT_MS);
      this.waiting.set(id, (r) => { clearTimeout(timer); resolve(r); });
      if (onProgress) {
        this.progress.set(id, (p) => {
          clearTimeout(timer);
          timer = setTimeout(expire, REPLY_TIMEOUT_MS);
          onProgress(p);
        });
      }
      this.socket.write(JSON.stringify({ id, command, input, ...(onProgress ? { progress: true } : {}) }) + '\n');
    });
  }

  close(): void { this.socket.end(); }
}

/** Connects and waits for the server's hello. */
export function connectAdminSocket(path: string, helloTimeoutMs: number): Promise<Connected | Absent | Unusable> {
  return new Promise((resolve) => {
    const socket = net.connect(path);
    socket.setEncoding('utf8');
    let client: RemoteAdmin | null = null;
    let settled = false;
    const settle = (r: Connected | Absent | Unusable) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (r.kind !== 'connected') socket.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => settle({
      kind: 'unusable', reason: `a server holds the data directory but its admin socket ${path} does not answer`,
    }), helloTimeoutMs);
    socket.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') settle({ kind: 'absent', stale: false });
      else if (e.code === 'ECONNREFUSED') settle({ kind: 'absent', stale: true });
      else settle({ kind: 'unusable', reason: `cannot use the admin socket ${path}: ${e.message}` });
      client?.onClose();
    });
    socket.on('close', () => client?.onClose());
    socket.on('data', lineReader((line) => {
      if (client) { client.onLine(line); return; }
      let hello: Hello;
      try { hello = JSON.parse(line) as Hello; } catch { hello = {} as Hello; }
      if (hello.perch !== 'admin' || hello.version !== PROTOCOL_VERSION) {
        settle({ kind: 'unusable', reason: `${path} does not speak the perch admin protocol version ${PROTOCOL_VERSION}` });
        return;
      }
      client = new RemoteAdmin(socket, hello);
      settle({ kind: 'connected', client });
    }));
  });
}
