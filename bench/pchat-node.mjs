// One node of bench/pchat-scale.mjs's propagation phase (models only): Perch's ChatModel on the seeded
// database, with its own RedisSessionStore as the cluster bus (the server's wiring: session store
// broadcast, envelope {t:'m', topic, data}). Node b holds occupants (the probe user in the probe room, and
// the users listed by name in the member lists of its first rooms) and re-checks all of them on every
// change, as the room integration does for the rooms a node holds; it reports when the probe loses
// (and regains) the right to join. Driven by the parent over IPC.
import path from 'node:path';

const NAME = process.env.PCHAT_NODE;
const DIST = process.env.PCHAT_DIST;
const shape = JSON.parse(process.env.PCHAT_SHAPE);
const probe = JSON.parse(process.env.PCHAT_PROBE);
const HELD_ROOMS = 1000;
const now = () => performance.timeOrigin + performance.now();

const { openDataStores, openSessionStore } = await import(path.join(DIST, 'storage/open.js'));
const { ChatModel, CHAT_TOPIC } = await import(path.join(DIST, 'src/pchat/model.js'));
const access = await import(path.join(DIST, 'src/pchat/access.js'));

let stores, sessions, model, svc;
/** [user, room record] pairs this node holds; the probe's first. */
const occupants = [];
let probeAllowed = true;
let receivedAt = 0;

async function start() {
  stores = await openDataStores({ databaseUrl: process.env.PCHAT_DB_URL, dataDir: null });
  sessions = await openSessionStore({ redisUrl: process.env.PCHAT_REDIS_URL, nodeId: `pchat-bench-${NAME}` });
  model = new ChatModel({
    stores, isAdmin: () => false, nodeId: sessions.nodeId,
    broadcast: (change) => sessions.broadcast(JSON.stringify({ t: 'm', topic: CHAT_TOPIC, data: change })),
    log: { warn: (m) => console.error(`[${NAME}] ${m}`), error: (m, f) => console.error(`[${NAME}] ${m} ${f?.err ?? ''}`) },
  }, [shape.service]);
  sessions.onMessage((payload) => {
    const env = JSON.parse(payload);
    if (env.t !== 'm' || env.topic !== CHAT_TOPIC) return;
    if (env.data.origin !== sessions.nodeId) receivedAt = now();
    model.received(env.data);
  });
  const t0 = now();
  await model.start();
  const startMs = now() - t0;
  svc = model.forService(shape.service);
  if (NAME === 'b') {
    const rooms = [...svc.rooms.values()].slice(0, HELD_ROOMS);
    const candidates = [];
    for (const r of rooms) for (const p of r.members ?? []) if (!p.includes(':')) candidates.push([p, r]);
    await model.ensureSubjects([probe.user, ...candidates.map(([u]) => u)]);
    occupants.push([probe.user, svc.room(probe.room)]);
    for (const [u, r] of candidates) if (access.canJoin(model.subject(u), r, svc.categoryOf(r))) occupants.push([u, r]);
    model.onChange(recheck);
  }
  return { start_ms: startMs, occupants: occupants.length, rooms_held: new Set(occupants.map(([, r]) => r.room)).size };
}

/** Every held occupant checked again after a change (their principal sets reloaded in one batch). */
async function recheck(change) {
  if (change.kind !== 'directory' && change.kind !== 'room' && change.kind !== 'category' && change.kind !== 'policy') return;
  await model.ensureSubjects(occupants.map(([u]) => u));
  let lost = 0;
  let probeNow = false;
  for (let i = 0; i < occupants.length; i++) {
    const [u, stale] = occupants[i];
    const r = svc.room(stale.room) ?? stale;
    const ok = access.canJoin(model.subject(u), r, svc.categoryOf(r));
    if (i === 0) probeNow = ok;
    else if (!ok) lost++;
  }
  const at = now();
  if (probeAllowed && !probeNow) process.send({ event: 'ejected', at, received_at: receivedAt, rechecked: occupants.length, others_lost: lost });
  if (!probeAllowed && probeNow) process.send({ event: 'admitted', at, received_at: receivedAt });
  probeAllowed = probeNow;
}

/**
 * The group edit as the operation makes it: the store, then the change published. Scoped: with the reach the
 * operation gives it (a user added to or removed from a group: that user's set only, as groupEditScope in
 * src/pchat/operations.ts); unscoped: a change without a reach, which every node takes as "everything".
 */
async function edit(op, scoped) {
  const t0 = now();
  const edit = op === 'remove' ? { add: [], remove: [probe.user] } : { add: [probe.user], remove: [] };
  await stores.directory.editGroupMembers(probe.group, edit);
  const committed = now();
  await model.publish(scoped ? { kind: 'directory', directory: { users: [probe.user], keys: [], edges: false } } : { kind: 'directory' });
  return { started_at: t0, committed_at: committed, published_at: now() };
}

process.on('message', async (m) => {
  try {
    let r;
    if (m.op === 'start') r = await start();
    else if (m.op === 'remove' || m.op === 'add') r = await edit(m.op, m.scoped);
    else if (m.op === 'check') {
      await model.ensureSubjects([probe.user]);
      const room = svc.room(probe.room);
      r = { canJoin: access.canJoin(model.subject(probe.user), room, svc.categoryOf(room)) };
    } else throw new Error(`unknown op ${m.op}`);
    process.send({ reply: m.id, ...r });
  } catch (e) {
    process.send({ reply: m.id, error: String(e?.stack ?? e) });
  }
});
process.on('SIGTERM', async () => {
  await sessions?.close().catch(() => {});
  await stores?.db.close().catch(() => {});
  process.exit(0);
});
