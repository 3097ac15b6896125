// Progress of long admin operations: the CLI's bar and lines, the socket's throttled progress lines,
// and both ends of the socket with a real in-process server (old clients see no progress line).
import { expect } from 'chai';
import net from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { renderProgress, duration, ProgressView } from '../src/cli/progress.js';
import { progressForwarder } from '../src/admin/faces/socket.js';
import { socketPath, type ProgressLine } from '../src/admin/socket.js';
import { connectAdminSocket } from '../src/cli/remote.js';
import { credentialsFor } from '../src/accounts.js';
import type { ServerCore } from '../src/server.js';
import { startUnitServer } from './unit-server.js';

describe('progress of long operations', () => {
  describe('rendering', () => {
    it('draws a bar with percentage, done/total, rate and time left', () => {
      const line = renderProgress({ phase: 'importing', done: 250, total: 1000, unit: 'records' }, 50, { bar: true, width: 10 });
      expect(line).to.equal('importing [###-------]  25% 250/1000 records  50/s  ETA 15s');
    });

    it('counts without a total, sizes bytes, and leaves the bar out for plain lines', () => {
      expect(renderProgress({ phase: 'exporting', done: 4200, unit: 'records' }, 1234.4)).to.equal('exporting 4200 records  1234/s');
      expect(renderProgress({ phase: 'checking', done: 3 << 20, total: 6 << 20, unit: 'bytes' }, null, { bar: false }))
        .to.equal('checking  50% 3.0 MiB/6.0 MiB');
      expect(renderProgress({ phase: 'x', done: 10, total: 10 }, 5, { bar: true, width: 4 })).to.equal('x [####] 100% 10/10  5/s');
      expect(duration(59)).to.equal('59s');
      expect(duration(61)).to.equal('1m01s');
      expect(duration(7260)).to.equal('2h01m');
    });

    it('redraws a terminal bar in place at most ten times a second, a new phase on its own line', () => {
      let t = 0;
      const out: string[] = [];
      const view = new ProgressView({ write: (s) => out.push(s), tty: true }, () => t);
      view.update({ phase: 'a', done: 0, total: 100 });
      t = 50; view.update({ phase: 'a', done: 10, total: 100 });
      t = 150; view.update({ phase: 'a', done: 20, total: 100 });
      t = 160; view.update({ phase: 'a', done: 100, total: 100 });
      t = 170; view.update({ phase: 'b', done: 1 });
      view.finish();
      const text = out.join('');
      expect(text.match(/\r/g)).to.have.length(5);
      expect(text).to.not.include('10/100');
      expect(text).to.include('\ra [');
      expect(text).to.match(/100\/100[^\n]*\n\rb 1/);
      expect(text.endsWith('\n')).to.equal(true);
    });

    it('writes plain lines at most once a second, whatever the phases', () => {
      let t = 0;
      const out: string[] = [];
      const view = new ProgressView({ write: (s) => out.push(s), tty: false }, () => t);
      for (let i = 0; i <= 30; i++) {
        t = i * 100;
        view.update({ phase: i < 15 ? 'checking' : 'importing', done: i, total: 30 });
      }
      view.finish();
      expect(out).to.have.length(4);
      expect(out.every((l) => l.endsWith('\n') && !l.includes('\r') && !l.includes('['))).to.equal(true);
      expect(out[0]).to.match(/^checking\s+0% 0\/30/);
    });
    it('ends plain lines with the final position, however soon it came after the last line', () => {
      let t = 0;
      const out: string[] = [];
      const view = new ProgressView({ write: (s) => out.push(s), tty: false }, () => t);
      view.update({ phase: 'clear', done: 0, total: 6, unit: 'messages' });
      t = 200;
      view.update({ phase: 'clear', done: 6, total: 6, unit: 'messages' });
      view.finish();
      expect(out).to.have.length(2);
      expect(out[1]).to.match(/^clear 100% 6\/6 messages/);
      view.finish();
      expect(out).to.have.length(2);
    });
  });

  describe('the admin socket', function () {
    this.timeout(60000);

    it('forwards at most ten progress lines a second, the latest position, the final one at stop and none after', async () => {
      const sent: ProgressLine[] = [];
      const f = progressForwarder(7, (l) => sent.push(l));
      f.report({ phase: 'p', done: 1, total: 10, unit: 'records' });
      for (let i = 2; i <= 5; i++) f.report({ phase: 'p', done: i, total: 10, unit: 'records' });
      expect(sent).to.deep.equal([{ id: 7, progress: { phase: 'p', done: 1, total: 10, unit: 'records' } }]);
      await new Promise((r) => setTimeout(r, 150));
      expect(sent.map((l) => l.progress.done)).to.deep.equal([1, 5]);
      f.report({ phase: 'p', done: 6 });
      f.report({ phase: 'p', done: 7 });
      f.stop();
      expect(sent.map((l) => l.progress.done)).to.deep.equal([1, 5, 7]);
      f.report({ phase: 'p', done: 8 });
      await new Promise((r) => setTimeout(r, 150));
      expect(sent.map((l) => l.progress.done)).to.deep.equal([1, 5, 7]);
    });

    describe('with a server', () => {
      let server: ServerCore;
      let stop: () => Promise<void>;
      let dir: string;
      before(async () => {
        ({ server, stop } = await startUnitServer('perch-progress-unit-'));
        dir = await mkdtemp(path.join(tmpdir(), 'perch-progress-files-'));
        for (let i = 0; i < 30; i++) await server.stores.users.create(`user${i}`, await credentialsFor(`pw${i}`, 4096));
      });
      after(async () => {
        await stop?.();
        if (dir) await rm(dir, { recursive: true, force: true });
      });

      it('sends an operation\'s progress before its reply to a client that asks for it', async () => {
        const r = await connectAdminSocket(socketPath(server.config.dataDir), 5000);
        if (r.kind !== 'connected') throw new Error(JSON.stringify(r));
        const seen: ProgressLine['progress'][] = [];
        const reply = await r.client.call('data-export', { file: [path.join(dir, 'a.jsonl.gz')] }, (p) => seen.push(p));
        r.client.close();
        expect(reply.ok, JSON.stringify(reply)).to.equal(true);
        expect(seen.length).to.be.greaterThan(0);
        expect(seen[0]).to.include({ phase: 'users', unit: 'records' });
        expect(seen[0]!.done).to.be.greaterThan(0);
      });

      it('sends no progress line to a client that does not ask (the protocol before progress)', async () => {
        const socket = net.connect(socketPath(server.config.dataDir));
        socket.setEncoding('utf8');
        let text = '';
        socket.on('data', (c: string) => { text += c; });
        await new Promise((res) => socket.once('connect', res));
        socket.write(JSON.stringify({ id: 1, command: 'data-export', input: { file: [path.join(dir, 'b.jsonl.gz')] } }) + '\n');
        const deadline = Date.now() + 20000;
        while (text.trim().split('\n').length < 2 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
        await new Promise((res) => setTimeout(res, 200));
        socket.end();
        const [hello, ...rest] = text.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
        expect(hello).to.include({ perch: 'admin' });
        expect(rest).to.have.length(1);
        expect(rest[0]).to.include({ id: 1, ok: true });
      });
    });
  });
});
