// What the process does with an error no handler caught.
//
// - A promise rejection nobody waited on: every stanza path answers its own failures (router, IQ
//   dispatch, room steps), so a rejection that reaches the process has no stanza left to answer and
//   left no synchronous state half-changed. Logged, counted, and the node keeps serving: ending a
//   node that serves thousands of sessions over one forgotten .catch is the worse outcome.
// - An exception thrown out of an event callback (socket, timer): the code that threw stopped
//   half-way, and Node documents that resuming after it is unsafe. Logged, counted, then a graceful
//   stop (bounded) and exit 1 for the supervisor to restart: sessions are told to reconnect, the
//   archive writer flushes, and what was acknowledged is already stored.
import type { EventEmitter } from 'node:events';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';

export interface GuardedServer {
  log: Logger;
  metrics: Metrics;
  stop(): Promise<void>;
}

export function guardProcess(server: GuardedServer, opts: { stopTimeoutMs?: number; exit?: (code: number) => void; target?: EventEmitter } = {}): () => void {
  const exit = opts.exit ?? ((code: number) => process.exit(code));
  const target = opts.target ?? process;
  let stopping = false;
  const onRejection = (reason: unknown) => {
    server.log.error('unhandled promise rejection; serving on', { err: reason });
    server.metrics.handlerErrors.inc({ where: 'process' });
  };
  const onException = (err: Error) => {
    server.log.error('uncaught exception; stopping', { err });
    server.metrics.handlerErrors.inc({ where: 'process' });
    if (stopping) return;
    stopping = true;
    const timer = setTimeout(() => exit(1), opts.stopTimeoutMs ?? 10_000);
    timer.unref();
    void server.stop().catch(() => {}).finally(() => { clearTimeout(timer); exit(1); });
  };
  target.on('unhandledRejection', onRejection);
  target.on('uncaughtException', onException);
  return () => {
    target.off('unhandledRejection', onRejection);
    target.off('uncaughtException', onException);
  };
}
