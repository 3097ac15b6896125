// The sizing section of docs/benchmarks.md from bench/sizing.mjs's results (a run, or --report-only FILE).

export function docsSection(r, short) {
  const L = [];
  const f = (x) => (Number.isFinite(x) ? x.toLocaleString('en') : '–');
  const cpu = (c) => (c ? `server ${c.server} % + PostgreSQL ${c.db} % + Redis ${c.redis} % (load ${c.load} %)` : '–');
  L.push('<!-- sizing:begin -->');
  L.push('## Sizing: sessions, a large room, many rooms');
  L.push('');
  L.push(`Regenerate: \`npm run build && node bench/sizing.mjs${short ? ' --short' : ''}\` (${r.minutes} minutes, commit ${r.commit}, ${new Date().toISOString().slice(0, 10)}; the 2-core machine is shared, so CPU figures are noisy). Perch on PostgreSQL and a private Redis; the load is raw-socket SCRAM clients in a few processes, spread over source addresses 127.0.0.2–40. CPU is % of one core (200 % = both), PostgreSQL = the backends of Perch's database.`);
  L.push('');
  for (const n of r.notes) L.push(`- ${n}`);
  if (r.notes.length) L.push('');
  for (const tag of ['sessions', 'sessions2']) {
    const c = r.cases[tag];
    if (!c) continue;
    L.push(`### ${f(c.sessions)} idle sessions on ${c.nodes === 1 ? 'one node' : `${c.nodes} nodes (one cluster: same PostgreSQL and Redis)`}`);
    L.push('');
    L.push('| figure | value |');
    L.push('|---|---|');
    L.push(`| sessions bound | ${f(c.bound)} |`);
    L.push(`| logins | ${f(c.login.per_s)}/s (all in ${c.login.wall_s} s; p50 ${c.login.p50} ms, p99 ${c.login.p99} ms, 400 in flight) |`);
    L.push(`| CPU during the logins | ${cpu(c.login.cpu)} |`);
    L.push(`| server RSS before → after | ${c.rss_mb_before.join(' + ')} MB → ${c.rss_mb_after.join(' + ')} MB |`);
    L.push(`| memory per session | ${c.kb_per_session} kB (${c.kb_per_session_after_idle} kB after the idle window) |`);
    L.push(`| CPU at idle, the server pinging each session after ${r.sizes.pingSeconds} s quiet (${f(c.idle.pings)} pings answered in ${c.idle.seconds} s) | ${cpu(c.idle)} |`);
    L.push('');
  }
  const room = r.cases.room;
  if (room) {
    L.push(`### One room of ${f(room.occupants)} occupants (one session each)`);
    L.push('');
    L.push(`Participant update limit ${room.limit} (the service's default setting; it applies on every service of a server with the chat model, governed or not): above it joins and leaves are not broadcast and a newcomer gets only its own presence. Each load process keeps 50 joins (then 50 leaves) in flight.`);
    L.push('');
    L.push('| step | figure | CPU |');
    L.push('|---|---|---|');
    L.push(`| join all | ${room.join.wall_s} s; per join p50 ${room.join.p50} ms, p99 ${room.join.p99} ms | ${cpu(room.join.cpu)} |`);
    L.push(`| post to all | every occupant had it ${f(room.post.all_ms)} ms after it was sent (p50 ${room.post.p50} ms); ${f(room.post.received)} received | ${cpu(room.post.cpu)} |`);
    L.push(`| leave all | ${room.leave.wall_s} s; per leave p50 ${room.leave.p50} ms, p99 ${room.leave.p99} ms | ${cpu(room.leave.cpu)} |`);
    L.push(`| memory per occupant | ${room.kb_per_occupant} kB (server RSS growth over the joins ÷ occupants) | |`);
    L.push('');
  }
  const rs = r.cases.rooms;
  if (rs) {
    L.push(`### ${f(rs.rooms)} persistent rooms`);
    L.push('');
    L.push('| step | figure | CPU |');
    L.push('|---|---|---|');
    L.push(`| create (join, owner form with persistent, leave; 50 in flight) | ${rs.create.wall_s} s, ${f(rs.create.per_s)}/s; p50 ${rs.create.p50} ms, p99 ${rs.create.p99} ms | ${cpu(rs.create.cpu)} |`);
    if (Number.isFinite(rs.unload_after_create_s)) L.push(`| idle unload after creation | ${f(rs.loaded_after_create)} loaded, none ${rs.unload_after_create_s} s after the last creation | |`);
    L.push(`| load all (disco#info to each; 50 in flight) | ${rs.load.wall_s} s, ${f(rs.load.per_s)}/s; p50 ${rs.load.p50} ms, p99 ${rs.load.p99} ms | ${cpu(rs.load.cpu)} |`);
    L.push(`| memory per loaded room | ${rs.kb_per_loaded_room} kB (RSS ${rs.rss_mb[0]} → ${rs.rss_mb[1]} MB; ${rs.rss_mb[2]} MB after the unload) | |`);
    L.push(`| idle with all loaded, until unloaded | ${Number.isFinite(rs.unload_s) ? `${rs.unload_s} s after loading` : 'not all within 240 s (see the checks)'} (empty rooms go after ${r.sizes.idleUnloadS} s idle: muc.idleUnloadSeconds) | ${cpu(rs.idle_loaded)} |`);
    const c = rs.chat;
    L.push(`| ${c.rate} messages/s across the rooms for ${c.seconds / 60} min | ${f(c.received)} of ${f(c.sent)} received; end to end p50 ${c.p50} ms, p99 ${c.p99} ms, max ${f(c.max)} ms | ${cpu(c.cpu)} |`);
    L.push('');
    L.push(`Messages: ${f(c.sessions)} sessions in pairs, each pair in ${f(Math.ceil(rs.rooms / (c.sessions / 2)))} rooms (${f(c.occupancies)} occupancies, joined in ${c.join_s} s); a message goes from one of a pair to a room picked at random and the other's receipt is timed.`);
    L.push('');
  }
  const failed = r.checks.filter((c) => !c.ok);
  L.push(failed.length ? `Checks failed: ${failed.map((c) => `${c.name} (${c.detail})`).join('; ')}.` : `All ${r.checks.length} correctness checks passed (every session bound, every occupant got the post, every room loaded and unloaded, every message received).`);
  L.push('<!-- sizing:end -->');
  return L.join('\n');
}
