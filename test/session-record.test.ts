// The session's record in the cluster-wide session table: changes made in one turn are one write, and
// none is made once the client has closed its stream (the record is removed when the connection goes).
import { expect } from 'chai';
import { parseJid } from '../protocol/jid.js';
import { ClientSession, type StreamHost } from '../src/c2s.js';
import type { Transport } from '../src/transport/transport.js';
import type { SessionRecord } from '../storage/types.js';

function session() {
  const puts: SessionRecord[] = [];
  const core = {
    config: { streamManagement: { resumeSeconds: 60 } },
    sessions: { nodeId: 'n1', async put(rec: SessionRecord) { puts.push({ ...rec }); return null; } },
    resumable: new Map(),
    async unbindSession() {},
  } as unknown as StreamHost;
  const conn = { write() {}, remoteAddress: '127.0.0.1', secure: false } as unknown as Transport;
  return { s: new ClientSession(core, conn, parseJid('ann@localhost/r'), 'ann'), puts };
}

describe('session record writes', function () {
  it('writes the changes of one turn once, with all of them, and resolves once written', async function () {
    const { s, puts } = session();
    const a = s.updateRecord({ interested: true });
    const b = s.updateRecord({ available: true, priority: 5 });
    expect(puts).to.have.length(0);
    await Promise.all([a, b]);
    expect(puts).to.have.length(1);
    expect(puts[0]).to.include({ interested: true, available: true, priority: 5 });
    await s.updateRecord({ priority: 1 });
    expect(puts.map((p) => p.priority)).to.deep.equal([5, 1]);
  });

  it('makes no write after the client closed its stream, and keeps the change in the session', async function () {
    const { s, puts } = session();
    const pending = s.updateRecord({ available: false, presence: null });
    s.clientClosedStream();
    await pending;
    await s.updateRecord({ carbons: true });
    expect(puts).to.have.length(0);
    expect(s.record).to.include({ available: false, carbons: true });
  });
});
