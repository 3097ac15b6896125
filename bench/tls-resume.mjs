#!/usr/bin/env node
// Server CPU per STARTTLS handshake on a running server, full handshakes against resumed ones (the
// client offers the TLS session of an earlier connection: a ticket in TLS 1.3), and whether the server
// resumes at all. Only the stream header, STARTTLS and the handshake; no authentication.
//
//   node bench/tls-resume.mjs --port 31222 --domain bench.local --server-pid PID [--n 400] [--concurrency 20]
import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { parseArgs } from 'node:util';

const { values: A } = parseArgs({ options: {
  port: { type: 'string', default: '5222' }, domain: { type: 'string', default: 'localhost' }, 'server-pid': { type: 'string' },
  n: { type: 'string', default: '400' }, concurrency: { type: 'string', default: '20' },
} });
const N = Number(A.n);
const cpuSec = (pid) => {
  const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
};
const header = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='${A.domain}' version='1.0'>`;

/** TCP, stream header, STARTTLS, handshake (offering `session` when given); resolves with the TLS socket's session and whether it was reused. */
function handshake(session) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(A.port), '127.0.0.1');
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('error', reject);
    sock.on('connect', () => sock.write(header));
    const onData = (d) => {
      buf += d;
      if (buf.includes('</stream:features>') && !buf.includes('<starttls-sent/>')) { buf += '<starttls-sent/>'; sock.write("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"); }
      if (buf.includes('<proceed')) {
        sock.removeListener('data', onData);
        const t = tls.connect({ socket: sock, servername: A.domain, rejectUnauthorized: false, ...(session ? { session } : {}) });
        let ticket = null;
        t.on('session', (s) => { ticket = s; });
        t.on('error', reject);
        t.once('secureConnect', () => {
          const reused = t.isSessionReused();
          // TLS 1.3 tickets arrive just after the handshake
          setTimeout(() => { t.destroy(); resolve({ session: ticket, reused }); }, 5);
        });
      }
    };
    sock.on('data', onData);
  });
}

async function phase(name, resume) {
  const pid = Number(A['server-pid']);
  const first = resume ? (await handshake(null)).session : null;
  let next = 0, reused = 0;
  const c0 = cpuSec(pid), t0 = performance.now();
  await Promise.all(Array.from({ length: Number(A.concurrency) }, async () => {
    while (next < N) { next++; const r = await handshake(first); if (r.reused) reused++; }
  }));
  const ms = performance.now() - t0, cpu = (cpuSec(pid) - c0) * 1000;
  console.log(`${name}: ${N} handshakes, ${Math.round((N / ms) * 1000)}/s, server CPU ${(cpu / N).toFixed(3)} ms per handshake, resumed ${reused}/${N}`);
  return { name, per_s: Math.round((N / ms) * 1000), cpu_ms: cpu / N, reused };
}

for (let round = 0; round < 2; round++) {
  await phase('full', false);
  await phase('resumed', true);
}
