// Bulk-loads a room archive straight into a server's PostgreSQL tables, so that MAM queries can be timed
// on archives far larger than sending would allow (the peers ingest 1.7–3.2k msgs/s through XMPP).
//
// The generated archive is the same for every server: deterministic bodies of 4–24 words drawn from a fixed
// vocabulary (skewed towards frequent words), 50 senders with skewed shares, whole-second stamps 1–16 s
// apart ending ten minutes before the load, and two marker words placed at known rows so that full-text
// queries hit a known number of rows. Each server's rows are built from a template row that the server
// itself wrote for one message sent through XMPP (captureTemplate), with the body, nick, sender, message
// id and archive id substituted; the template row is then deleted, so the archive holds exactly N rows.
import crypto from 'node:crypto';
import { prng } from './lib.mjs';

// Words of ordinary team chat; none of them contains a marker word below.
export const VOCABULARY = [...new Set(`the to and a of I you it is in for that we on this be have with can do at so are not
just will if but what about my all get me was know there they one your think now up out like time our
should from as an today ok yes no let it's need see would new could make going how go more work check
thanks good back meeting also then want team still look morning update sure any week here call tomorrow
which did some when after by has release please build test looks right done fix later issue review send
before people only them doc customer last next maybe really first into been over afternoon working change
deploy server number great agree other well report plan wait question data same try start thing order file
branch merge ticket access account price client email project version problem status sales account quick
note around long lunch friday monday morning again since yet though because thought else already point
talk help open close move happen little share follow soon write read hour minute day month year support
team leads trading desk notes figures ready sent received approved pending budget forecast quarter target
risk limit market trade position book desk hedge spread volume close open bid offer rate yield bond equity
fund portfolio client mandate compliance audit legal contract draft final version slide deck agenda minutes
summary action owner deadline priority blocker bug feature design spec api endpoint config cluster node
database query index cache latency throughput load capacity alert incident outage restart rollback patch
upgrade install license`.split(/\s+/).filter(Boolean))];

/** Full-text markers: a rare word (one message in 1000) and a common one (one in 100). Not in VOCABULARY. */
export const FT_RARE = { word: 'zanzibar', every: 1000, offset: 7 };
export const FT_COMMON = { word: 'kingfisher', every: 100, offset: 3 };
export const SENDERS = 50;
const MEAN_GAP_S = 8.5;


/**
 * The archive as plain data: rows i = 0..n-1 with body, sender index and stamp (whole seconds), plus what
 * the queries should find. Senders are numbered 0..49: nick `b<k>`, account user<k+1>.
 */
export function generateArchive(n, { seed = 20261124, endMs = Date.now() - 600_000 } = {}) {
  const rnd = prng(seed);
  const V = VOCABULARY.length;
  const bodies = new Array(n);
  const senders = new Uint8Array(n);
  const gaps = new Uint8Array(n);
  const perSender = new Array(SENDERS).fill(0);
  let span = 0;
  for (let i = 0; i < n; i++) {
    const len = 4 + Math.floor(rnd() * 21);
    const words = new Array(len);
    for (let w = 0; w < len; w++) words[w] = VOCABULARY[Math.floor(V * rnd() * rnd())]; // skewed to the front
    if (i % FT_RARE.every === FT_RARE.offset) words[Math.floor(rnd() * len)] = FT_RARE.word;
    if (i % FT_COMMON.every === FT_COMMON.offset) words[Math.floor(rnd() * len)] = FT_COMMON.word;
    words[0] = words[0][0].toUpperCase() + words[0].slice(1);
    bodies[i] = words.join(' ');
    // sender shares skewed: low-numbered senders talk more
    const s = Math.min(SENDERS - 1, Math.floor(SENDERS * rnd() * rnd() * 1.6));
    senders[i] = s;
    perSender[s]++;
    gaps[i] = 1 + Math.floor(rnd() * (2 * MEAN_GAP_S - 1)); // 1..16 s
    span += i ? gaps[i] : 0;
  }
  const endS = Math.floor(endMs / 1000);
  const stamps = new Float64Array(n); // unix seconds, strictly increasing
  stamps[0] = endS - span;
  for (let i = 1; i < n; i++) stamps[i] = stamps[i - 1] + gaps[i];
  const count = (m) => (n > m.offset ? Math.floor((n - 1 - m.offset) / m.every) + 1 : 0);
  // 'with' target: a sender with a mid-sized share
  const withSender = 10;
  const a = Math.floor(n / 2);
  const b = Math.min(n - 1, a + 999);
  return {
    n, bodies, senders, stamps,
    expect: {
      fulltext_rare: { word: FT_RARE.word, count: count(FT_RARE) },
      fulltext_common: { word: FT_COMMON.word, count: count(FT_COMMON) },
      with: { sender: withSender, nick: `b${withSender}`, user: withSender + 1, count: perSender[withSender] },
      window: { start: iso(stamps[a]), end: iso(stamps[b]), count: b - a + 1 },
      first_stamp: iso(stamps[0]), last_stamp: iso(stamps[n - 1]),
    },
  };
}

export const iso = (unixS) => new Date(unixS * 1000).toISOString().replace(/\.\d+Z$/, 'Z');

// ------------------------------------------------------------------------------------------------
// templates

export const TEMPLATE = { nick: 'tplnick', body: 'tplbody', id: 'tplid', account: 1 };

/** The archive row the server wrote for the template message: returns {row, id, xml} or throws. */
export async function captureTemplate(pg, server, roomJid) {
  const [node] = roomJid.split('@');
  for (let attempt = 0; attempt < 50; attempt++) {
    let rows;
    if (server === 'prosody') {
      rows = (await pg.query(`SELECT sort_id, key AS id, value AS xml FROM prosodyarchive WHERE store = 'muc_log' AND "user" = $1 AND value LIKE '%${TEMPLATE.body}%'`, [node])).rows;
    } else if (server === 'ejabberd') {
      rows = (await pg.query(`SELECT id AS rowid, timestamp::text AS id, xml FROM archive WHERE username = $1 AND txt = $2`, [roomJid, TEMPLATE.body])).rows;
    } else {
      rows = (await pg.query(`SELECT id AS rowid, stanza_id AS id, stanza AS xml, from_jid, real_jid FROM archive WHERE archive = $1 AND body = $2`, [roomJid, TEMPLATE.body])).rows;
    }
    if (rows.length) return rows[0];
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${server}: no archive row for the template message in ${roomJid} (is the room archived?)`);
}

/** Deletes every archived row of the room (template and anything else sent while creating it). */
export async function clearRoomArchive(pg, server, roomJid) {
  const [node, service] = roomJid.split('@');
  if (server === 'prosody') await pg.query(`DELETE FROM prosodyarchive WHERE host = $1 AND "user" = $2 AND store = 'muc_log'`, [service, node]);
  else if (server === 'ejabberd') await pg.query('DELETE FROM archive WHERE username = $1', [roomJid]);
  else await pg.query('DELETE FROM archive WHERE archive = $1', [roomJid]);
}

function newId(template) {
  if (/^[0-9a-f]{8}-[0-9a-f]{4}-/.test(template)) return crypto.randomUUID();
  // same length and alphabet family as the server's own ids
  const len = Math.max(8, template.length);
  return crypto.randomBytes(len).toString('base64url').slice(0, len);
}

/**
 * Inserts the generated archive into the room, in batches of `batch` rows, then VACUUM ANALYZE.
 * domain: the users' domain (real JIDs user<k>@domain). Returns {rows, seconds}.
 */
export async function loadArchive(pg, server, roomJid, arch, template, { domain, batch = 5000, log = () => {} }) {
  const [node, service] = roomJid.split('@');
  const tplJid = `user${TEMPLATE.account}@${domain}`;
  // the template row with its variable parts replaced for row i
  const xmlOf = (i, id) => {
    const k = arch.senders[i];
    return template.xml
      .replaceAll(TEMPLATE.body, arch.bodies[i])
      .replaceAll(TEMPLATE.nick, `b${k}`)
      .replaceAll(`'${TEMPLATE.id}'`, `'m${i}'`).replaceAll(`"${TEMPLATE.id}"`, `"m${i}"`)
      .replaceAll(tplJid, `user${k + 1}@${domain}`)
      .replaceAll(template.id, id);
  };
  const t0 = Date.now();
  for (let from = 0; from < arch.n; from += batch) {
    const to = Math.min(arch.n, from + batch);
    const cols = { a: [], b: [], c: [], d: [], e: [], f: [], g: [] };
    for (let i = from; i < to; i++) {
      const k = arch.senders[i];
      const stampS = arch.stamps[i];
      if (server === 'prosody') {
        const key = crypto.randomUUID();
        cols.a.push(key); cols.b.push(stampS); cols.c.push(xmlOf(i, key));
      } else if (server === 'ejabberd') {
        // the archive id is the microsecond timestamp; stamps are distinct whole seconds
        cols.a.push(String(stampS * 1_000_000)); cols.b.push(`user${k + 1}@${domain}/bench`); cols.c.push(`user${k + 1}@${domain}`);
        cols.d.push(xmlOf(i, String(stampS * 1_000_000))); cols.e.push(arch.bodies[i]); cols.f.push(`b${k}`);
      } else {
        const id = newId(template.id);
        cols.a.push(id); cols.b.push(new Date(stampS * 1000).toISOString()); cols.c.push(`${roomJid}/b${k}`);
        cols.d.push(`user${k + 1}@${domain}`); cols.e.push(arch.bodies[i]); cols.f.push(xmlOf(i, id));
      }
    }
    if (server === 'prosody') {
      await pg.query(
        `INSERT INTO prosodyarchive (host, "user", store, key, "when", "with", type, value)
         SELECT $1, $2, 'muc_log', k, w, 'message<groupchat', 'xml', v
         FROM unnest($3::text[], $4::int[], $5::text[]) WITH ORDINALITY AS t(k, w, v, o) ORDER BY o`,
        [service, node, cols.a, cols.b, cols.c]);
    } else if (server === 'ejabberd') {
      await pg.query(
        `INSERT INTO archive (username, timestamp, peer, bare_peer, xml, txt, kind, nick)
         SELECT $1, ts, p, bp, x, t, 'groupchat', n
         FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[]) WITH ORDINALITY AS u(ts, p, bp, x, t, n, o) ORDER BY o`,
        [roomJid, cols.a, cols.b, cols.c, cols.d, cols.e, cols.f]);
    } else {
      await pg.query(
        `INSERT INTO archive (archive, stanza_id, stamp, from_jid, real_jid, body, stanza, tsv)
         SELECT $1, s, t, f, r, b, x, archive_tsv(b)
         FROM unnest($2::text[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[]) WITH ORDINALITY AS u(s, t, f, r, b, x, o) ORDER BY o`,
        [roomJid, cols.a, cols.b, cols.c, cols.d, cols.e, cols.f]);
    }
    if (to === arch.n || (to / batch) % 20 === 0) log(`${server}: ${to.toLocaleString('en-US')} / ${arch.n.toLocaleString('en-US')} rows (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  }
  const insertS = (Date.now() - t0) / 1000;
  const table = server === 'prosody' ? 'prosodyarchive' : 'archive';
  const t1 = Date.now();
  await pg.query(`VACUUM ANALYZE ${table}`);
  return { rows: arch.n, insert_s: Math.round(insertS * 10) / 10, vacuum_s: Math.round((Date.now() - t1) / 100) / 10, table };
}

/** Exactly how each server's rows are written, for the report. */
export const LOAD_DESCRIPTION = {
  prosody: "`prosodyarchive` (mod_storage_sql): host = MUC service, user = room node, store = `muc_log`, key = random UUID, when = unix seconds, with = `message<groupchat`, type = `xml`, value = the stanza Prosody stored for the template message (from = room/nick, occupant-id) with body, nick and id replaced",
  ejabberd: '`archive` (/usr/share/ejabberd/sql/pg.sql, old schema): username = room JID, timestamp = µs (also the archive id), peer = sender\'s full real JID, bare_peer = its bare JID, xml = the stanza ejabberd stored for the template message (from = real JID) with body, sender and id replaced, txt = body, kind = `groupchat`, nick',
  perch: '`archive` (storage/migrations.ts): archive = room JID, stanza_id = random id shaped like the server\'s own, stamp, from_jid = room/nick, real_jid = sender\'s bare JID, body, stanza = the stanza Perch stored for the template message with body, nick, sender and ids replaced; `tsv` = archive_tsv(body), as the server\'s append fills it, and `archive_count` kept by the schema\'s own statement triggers',
};
