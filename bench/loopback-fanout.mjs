#!/usr/bin/env node
// The floor under room fan-out on this machine, without XMPP: one Node process writes one message of a
// room's size to each of K loopback TCP sockets (one write per socket, as a server delivers to K
// occupants), R messages a second; a second Node process reads the K sockets (as the load generator's
// clients do) and times each copy from the moment the writer began the message. No parsing, no
// archive, no commit: what is left is the kernel's loopback send per socket, the two event loops and
// the scheduler on two cores. bench/muc.mjs's 1 room x 100 case at 5,000 deliveries/s is K=100, R=50.
//
//   node bench/loopback-fanout.mjs [--sockets 100] [--rate 50] [--seconds 20] [--bytes 400]
//
// Reports, per copy: latency p50 / p99 / max ms (from the start of the message's writes to the read),
// the writer's time to write all K copies (p50 / p99), and the writer's and reader's CPU per copy.
import { fork } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';

const argv = process.argv.slice(2);
const arg = (name, dflt) => { const i = argv.indexOf(name); return i === -1 ? dflt : Number(argv[i + 1]); };
const K = arg('--sockets', 100), RATE = arg('--rate', 50), SECONDS = arg('--seconds', 20), BYTES = arg('--bytes', 400);
const now = () => performance.timeOrigin + performance.now();
const quantile = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)]; };

if (argv[0] === '--reader') await reader(Number(argv[1]));
else await writer();

/** The load generator's side: K sockets, each copy's latency from the stamp the message carries. */
async function reader(port) {
  const latencies = [];
  let cpu0 = null;
  let copies = 0, ended = 0;
  const sockets = await Promise.all(Array.from({ length: K }, () => new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.setNoDelay(true);
    let pending = '';
    s.setEncoding('latin1');
    s.on('data', (chunk) => {
      pending += chunk;
      for (let end = pending.indexOf('\n'); end !== -1; end = pending.indexOf('\n')) {
        const line = pending.slice(0, end);
        pending = pending.slice(end + 1);
        const t = Number(line.slice(0, line.indexOf(' ')));
        // Every socket's end marker read: every copy before it was.
        if (t < 0) { if (++ended === K) process.send({ latencies, cpu: process.cpuUsage(cpu0 ?? undefined), copies }); return; }
        cpu0 ??= process.cpuUsage();
        latencies.push(now() - t);
        copies++;
      }
    });
  })));
  process.send({ ready: sockets.length });
}

async function writer() {
  const accepted = [];
  const server = net.createServer((s) => { s.setNoDelay(true); accepted.push(s); });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const child = fork(fileURLToPath(import.meta.url), ['--reader', String(server.address().port), ...argv]);
  const messages = [];
  child.on('message', (m) => messages.push(m));
  const next = async () => { while (messages.length === 0) await new Promise((r) => setTimeout(r, 5)); return messages.shift(); };
  await next();
  while (accepted.length < K) await new Promise((r) => setTimeout(r, 5));
  const pad = 'x'.repeat(Math.max(0, BYTES - 30));
  const spreads = [];
  const total = RATE * SECONDS;
  const started = now();
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < total; i++) {
    const due = started + (i * 1000) / RATE;
    const wait = due - now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const t = now();
    const line = `${t} ${pad}\n`;
    for (const s of accepted) s.write(line);
    spreads.push(now() - t);
  }
  const cpu = process.cpuUsage(cpu0);
  for (const s of accepted) s.write('-1 end\n');
  const result = await next();
  child.kill();
  server.close();
  for (const s of accepted) s.destroy();
  const perCopy = (c) => ((c.user + c.system) / (total * K)).toFixed(1);
  const l = result.latencies;
  console.log(`loopback fan-out: ${K} sockets, ${RATE} messages/s (${RATE * K} copies/s), ${SECONDS} s, ${BYTES} bytes a copy; ${result.copies}/${total * K} copies read`);
  console.log(`latency from the message's first write to each copy read: p50 ${quantile(l, 0.5).toFixed(2)} / p99 ${quantile(l, 0.99).toFixed(2)} / max ${Math.max(...l).toFixed(2)} ms`);
  console.log(`writer, all ${K} copies of a message written: p50 ${quantile(spreads, 0.5).toFixed(2)} / p99 ${quantile(spreads, 0.99).toFixed(2)} ms`);
  console.log(`CPU per copy: writer ${perCopy(cpu)} µs, reader ${perCopy(result.cpu)} µs`);
}
