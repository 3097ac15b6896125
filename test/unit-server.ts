// Helpers for unit tests that need a real server core (embedded storage, no listeners) or expect a
// StanzaError from a handler.
import { expect } from 'chai';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { StanzaError } from '../protocol/errors.js';
import { defaultConfig } from '../src/config.js';
import { ServerCore } from '../src/server.js';

/** A started ServerCore on PGlite in a temporary directory; stop() also removes the directory. */
export async function startUnitServer(tmpPrefix: string): Promise<{ server: ServerCore; stop(): Promise<void> }> {
  const dataDir = await mkdtemp(path.join(tmpdir(), tmpPrefix));
  const config = defaultConfig();
  config.dataDir = dataDir;
  config.nodeId = 'unit';
  config.logLevel = 'error';
  config.listen = { c2s: null, c2sDirectTls: null, component: null, metrics: null, upload: null, websocket: null, websocketPlain: null };
  const server = new ServerCore(config);
  await server.start();
  return {
    server,
    async stop() {
      await server.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** The StanzaError a promise rejects with; fails the test if it resolves or rejects with anything else. */
export async function stanzaErrorOf(p: Promise<unknown>): Promise<StanzaError> {
  try {
    await p;
  } catch (e) {
    expect(e).to.be.instanceOf(StanzaError);
    return e as StanzaError;
  }
  throw new Error('expected a StanzaError');
}
