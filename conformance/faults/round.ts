// One round of a fault-injection run: fresh clients and rooms, numbered messages at a steady rate,
// one fault at the fault time, then the checks. The checks read only what the clients logged and what
// PostgreSQL holds (the rooms' archives, the recipients' archives and offline storage): every
// acknowledged message archived exactly once and delivered exactly once to every recipient (live, or
// through MAM for a client that had to log in afresh), one order per room, and how long until every
// client had room traffic again.
import { randomBytes } from 'node:crypto';
import { FaultClient } from './client.js';
import { DOMAIN, MUC_DOMAIN, NODES, type FaultCluster } from './cluster.js';
import type { Fault, FaultContext } from './faults.js';
import { sleep } from './services.js';

/**
 * How long a round's first joins may be refused with type wait before the round fails: the cluster may
 * still be without Redis from the previous round's fault (a Sentinel set adding a replica has been seen
 * to leave a node fenced for over 10 s under a full CI run).
 */
const SETUP_JOIN_MS = 30_000;

export interface RoundOptions {
  /** Messages per second from each sending client (rooms and one-to-one in turn). */
  rate: number;
  clientsPerNode: number;
  /** Sending before the fault. */
  warmupMs: number;
  /** Sending after the fault is over (the cluster whole again). */
  afterFaultMs: number;
  /** Sending goes on until every client has room traffic again, at most this long after the fault. */
  recoverTimeoutMs: number;
  /** After sending stops: how long to wait for outstanding acks and deliveries. */
  settleMs: number;
  /** A lasting fault's duration (the Redis cut). */
  durationMs: number;
  restartAfterMs: number;
  password: string;
  users: string[];
  log?: (line: string) => void;
}

export interface RoundResult {
  fault: string;
  round: number;
  /** Messages written to a socket at least once. */
  sent: number;
  acked: number;
  /** Acknowledged messages in their archive (room), or in the recipient's archive or offline storage (one-to-one). */
  archived: number;
  /** Acknowledged messages that reached every recipient (live, or through MAM after a fresh login). */
  delivered: number;
  /** Acknowledged messages without an error reply, not archived or missing at some recipient. */
  lost: number;
  /** Acknowledged messages archived twice or received twice live by one client. */
  duplicated: number;
  /**
   * Seconds from the fault (its start; the end of a lasting fault) until the cluster was whole again:
   * every client had, in every room, a live message sent after that point, and no acknowledged message
   * sent after that point was lost. Null when it never was within the round.
   */
  recoverSeconds: number | null;
  /** When the last lost message was created (ms since the epoch), or null. */
  lastLostAt: number | null;
  /** Seconds the fault itself took (a kill and the restart after it, a cut, a rolling restart). */
  faultSeconds: number;
  /** What the guarantee allows for recoverSeconds. */
  recoverDueSeconds: number;
  /** Error replies senders got, by condition. */
  errors: Record<string, number>;
  /** Messages (acknowledged or not) that got an error reply and were not archived. */
  refused: number;
  /** Messages that got an error reply but were archived or stored somewhere all the same (the sender's own archive included). */
  refusedButKept: number;
  /** Room messages a client saw in another order than the archive's. */
  reordered: number;
  /** One-to-one messages that went to offline storage (every recipient has a session, or is reconnecting). */
  toOffline: number;
  detail: {
    lostRoom: number; lostChat: number; lostArchiveOnly: number;
    unackedArchived: number; drops: number; resumes: number; freshLogins: number;
    lostExamples: string[]; duplicateExamples: string[]; keptExamples: string[]; reorderedExamples: string[]; notes: string[];
    /** Lost messages by the second (from the fault) they were sent in. */
    lostBySecond: Record<string, number>;
    /** What the clients that lost their connection did (reconnections, resumptions, refusals). */
    clientEvents: string[];
  };
}

const pct = (n: number) => String(n);

/** The guarantee: the cluster is whole again within 5 s of a fault (of its end, for a lasting one). */
export const RECOVER_DUE_SECONDS = 5;

/** Counts per token. */
function counts(tokens: Iterable<string>): Map<string, number> {
  const m = new Map<string, number>();
  for (const t of tokens) m.set(t, (m.get(t) ?? 0) + 1);
  return m;
}

export async function runRound(cluster: FaultCluster, fault: Fault, round: number, opts: RoundOptions): Promise<RoundResult> {
  const log = opts.log ?? (() => {});
  const runTag = `${randomBytes(3).toString('hex')}r${round}`;
  const roomLocals = [`fa${runTag}`, `fb${runTag}`];
  const roomJids = roomLocals.map((r) => `${r}@${MUC_DOMAIN}`);
  const notes: string[] = [];
  const t0 = Date.now();
  const note = (s: string) => { notes.push(`${((Date.now() - t0) / 1000).toFixed(1)}s ${s}`); log(`  [${fault.name}] ${s}`); };

  await cluster.makeWhole();
  const clients: FaultClient[] = [];
  for (let node = 0; node < NODES; node++) {
    for (let k = 0; k < opts.clientsPerNode; k++) {
      const idx = node * opts.clientsPerNode + k;
      const user = opts.users[idx];
      if (!user) throw new Error(`need ${NODES * opts.clientsPerNode} users`);
      clients.push(new FaultClient({
        user, password: opts.password, resource: `r${runTag}`, nick: `c${idx}`, domain: DOMAIN, mucDomain: MUC_DOMAIN,
        home: node, livePorts: () => cluster.livePorts(),
      }, `${runTag}.${idx}`));
    }
  }
  const tokenCreated = new Map<string, number>();
  let faultAt = 0;
  let faultSeconds = 0;
  let sending: NodeJS.Timeout[] = [];
  let stopped = false;
  const stopSending = () => {
    stopped = true;
    for (const t of sending) clearTimeout(t);
    sending = [];
  };
  /** Recovery is measured from here: the fault's start, or the end of a lasting fault. */
  let recoverFrom = 0;
  let stoppedAt = 0;
  try {
    await Promise.all(clients.map((c) => c.start()));
    // The first client (node 0) creates both rooms, so node 0 holds them; then everyone joins.
    for (const room of roomJids) {
      await clients[0]!.join(room, SETUP_JOIN_MS);
      await clients[0]!.configurePersistent(room);
    }
    await Promise.all(clients.slice(1).map(async (c) => { for (const room of roomJids) await c.join(room, SETUP_JOIN_MS); }));
    const owner = (await cluster.roomHolder(roomLocals[0]!)) ?? 0;
    const holders = new Set([owner, (await cluster.roomHolder(roomLocals[1]!)) ?? owner]);
    const free = [...Array(NODES).keys()].filter((n) => !holders.has(n));
    const senderNode = free[0] ?? (owner + 1) % NODES;
    const recipientNode = free[1] ?? (owner + 2) % NODES;
    note(`rooms held by node ${[...holders].join(',')}; senders on nodes ${owner},${senderNode}; receivers only on node ${recipientNode}`);

    // Senders: the clients of the owner's and the sender node; the recipient node's clients only receive.
    const senders = clients.filter((_, i) => Math.floor(i / opts.clientsPerNode) !== recipientNode);
    const interval = Math.max(5, Math.round(1000 / opts.rate));
    senders.forEach((c, si) => {
      let n = 0;
      const others = clients.filter((o) => o !== c);
      const tick = () => {
        const step = n++ % 3;
        const m = step < 2
          ? c.post('room', roomJids[step]!)
          : c.post('chat', others[Math.floor(n / 3) % others.length]!.bare);
        tokenCreated.set(m.token, m.created);
      };
      // Spread the senders over the interval.
      sending.push(setTimeout(() => {
        if (stopped) return;
        tick();
        sending.push(setInterval(tick, interval));
      }, Math.round((interval * si) / senders.length)));
    });

    await sleep(opts.warmupMs);
    faultAt = Date.now();
    recoverFrom = faultAt;
    const recovered = () => recoverSeconds(clients, roomJids, tokenCreated, recoverFrom) !== null;
    const ctx: FaultContext = {
      cluster, rooms: roomLocals, ownerNode: owner, senderNode, recipientNode,
      durationMs: opts.durationMs, restartAfterMs: opts.restartAfterMs, recoverTimeoutMs: opts.recoverTimeoutMs, note,
      clientsOn: (node) => clients.slice(node * opts.clientsPerNode, (node + 1) * opts.clientsPerNode),
      async untilRecovered(maxMs) {
        const until = Date.now() + maxMs;
        while (!recovered() && Date.now() < until) await sleep(100);
      },
    };
    let faultDoneAt: number | null = null;
    let faultError: Error | null = null;
    const done = () => {
      faultDoneAt = Date.now();
      if (fault.lasting) recoverFrom = faultDoneAt;
    };
    void fault.inject(ctx).then(done, (e: Error) => { faultError = e; done(); note(`fault failed: ${e.message}`); });

    for (;;) {
      await sleep(100);
      const now = Date.now();
      if (faultDoneAt === null) continue;
      if (now < faultDoneAt + opts.afterFaultMs) continue;
      if (recovered() || now > recoverFrom + opts.recoverTimeoutMs) break;
    }
    stopSending();
    stoppedAt = Date.now();
    note('sending stopped');
    faultSeconds = ((faultDoneAt ?? Date.now()) - faultAt) / 1000;
    if (faultError) throw faultError;

    // Outstanding acks and deliveries; clients still reconnecting get the settle time too.
    const settleUntil = Date.now() + opts.settleMs;
    for (;;) {
      const waiting = clients.some((c) => !c.connected || [...c.outgoing.values()].some((m) => m.writes > 0 && m.ackedAt === undefined && m.errors.length === 0));
      if (!waiting || Date.now() > settleUntil) break;
      await sleep(100);
    }
    await sleep(1500);
    // A client that had to log in afresh catches up through MAM, as a real client does.
    for (const c of clients) {
      if (c.freshLogins === 0 || !c.connected) continue;
      for (const room of roomJids) {
        try {
          await c.mamAll(room);
        } catch (e) {
          note(`MAM catch-up of c${clients.indexOf(c)} failed: ${(e as Error).message}`);
        }
      }
    }
  } finally {
    stopSending();
    await Promise.all(clients.map((c) => c.stop()));
  }
  const firstTraffic = recoverFrom ? recoverSeconds(clients, roomJids, tokenCreated, recoverFrom) : null;
  const result = await check(cluster, fault.name, round, runTag, clients, roomJids, notes, faultAt);
  // Whole again means traffic for everyone and no loss after that: a message lost later pushes recovery
  // past its sending; losses until sending stopped mean the cluster never recovered in the round.
  let recover = firstTraffic;
  if (recover !== null && result.lastLostAt !== null && result.lastLostAt > recoverFrom) {
    recover = result.lastLostAt > stoppedAt - 1000 ? null : Math.max(recover, (result.lastLostAt - recoverFrom) / 1000);
  }
  return { ...result, recoverSeconds: recover, faultSeconds, recoverDueSeconds: RECOVER_DUE_SECONDS };
}

/** Seconds until every client got, for every room, a live message created after `from`; null if one has not. */
function recoverSeconds(clients: FaultClient[], rooms: string[], created: Map<string, number>, from: number): number | null {
  let worst = 0;
  for (const c of clients) {
    for (const room of rooms) {
      const first = (c.roomLog.get(room) ?? []).find((r) => r.at > from && (created.get(r.token) ?? 0) > from);
      if (!first) return null;
      worst = Math.max(worst, first.at - from);
    }
  }
  return worst / 1000;
}

async function check(cluster: FaultCluster, faultName: string, round: number, runTag: string, clients: FaultClient[],
  roomJids: string[], notes: string[], faultAt: number): Promise<Omit<RoundResult, 'recoverSeconds' | 'faultSeconds' | 'recoverDueSeconds'>> {
  const like = `F ${runTag}.%`;
  const archiveRows = await cluster.pg.query<{ archive: string; body: string; id: string }>(
    'SELECT archive, body, id FROM archive WHERE body LIKE $1 ORDER BY id', [like]);
  const offlineRows = await cluster.pg.query<{ username: string; stanza: string }>(
    'SELECT username, stanza FROM offline_messages WHERE stanza LIKE $1', [`%F ${runTag}.%`]);
  const tokenRe = new RegExp(`F (${runTag}\\.\\d+\\.\\d+)`);
  const inArchive = new Map<string, string[]>(); // archive JID → tokens in id order
  for (const r of archiveRows) {
    const t = r.body.slice(2);
    let list = inArchive.get(r.archive);
    if (!list) inArchive.set(r.archive, (list = []));
    list.push(t);
  }
  const offline = new Map<string, Map<string, number>>(); // username → token counts
  for (const r of offlineRows) {
    const t = tokenRe.exec(r.stanza)?.[1];
    if (!t) continue;
    let m = offline.get(r.username);
    if (!m) offline.set(r.username, (m = new Map()));
    m.set(t, (m.get(t) ?? 0) + 1);
  }
  const archiveCounts = new Map<string, Map<string, number>>();
  for (const [a, list] of inArchive) archiveCounts.set(a, counts(list));
  const liveRoom = clients.map((c) => new Map(roomJids.map((r) => [r, counts((c.roomLog.get(r) ?? []).map((x) => x.token))])));
  const liveChat = clients.map((c) => counts(c.chatLog.map((x) => x.token)));
  const byBare = new Map(clients.map((c, i) => [c.bare, i]));

  let sent = 0, acked = 0, archived = 0, delivered = 0, lost = 0, duplicated = 0, refused = 0, toOffline = 0;
  let refusedButKept = 0;
  let lastLostAt: number | null = null;
  const lostBySecond: Record<string, number> = {};
  const anywhere = counts([...inArchive.values()].flat());
  for (const m of offline.values()) for (const [t, n] of m) anywhere.set(t, (anywhere.get(t) ?? 0) + n);
  let lostRoom = 0, lostChat = 0, lostArchiveOnly = 0, unackedArchived = 0;
  const errors: Record<string, number> = {};
  const lostExamples: string[] = [];
  const duplicateExamples: string[] = [];
  const keptExamples: string[] = [];
  for (const [ci, c] of clients.entries()) {
    for (const m of c.outgoing.values()) {
      if (m.writes > 0) sent++;
      for (const e of m.errors) errors[e] = (errors[e] ?? 0) + 1;
      let archivedN: number;
      let everywhere = true;
      let twice = false;
      if (m.kind === 'room') {
        archivedN = archiveCounts.get(m.to)?.get(m.token) ?? 0;
        for (const [ri, r] of clients.entries()) {
          const live = liveRoom[ri]!.get(m.to)!.get(m.token) ?? 0;
          if (live > 1) twice = true;
          const viaMam = r.freshLogins > 0 && (r.mam.get(m.to) ?? []).includes(m.token);
          if (live === 0 && !viaMam) everywhere = false;
        }
      } else {
        const ri = byBare.get(m.to)!;
        const recipient = clients[ri]!;
        const inRecipientArchive = archiveCounts.get(m.to)?.get(m.token) ?? 0;
        const inOffline = offline.get(recipient.opts.user)?.get(m.token) ?? 0;
        const live = liveChat[ri]!.get(m.token) ?? 0;
        archivedN = inRecipientArchive + inOffline;
        if (inOffline > 0) toOffline++;
        if (live > 1 || inRecipientArchive > 1) twice = true;
        everywhere = live > 0 || archivedN > 0;
      }
      if (m.errors.length && archivedN === 0) refused++;
      if (m.ackedAt === undefined) {
        if (archivedN > 0) unackedArchived++;
        continue;
      }
      acked++;
      if (archivedN > 0) archived++;
      if (everywhere) delivered++;
      if (m.kind === 'room' && archivedN > 1) twice = true;
      // An error reply tells the sender it was not kept: refused, not lost (counted apart).
      if (m.errors.length) {
        if (anywhere.get(m.token)) {
          refusedButKept++;
          if (keptExamples.length < 5) keptExamples.push(`${m.token} (${m.kind} from c${ci} to ${m.to}: ${m.errors.join(', ')}; archived ${archivedN}, anywhere ${anywhere.get(m.token)}; written ${m.writes}× from ${new Date(m.sentAt ?? 0).toISOString().slice(11, 23)})`);
        }
        continue;
      }
      if (archivedN === 0 || !everywhere) {
        lost++;
        lastLostAt = Math.max(lastLostAt ?? 0, m.created);
        const second = String(Math.floor((m.created - faultAt) / 1000));
        lostBySecond[second] = (lostBySecond[second] ?? 0) + 1;
        if (m.kind === 'room') lostRoom++; else lostChat++;
        if (archivedN === 0 && everywhere) lostArchiveOnly++;
        if (lostExamples.length < 5) lostExamples.push(`${m.token} (${m.kind} from c${ci} to ${m.to}, archived ${archivedN})`);
      }
      if (twice) {
        duplicated++;
        if (duplicateExamples.length < 5) duplicateExamples.push(`${m.token} (${m.kind}, archived ${archivedN})`);
      }
    }
  }
  // One order per room: each client's live sequence against the archive's.
  let reordered = 0;
  const reorderedExamples: string[] = [];
  const at = (ms: number) => new Date(ms).toISOString().slice(11, 23);
  for (const room of roomJids) {
    const archived = inArchive.get(room) ?? [];
    const pos = new Map(archived.map((t, i) => [t, i] as const));
    for (const [ci, c] of clients.entries()) {
      let last = -1;
      let lastAt = 0;
      for (const r of c.roomLog.get(room) ?? []) {
        const p = pos.get(r.token);
        if (p === undefined) continue;
        if (p < last) {
          reordered++;
          if (reorderedExamples.length < 5) {
            reorderedExamples.push(`c${ci} on node ${c.node} got ${r.token} (archive #${p}) at ${at(r.at)}, after ${archived[last]} (#${last}) at ${at(lastAt)}`);
          }
        } else {
          last = p;
          lastAt = r.at;
        }
      }
    }
  }
  return {
    fault: faultName, round, sent, acked, archived, delivered, lost, duplicated,
    lastLostAt,
    errors, refused, refusedButKept, reordered, toOffline,
    detail: {
      lostRoom, lostChat, lostArchiveOnly, unackedArchived,
      drops: clients.reduce((s, c) => s + c.drops, 0),
      resumes: clients.reduce((s, c) => s + c.resumes, 0),
      freshLogins: clients.reduce((s, c) => s + c.freshLogins, 0),
      lostExamples, duplicateExamples, keptExamples, reorderedExamples, notes, lostBySecond,
      clientEvents: clients.flatMap((c, i) => (c.drops ? c.events.slice(0, 12).map((e) => `c${i} ${new Date(e.at).toISOString().slice(11, 23)} ${e.what}`) : [])),
    },
  };
}

export function formatTable(results: RoundResult[]): string {
  const head = ['fault', 'sent', 'acked', 'archived', 'delivered', 'lost', 'duplicated', 'recover (s)', 'errors to senders', 'reordered', 'to offline'];
  const rows = results.map((r) => [
    r.fault + (results.filter((x) => x.fault === r.fault).length > 1 ? ` #${r.round}` : ''),
    pct(r.sent), pct(r.acked), pct(r.archived), pct(r.delivered), pct(r.lost), pct(r.duplicated),
    r.recoverSeconds === null ? 'never' : r.recoverSeconds.toFixed(2),
    (Object.entries(r.errors).map(([k, v]) => `${k} ×${v}`).join(', ') || '—') + (r.refusedButKept ? ` (${r.refusedButKept} kept anyway)` : ''),
    pct(r.reordered), pct(r.toOffline),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}
