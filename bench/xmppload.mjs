#!/usr/bin/env node
// Raw-XMPP c2s load generator for any server (net, tls and crypto only, no dependencies).
//
//   node bench/xmppload.mjs --scenario login --host 127.0.0.1 --port 5222 --domain example.org \
//        --users 2000 --concurrency 50 --server-pid 1234
//   node bench/xmppload.mjs --scenario chat --pairs 500 --rate 2 --messages 20 ...   (fixed offered rate)
//   node bench/xmppload.mjs --scenario chat --pairs 500 --window 10 --messages 20 ... (saturation)
//   node bench/xmppload.mjs --scenario register --users 2001 ...                     (XEP-0077 provisioning)
//
// Prints a human summary, then one JSON line per scenario (also appended to --out FILE).
// Accounts are <prefix><n> for n = user-start … user-start+count-1, password from a template where
// {n} is the number and {user} the username.
import net from 'node:net';
import tls from 'node:tls';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { processCpuSec, machineCpuSec, StorageMeter, chargeStorage } from './resources.mjs';

const NS_SASL = 'urn:ietf:params:xml:ns:xmpp-sasl';
const NS_TLS = 'urn:ietf:params:xml:ns:xmpp-tls';
const NS_BIND = 'urn:ietf:params:xml:ns:xmpp-bind';
const NS_SESSION = 'urn:ietf:params:xml:ns:xmpp-session';

/** CLOCK_MONOTONIC in ms: the same clock in every process of the host, so workers' times compare. */
const DEBUG = process.env.XMPPLOAD_DEBUG === '1';
const nowMs = () => Number(process.hrtime.bigint()) / 1e6;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/'/g, '&apos;').replace(/"/g, '&quot;');
const ENTITIES = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };
const unesc = (s) => (s.indexOf('&') === -1 ? s : s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);/g, (m, e) =>
  e[0] === '#' ? String.fromCodePoint(e[1] === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10)) : (ENTITIES[e] ?? m)));

// ---------------------------------------------------------------------------------------------
// XML: a small streaming parser for what servers send. Not a validator: it trusts the server to be
// well-formed and only builds {name, attrs, children, text} trees of depth-1 elements.

const localName = (n) => { const i = n.indexOf(':'); return i === -1 ? n : n.slice(i + 1); };
const ATTR = /([^\s=/]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/g;

class El {
  constructor(name, attrs) { this.name = name; this.attrs = attrs; this.children = []; this.text = ''; }
  child(name) { for (const c of this.children) if (localName(c.name) === name) return c; return null; }
  is(name) { return localName(this.name) === name; }
  toString() {
    const a = Object.entries(this.attrs).map(([k, v]) => ` ${k}='${esc(v)}'`).join('');
    return `<${this.name}${a}>${esc(this.text)}${this.children.map(String).join('')}</${this.name}>`;
  }
}

class StreamParser {
  constructor(h) { this.h = h; this.buf = ''; this.stack = []; }
  reset() { this.buf = ''; this.stack = []; }
  write(str) {
    const buf = this.buf.length ? this.buf + str : str;
    const len = buf.length;
    let pos = 0;
    while (pos < len) {
      const lt = buf.indexOf('<', pos);
      if (lt === -1) break; // keep trailing text: an entity may be split across reads
      if (lt > pos) this.text(buf.slice(pos, lt));
      pos = lt;
      const c1 = buf.charCodeAt(pos + 1);
      if (c1 !== c1) break; // NaN: need more data
      if (c1 === 63 /* ? */ || c1 === 33 /* ! */) {
        const end = buf.indexOf('>', pos);
        if (end === -1) break;
        pos = end + 1;
        continue;
      }
      // find the '>' closing this tag, outside quoted attribute values
      let i = pos + 1, q = 0;
      for (; i < len; i++) {
        const c = buf.charCodeAt(i);
        if (q) { if (c === q) q = 0; } else if (c === 39 || c === 34) q = c; else if (c === 62) break;
      }
      if (i >= len) break;
      const tag = buf.slice(pos + 1, i);
      pos = i + 1;
      if (c1 === 47 /* / */) this.close();
      else this.open(tag);
    }
    this.buf = pos < len ? buf.slice(pos) : '';
  }
  text(t) { const top = this.stack[this.stack.length - 1]; if (top) top.text += unesc(t); }
  open(tag) {
    const selfClosing = tag.charCodeAt(tag.length - 1) === 47;
    if (selfClosing) tag = tag.slice(0, -1);
    const sp = tag.search(/\s/);
    const name = sp === -1 ? tag : tag.slice(0, sp);
    const attrs = {};
    if (sp !== -1) { ATTR.lastIndex = sp; let m; while ((m = ATTR.exec(tag))) attrs[m[1]] = unesc(m[2] ?? m[3]); }
    if (this.stack.length === 0 && localName(name) === 'stream' && !selfClosing) { this.stack.push(null); this.h.streamStart(attrs); return; }
    const el = new El(name, attrs);
    const parent = this.stack[this.stack.length - 1];
    if (parent) parent.children.push(el);
    if (selfClosing) { if (!parent) this.h.stanza(el); } else this.stack.push(el);
  }
  close() {
    const el = this.stack.pop();
    if (el === null) { this.h.streamEnd(); return; }
    if (el && this.stack[this.stack.length - 1] === null) this.h.stanza(el);
  }
}

// ---------------------------------------------------------------------------------------------
// SCRAM (RFC 5802) with a SaltedPassword cache: RFC 5802 §5.1 lets a client keep SaltedPassword per
// (password, salt, iterations), which keeps the generator's own PBKDF2 out of the measured login cost.

const scramCache = new Map();
let scramCacheFile = null;
let scramCacheDirty = false;
const scramStats = { pbkdf2: 0, cacheHits: 0 };

function loadScramCache(file) {
  scramCacheFile = file;
  try { for (const [k, v] of Object.entries(JSON.parse(fs.readFileSync(file, 'utf8')))) scramCache.set(k, Buffer.from(v, 'base64')); } catch { /* none yet */ }
}
function saveScramCache() {
  if (!scramCacheFile || !scramCacheDirty) return;
  let obj = {};
  try { obj = JSON.parse(fs.readFileSync(scramCacheFile, 'utf8')); } catch { /* none yet */ }
  for (const [k, v] of scramCache) obj[k] = v.toString('base64');
  const tmp = `${scramCacheFile}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(obj));
  fs.renameSync(tmp, scramCacheFile);
  scramCacheDirty = false;
}
function saltedPassword(alg, password, salt, iterations) {
  const key = `${alg}\0${password}\0${salt.toString('base64')}\0${iterations}`;
  const hit = scramCache.get(key);
  if (hit) { scramStats.cacheHits++; return Promise.resolve(hit); }
  scramStats.pbkdf2++;
  return new Promise((resolve, reject) => crypto.pbkdf2(password, salt, iterations, alg === 'sha1' ? 20 : 32, alg, (err, out) => {
    if (err) return reject(err);
    scramCache.set(key, out);
    scramCacheDirty = true;
    resolve(out);
  }));
}
const hmac = (alg, key, data) => crypto.createHmac(alg, key).update(data).digest();

class Scram {
  constructor(mech, user, password) {
    this.alg = mech === 'SCRAM-SHA-256' ? 'sha256' : 'sha1';
    this.password = password;
    this.nonce = crypto.randomBytes(18).toString('base64');
    this.firstBare = `n=${user.replace(/=/g, '=3D').replace(/,/g, '=2C')},r=${this.nonce}`;
  }
  first() { return Buffer.from(`n,,${this.firstBare}`).toString('base64'); }
  async final(challenge) {
    const serverFirst = Buffer.from(challenge, 'base64').toString();
    const a = Object.fromEntries(serverFirst.split(',').map((kv) => [kv[0], kv.slice(2)]));
    if (!a.r?.startsWith(this.nonce) || !a.s || !a.i) throw new Error(`SCRAM: bad server-first ${serverFirst}`);
    const sp = await saltedPassword(this.alg, this.password, Buffer.from(a.s, 'base64'), parseInt(a.i, 10));
    const clientKey = hmac(this.alg, sp, 'Client Key');
    const storedKey = crypto.createHash(this.alg).update(clientKey).digest();
    const withoutProof = `c=biws,r=${a.r}`;
    const authMessage = `${this.firstBare},${serverFirst},${withoutProof}`;
    const sig = hmac(this.alg, storedKey, authMessage);
    for (let i = 0; i < sig.length; i++) sig[i] ^= clientKey[i];
    this.serverSignature = hmac(this.alg, hmac(this.alg, sp, 'Server Key'), authMessage).toString('base64');
    return Buffer.from(`${withoutProof},p=${sig.toString('base64')}`).toString('base64');
  }
  verify(b64) {
    const m = /(?:^|,)v=([^,]+)/.exec(Buffer.from(b64, 'base64').toString());
    return m !== null && m[1] === this.serverSignature;
  }
}

// ---------------------------------------------------------------------------------------------
// Client

let idSeq = 0;

class Client {
  constructor(o, n) {
    this.o = o;
    this.n = n;
    this.user = `${o.userPrefix}${n}`;
    this.password = o.password.replace(/\{n\}/g, String(n)).replace(/\{user\}/g, `${o.userPrefix}${n}`);
    this.bare = `${this.user}@${o.domain}`;
    this.sock = null;
    this.closed = false;
    this.waiter = null;
    this.iqs = new Map();
    this.onMessage = null;
    this.parser = new StreamParser({
      streamStart: () => {},
      stanza: (el) => this.dispatch(el),
      streamEnd: () => this.fail(new Error('server closed the stream')),
    });
  }

  dispatch(el) {
    if (DEBUG) console.error(`[${this.user}] <- ${el.toString().slice(0, 400)}`);
    if (this.waiter) { const w = this.waiter; this.waiter = null; clearTimeout(w.timer); return w.resolve(el); }
    const name = el.name;
    if (name === 'message') { if (this.onMessage) this.onMessage(el); return; }
    if (name === 'iq') {
      const type = el.attrs.type;
      if (type === 'result' || type === 'error') {
        const p = this.iqs.get(el.attrs.id);
        if (p) { this.iqs.delete(el.attrs.id); clearTimeout(p.timer); p.resolve(el); }
        return;
      }
      // answer pings, refuse anything else, so the server never waits on us
      const to = el.attrs.from ? ` to='${esc(el.attrs.from)}'` : '';
      if (el.child('ping')) this.send(`<iq type='result' id='${esc(el.attrs.id)}'${to}/>`);
      else this.send(`<iq type='error' id='${esc(el.attrs.id)}'${to}><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`);
      return;
    }
    if (el.is('error') && el.name.startsWith('stream')) this.fail(new Error(`stream error: ${el.toString().slice(0, 200)}`));
  }

  fail(err) {
    if (this.closed) return;
    this.closed = true;
    this.error = err;
    if (this.waiter) { clearTimeout(this.waiter.timer); this.waiter.reject(err); this.waiter = null; }
    for (const p of this.iqs.values()) { clearTimeout(p.timer); p.reject(err); }
    this.iqs.clear();
    this.sock?.destroy();
    this.onClose?.();
  }

  next() {
    return new Promise((resolve, reject) => {
      if (this.closed) return reject(this.error ?? new Error('closed'));
      const timer = setTimeout(() => { this.waiter = null; reject(new Error('timeout waiting for the server')); }, this.o.timeout);
      this.waiter = { resolve, reject, timer };
    });
  }

  send(s) {
    if (DEBUG) console.error(`[${this.user}] -> ${s.slice(0, 400)}`);
    if (!this.closed) this.sock.write(s);
  }

  iq(type, payload, to) {
    const id = `q${(++idSeq).toString(36)}`;
    return new Promise((resolve, reject) => {
      if (this.closed) return reject(this.error ?? new Error('closed'));
      const timer = setTimeout(() => { this.iqs.delete(id); reject(new Error(`iq ${id} timed out`)); }, this.o.timeout);
      this.iqs.set(id, { resolve, reject, timer });
      this.send(`<iq type='${type}' id='${id}'${to ? ` to='${esc(to)}'` : ''}>${payload}</iq>`);
    });
  }

  attach(sock) {
    this.sock = sock;
    sock.setEncoding('utf8');
    sock.on('data', (d) => this.parser.write(d));
    sock.on('error', (e) => this.fail(e));
    sock.on('close', () => this.fail(new Error('socket closed')));
  }

  connect() {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: this.o.host, port: this.o.port });
      s.setNoDelay(true);
      const timer = setTimeout(() => { s.destroy(); reject(new Error('connect timed out')); }, this.o.timeout);
      s.once('connect', () => { clearTimeout(timer); resolve(); });
      s.once('error', (e) => { clearTimeout(timer); reject(e); });
      this.attach(s);
    });
  }

  async openStream() {
    this.parser.reset();
    this.send(`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='${esc(this.o.domain)}' version='1.0' xml:lang='en'>`);
    const f = await this.next();
    if (!f.is('features')) throw new Error(`expected stream features, got ${f.toString().slice(0, 200)}`);
    return f;
  }

  async starttls() {
    this.send(`<starttls xmlns='${NS_TLS}'/>`);
    const r = await this.next();
    if (!r.is('proceed')) throw new Error(`STARTTLS refused: ${r.toString().slice(0, 200)}`);
    const raw = this.sock;
    raw.removeAllListeners('data');
    raw.removeAllListeners('close');
    raw.removeAllListeners('error');
    await new Promise((resolve, reject) => {
      const s = tls.connect({ socket: raw, servername: this.o.domain, rejectUnauthorized: false }, resolve);
      s.once('error', reject);
      this.attach(s);
    });
  }

  /** TCP → stream → (STARTTLS) → SASL → bind → (session) → presence → ping reply. Returns step times (ms). */
  async login() {
    const t0 = nowMs();
    const steps = {};
    await this.connect();
    steps.tcp = nowMs() - t0;
    let f = await this.openStream();
    if (this.o.tls === 'starttls') {
      if (!f.child('starttls')) throw new Error('server offers no STARTTLS');
      await this.starttls();
      f = await this.openStream();
      steps.tls = nowMs() - t0;
    }
    const offered = (f.child('mechanisms')?.children ?? []).map((m) => m.text.trim());
    const mech = this.o.mech;
    if (!offered.includes(mech)) throw new Error(`${mech} not offered (offered: ${offered.join(', ')})`);
    if (mech === 'PLAIN') {
      this.send(`<auth xmlns='${NS_SASL}' mechanism='PLAIN'>${Buffer.from(`\0${this.user}\0${this.password}`).toString('base64')}</auth>`);
      const r = await this.next();
      if (!r.is('success')) throw new Error(`auth failed: ${r.toString().slice(0, 200)}`);
    } else {
      const sc = new Scram(mech, this.user, this.password);
      this.send(`<auth xmlns='${NS_SASL}' mechanism='${mech}'>${sc.first()}</auth>`);
      let r = await this.next();
      if (!r.is('challenge')) throw new Error(`auth failed: ${r.toString().slice(0, 200)}`);
      this.send(`<response xmlns='${NS_SASL}'>${await sc.final(r.text.trim())}</response>`);
      r = await this.next();
      if (r.is('challenge')) { // RFC 6120 §6.3.10 allows the v= in a challenge
        if (!sc.verify(r.text.trim())) throw new Error('SCRAM: bad server signature');
        this.send(`<response xmlns='${NS_SASL}'/>`);
        r = await this.next();
      } else if (r.is('success') && !sc.verify(r.text.trim())) throw new Error('SCRAM: bad server signature');
      if (!r.is('success')) throw new Error(`auth failed: ${r.toString().slice(0, 200)}`);
    }
    steps.auth = nowMs() - t0;
    f = await this.openStream();
    const bind = await this.iq('set', `<bind xmlns='${NS_BIND}'><resource>${esc(this.o.resource)}</resource></bind>`);
    if (bind.attrs.type !== 'result') throw new Error(`bind failed: ${bind.toString().slice(0, 200)}`);
    this.jid = bind.child('bind')?.child('jid')?.text ?? `${this.bare}/${this.o.resource}`;
    const session = f.child('session');
    if (session && session.attrs.xmlns === NS_SESSION && !session.child('optional')) {
      const r = await this.iq('set', `<session xmlns='${NS_SESSION}'/>`);
      if (r.attrs.type !== 'result') throw new Error(`session failed: ${r.toString().slice(0, 200)}`);
    }
    steps.bind = nowMs() - t0;
    this.send('<presence/>');
    // the ping's reply (any type) proves that the server has processed the initial presence before it
    await this.iq('get', "<ping xmlns='urn:xmpp:ping'/>", this.o.domain);
    steps.total = nowMs() - t0;
    return steps;
  }

  /** XEP-0077 registration on an unauthenticated stream: 'created' or 'exists'. */
  async register() {
    await this.connect();
    const f = await this.openStream();
    if (this.o.tls === 'starttls' && f.child('starttls')) { await this.starttls(); await this.openStream(); }
    const r = await this.iq('set', `<query xmlns='jabber:iq:register'><username>${esc(this.user)}</username><password>${esc(this.password)}</password></query>`);
    await this.close();
    if (r.attrs.type === 'result') return 'created';
    if (r.toString().includes('conflict')) return 'exists';
    throw new Error(`registration failed: ${r.toString().slice(0, 200)}`);
  }

  close(timeoutMs = 5000) {
    return new Promise((resolve) => {
      if (this.closed || !this.sock) { this.closed = true; return resolve(); }
      const timer = setTimeout(() => { this.sock.destroy(); resolve(); }, timeoutMs);
      this.onClose = () => { clearTimeout(timer); resolve(); };
      this.sock.end(`<presence type='unavailable'/></stream:stream>`);
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Work hosted by each generator process (the main one, or forked workers). The coordinator calls
// the same commands on every host, in-process or over IPC.

const host = {
  o: null,
  clients: new Map(), // n -> Client
  errors: [],
  cpu0: null,

  async init(o) {
    this.o = o;
    if (o.scramCache) loadScramCache(o.scramCache);
    return { pid: process.pid };
  },

  /** Runs fn over items with at most `concurrency` in flight. */
  async pool(items, concurrency, fn) {
    let next = 0;
    const runOne = async () => { while (next < items.length) await fn(items[next++]); };
    await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, runOne));
  },

  noteError(e) { if (this.errors.length < 5) this.errors.push(String(e?.message ?? e)); },

  async register({ ns, concurrency }) {
    const out = { created: 0, exists: 0, failed: 0 };
    const t0 = nowMs();
    await this.pool(ns, concurrency, async (n) => {
      try { out[await new Client(this.o, n).register()]++; } catch (e) { out.failed++; this.noteError(e); }
    });
    return { ...out, t0, t1: nowMs(), errors: this.errors.splice(0) };
  },

  async login({ ns, concurrency }) {
    const lat = [], steps = { tcp: [], tls: [], auth: [], bind: [] };
    let ok = 0, failed = 0, first = Infinity, last = 0;
    const pbkdf2Before = scramStats.pbkdf2;
    await this.pool(ns, concurrency, async (n) => {
      const c = new Client(this.o, n);
      const t = nowMs();
      if (t < first) first = t;
      try {
        const s = await c.login();
        ok++;
        lat.push(s.total);
        for (const k in steps) if (s[k] !== undefined) steps[k].push(s[k]);
        this.clients.set(n, c);
        const end = nowMs();
        if (end > last) last = end;
      } catch (e) { failed++; this.noteError(e); c.fail(e); }
    });
    saveScramCache();
    return { ok, failed, first, last, lat, steps, pbkdf2: scramStats.pbkdf2 - pbkdf2Before, errors: this.errors.splice(0) };
  },

  async logout() {
    const cs = [...this.clients.values()];
    this.clients.clear();
    const t0 = nowMs();
    await this.pool(cs, 200, (c) => c.close());
    return { closed: cs.length, ms: nowMs() - t0 };
  },

  /** Pairs are (a, b) user numbers, both logged in here; a sends to b's bare JID and b to a's. */
  async chat({ pairs, t0, rate, window, messages, drainMs, runId }) {
    const senders = [];
    const res = { sent: 0, delivered: 0, outOfOrder: 0, duplicates: 0, foreign: 0, errorsBack: 0, lat: [], firstSend: Infinity, lastRecv: 0, lastSend: 0 };
    const bySender = new Map();
    const mkSender = (from, to) => {
      const s = { from, to, nextSeq: 0, inflight: 0, done: 0, lastSeen: -1 };
      senders.push(s);
      bySender.set(from.n, s);
      return s;
    };
    for (const [a, b] of pairs) {
      const ca = this.clients.get(a), cb = this.clients.get(b);
      if (!ca || !cb) continue;
      mkSender(ca, cb);
      mkSender(cb, ca);
    }
    let allDone;
    const finished = new Promise((r) => { allDone = r; });
    const expected = senders.length * messages;
    let settled = 0; // delivered or bounced
    const settle = () => { if (++settled === expected) allDone(); };
    const sendOne = (s) => {
      const seq = s.nextSeq++;
      const t = nowMs();
      if (t < res.firstSend) res.firstSend = t;
      res.lastSend = t;
      s.inflight++;
      res.sent++;
      s.from.send(`<message to='${s.to.bare}' type='chat' id='m${seq}'><body>${runId}|${s.from.n}|${seq}|${t.toFixed(3)}</body></message>`);
    };
    const pump = (s) => { while (s.inflight < window && s.nextSeq < messages && !s.from.closed) sendOne(s); };
    for (const s of senders) {
      const receiver = s.to;
      receiver.onMessage = (el) => {
        const now = nowMs();
        if (el.attrs.type === 'error') { // our own message bounced back to its sender
          res.errorsBack++;
          if (this.errors.length < 5) this.errors.push(`message error: ${el.toString().slice(0, 300)}`);
          const own = bySender.get(receiver.n);
          if (own) { own.inflight--; settle(); if (window) pump(own); }
          return;
        }
        const body = el.child('body')?.text;
        const parts = body ? body.split('|') : [];
        if (parts[0] !== runId) { res.foreign++; return; }
        const from = bySender.get(Number(parts[1]));
        const seq = Number(parts[2]);
        if (!from || from.to !== receiver) { res.foreign++; return; }
        if (seq <= from.lastSeen) { res.duplicates++; return; }
        if (seq !== from.lastSeen + 1) res.outOfOrder++;
        from.lastSeen = seq;
        res.delivered++;
        res.lat.push(now - Number(parts[3]));
        if (now > res.lastRecv) res.lastRecv = now;
        from.inflight--;
        settle();
        if (window) pump(from);
      };
    }
    await sleep(Math.max(0, t0 - nowMs()));
    if (expected === 0) allDone();
    if (window) {
      for (const s of senders) pump(s);
    } else {
      // fixed offered rate: every sender sends at `rate` msg/s with a random phase; one timeline for all
      const period = 1000 / rate;
      const events = [];
      for (const s of senders) {
        const phase = Math.random() * period;
        for (let k = 0; k < messages; k++) events.push([t0 + phase + k * period, s]);
      }
      events.sort((x, y) => x[0] - y[0]);
      let i = 0;
      await new Promise((resolve) => {
        const tick = () => {
          const now = nowMs();
          while (i < events.length && events[i][0] <= now) { const s = events[i++][1]; if (!s.from.closed) sendOne(s); }
          if (i >= events.length) return resolve();
          setTimeout(tick, Math.max(0, Math.min(events[i][0] - nowMs(), 20)));
        };
        tick();
      });
    }
    // wait for everything to arrive; the drain clock restarts whenever something is delivered
    let lastProgress = settled, lastChange = nowMs();
    while (settled < expected) {
      const r = await Promise.race([finished.then(() => 'done'), sleep(200)]);
      if (r === 'done') break;
      if (settled !== lastProgress) { lastProgress = settled; lastChange = nowMs(); }
      if (window && senders.every((s) => s.nextSeq >= messages || s.from.closed) && nowMs() - lastChange > drainMs) break;
      if (!window && nowMs() - Math.max(lastChange, res.lastSend) > drainMs) break;
    }
    for (const s of senders) s.to.onMessage = null;
    res.expected = expected;
    res.disconnected = senders.filter((s) => s.from.closed).length;
    res.errors = this.errors.splice(0);
    return res;
  },

  cpuStart() { this.cpu0 = { u: process.cpuUsage(), t: nowMs() }; return true; },
  cpu() {
    const u = process.cpuUsage(this.cpu0.u);
    return { pid: process.pid, cpuMs: (u.user + u.system) / 1000, wallMs: nowMs() - this.cpu0.t };
  },
};

// ---------------------------------------------------------------------------------------------
// Coordinator side: hosts in-process or in forked workers

function localAgent() {
  return { call: (cmd, args) => host[cmd](args), close: async () => {} };
}

function workerAgent() {
  const child = fork(fileURLToPath(import.meta.url), ['--worker-child'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const pending = new Map();
  let seq = 0;
  child.on('message', (m) => {
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (m.error) p.reject(new Error(m.error)); else p.resolve(m.result);
  });
  child.on('exit', (code) => { for (const p of pending.values()) p.reject(new Error(`worker exited with ${code}`)); pending.clear(); });
  return {
    call: (cmd, args) => new Promise((resolve, reject) => { const id = ++seq; pending.set(id, { resolve, reject }); child.send({ id, cmd, args }); }),
    close: async () => { child.disconnect(); await new Promise((r) => child.once('exit', r)); },
  };
}

function runWorkerChild() {
  process.on('message', async (m) => {
    try { process.send({ id: m.id, result: await host[m.cmd](m.args) }); } catch (e) { process.send({ id: m.id, error: String(e?.stack ?? e) }); }
  });
  process.on('disconnect', () => process.exit(0));
}

// ---------------------------------------------------------------------------------------------
// Measurement helpers

function pct(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}
function summary(values) {
  const s = Float64Array.from(values).sort();
  if (!s.length) return { n: 0, p50: null, p99: null, max: null, mean: null };
  const round = (v) => Math.round(v * 100) / 100;
  return { n: s.length, p50: round(pct(s, 50)), p90: round(pct(s, 90)), p99: round(pct(s, 99)), max: round(s[s.length - 1]), mean: round(s.reduce((a, b) => a + b, 0) / s.length) };
}
function rssKb(pids) {
  let total = 0;
  for (const pid of pids) {
    const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    total += m ? Number(m[1]) : 0;
  }
  return total;
}
async function rssMedian(pids, samples = 5, gapMs = 200) {
  const v = [];
  for (let i = 0; i < samples; i++) { v.push(rssKb(pids)); if (i < samples - 1) await sleep(gapMs); }
  return v.sort((a, b) => a - b)[Math.floor(v.length / 2)];
}
const serverCpuSec = (pids) => pids.reduce((a, p) => a + (processCpuSec(p) ?? 0), 0);

/**
 * CPU over a measured phase, in % of one core: the server (its pids), its PostgreSQL backends (--db-name) and
 * its Redis (--redis-port), the load generator's processes, and "other" (the machine's busy time less all of
 * those: other jobs on the host, and the kernel's loopback work).
 */
class Meter {
  constructor(agents, pids, storage) { this.agents = agents; this.pids = pids; this.storage = storage; }
  async start() {
    await Promise.all(this.agents.map((a) => a.call('cpuStart')));
    this.storageMeter = new StorageMeter(this.storage).start();
    this.t0 = nowMs();
    this.srv0 = this.pids.length ? serverCpuSec(this.pids) : 0;
    this.m0 = machineCpuSec().busy;
  }
  async stop() {
    const wall = nowMs() - this.t0;
    const server = this.pids.length ? ((serverCpuSec(this.pids) - this.srv0) * 1000) / wall * 100 : null;
    const machine = (machineCpuSec().busy - this.m0) * 1000 / wall * 100;
    const storage = this.storageMeter.stop();
    const procs = await Promise.all(this.agents.map((a) => a.call('cpu')));
    const loadgenProcs = procs.map((p) => Math.round((p.cpuMs / p.wallMs) * 1000) / 10);
    const loadgen = loadgenProcs.reduce((a, b) => a + b, 0);
    const r1 = (v) => (v === null ? null : Math.round(v * 10) / 10);
    return chargeStorage({
      wall_s: r1(wall / 1000), server_cpu_pct: r1(server), loadgen_cpu_pct: r1(loadgen), loadgen_procs_cpu_pct: loadgenProcs,
      loadgen_saturated: loadgenProcs.some((p) => p > 90), machine_busy_pct: r1(machine),
      other_cpu_pct: r1(machine - (server ?? 0) - loadgen),
    }, storage);
  }
}

// ---------------------------------------------------------------------------------------------
// Scenarios (coordinator)

const split = (items, k) => Array.from({ length: k }, (_, w) => items.filter((_, i) => i % k === w));
const range = (start, count) => Array.from({ length: count }, (_, i) => start + i);
const fmt = (v, d = 1) => (v === null || v === undefined ? '–' : Number(v).toFixed(d));

async function scenarioRegister(o, agents, pids) {
  const ns = range(o.userStart, o.users);
  const meter = new Meter(agents, pids, { dbName: o.dbName, redisPort: o.redisPort });
  await meter.start();
  const parts = await Promise.all(split(ns, agents.length).map((part, i) => agents[i].call('register', { ns: part, concurrency: Math.ceil(o.concurrency / agents.length) })));
  const res = await meter.stop();
  const sum = (k) => parts.reduce((a, p) => a + p[k], 0);
  const t0 = Math.min(...parts.map((p) => p.t0)), t1 = Math.max(...parts.map((p) => p.t1));
  const out = { created: sum('created'), exists: sum('exists'), failed: sum('failed'), per_s: Math.round(((sum('created') + sum('exists')) / (t1 - t0)) * 1000), errors: parts.flatMap((p) => p.errors).slice(0, 5), resources: res };
  console.log(`register: ${out.created} created, ${out.exists} existed, ${out.failed} failed, ${out.per_s}/s`);
  for (const e of out.errors) console.log(`  error: ${e}`);
  return out;
}

async function loginAll(agents, ns, concurrency) {
  const parts = await Promise.all(split(ns, agents.length).map((part, i) => agents[i].call('login', { ns: part, concurrency: Math.max(1, Math.round(concurrency / agents.length)) })));
  const ok = parts.reduce((a, p) => a + p.ok, 0);
  const failed = parts.reduce((a, p) => a + p.failed, 0);
  const first = Math.min(...parts.map((p) => p.first)), last = Math.max(...parts.map((p) => p.last));
  const steps = {};
  for (const k of ['tcp', 'tls', 'auth', 'bind']) {
    const all = parts.flatMap((p) => p.steps[k]);
    if (all.length) steps[k] = summary(all);
  }
  return {
    ok, failed, per_s: ok > 0 ? Math.round((ok / (last - first)) * 10000) / 10 : 0, latency_ms: summary(parts.flatMap((p) => p.lat)), steps_ms: steps,
    client_pbkdf2_computed: parts.reduce((a, p) => a + p.pbkdf2, 0), errors: parts.flatMap((p) => p.errors).slice(0, 5),
  };
}

async function scenarioLogin(o, agents, pids) {
  const ns = range(o.userStart, o.users);
  const rssBefore = pids.length ? await rssMedian(pids, 3, 100) : null;
  const meter = new Meter(agents, pids, { dbName: o.dbName, redisPort: o.redisPort });
  await meter.start();
  const r = await loginAll(agents, ns, o.concurrency);
  const resources = await meter.stop();
  await sleep(o.holdMs);
  const rssAfter = pids.length ? await rssMedian(pids) : null;
  const logout = await Promise.all(agents.map((a) => a.call('logout')));
  const out = {
    ...r, rss_before_kb: rssBefore, rss_after_kb: rssAfter,
    kb_per_session: rssBefore !== null && r.ok ? Math.round(((rssAfter - rssBefore) / r.ok) * 10) / 10 : null,
    logout_ms: Math.round(Math.max(...logout.map((l) => l.ms))), resources,
  };
  const L = out.latency_ms;
  console.log(`login: ${out.ok}/${o.users} ok (${out.failed} failed), ${out.per_s} logins/s, latency p50 ${fmt(L.p50)} / p99 ${fmt(L.p99)} / max ${fmt(L.max)} ms`);
  console.log(`  steps p50 ms: ${Object.entries(out.steps_ms).map(([k, v]) => `${k} ${fmt(v.p50)}`).join(', ')}; client PBKDF2 computed: ${out.client_pbkdf2_computed}`);
  if (rssBefore !== null) console.log(`  server RSS ${(rssBefore / 1024).toFixed(1)} → ${(rssAfter / 1024).toFixed(1)} MiB: ${out.kb_per_session} kB per idle session`);
  printResources(resources);
  for (const e of out.errors) console.log(`  error: ${e}`);
  return out;
}

async function scenarioChat(o, agents, pids) {
  const pairs = range(0, o.pairs).map((i) => [o.userStart + 2 * i, o.userStart + 2 * i + 1]);
  const perAgent = split(pairs, agents.length);
  const login = await Promise.all(perAgent.map((ps, i) => agents[i].call('login', { ns: ps.flat(), concurrency: Math.max(1, Math.round(o.concurrency / agents.length)) })));
  const loggedIn = login.reduce((a, p) => a + p.ok, 0);
  console.log(`chat: ${loggedIn}/${pairs.length * 2} clients online`);
  for (const e of login.flatMap((p) => p.errors).slice(0, 5)) console.log(`  login error: ${e}`);
  await sleep(500); // let presence processing settle before measuring
  const runId = crypto.randomBytes(4).toString('hex');
  const meter = new Meter(agents, pids, { dbName: o.dbName, redisPort: o.redisPort });
  await meter.start();
  const t0 = nowMs() + 200;
  const parts = await Promise.all(perAgent.map((ps, i) => agents[i].call('chat', { pairs: ps, t0, rate: o.rate, window: o.window, messages: o.messages, drainMs: o.drainMs, runId })));
  const resources = await meter.stop();
  await Promise.all(agents.map((a) => a.call('logout')));
  const sum = (k) => parts.reduce((a, p) => a + p[k], 0);
  const firstSend = Math.min(...parts.map((p) => p.firstSend)), lastRecv = Math.max(...parts.map((p) => p.lastRecv));
  const lastSend = Math.max(...parts.map((p) => p.lastSend));
  const delivered = sum('delivered');
  const out = {
    mode: o.window ? `saturation (window ${o.window} per sender)` : `fixed rate ${o.rate} msg/s per sender`,
    offered_per_s: o.window ? null : o.rate * pairs.length * 2, senders: pairs.length * 2, online: loggedIn,
    expected: sum('expected'), sent: sum('sent'), delivered, errors_back: sum('errorsBack'),
    out_of_order: sum('outOfOrder'), duplicates: sum('duplicates'), foreign: sum('foreign'), disconnected: sum('disconnected'),
    all_delivered_in_order: delivered === pairs.length * 2 * o.messages && sum('outOfOrder') === 0 && sum('duplicates') === 0,
    delivered_per_s: delivered > 0 ? Math.round((delivered / (lastRecv - firstSend)) * 1000) : 0,
    send_duration_s: Math.round(lastSend - firstSend) / 1000,
    latency_ms: summary(parts.flatMap((p) => p.lat)), errors: parts.flatMap((p) => p.errors).slice(0, 5), resources,
  };
  const L = out.latency_ms;
  console.log(`chat ${out.mode}: ${delivered}/${out.expected} delivered${out.all_delivered_in_order ? ', all in order' : ''}, ${out.delivered_per_s} delivered/s, latency p50 ${fmt(L.p50, 2)} / p99 ${fmt(L.p99, 2)} / max ${fmt(L.max)} ms`);
  if (!out.all_delivered_in_order) console.log(`  bounced ${out.errors_back}, out of order ${out.out_of_order}, duplicates ${out.duplicates}, foreign ${out.foreign}, senders disconnected ${out.disconnected}`);
  printResources(resources);
  for (const e of out.errors) console.log(`  error: ${e}`);
  return out;
}

function printResources(r) {
  const storage = `${r.db_cpu_pct !== undefined ? `, its PostgreSQL backends ${fmt(r.db_cpu_pct, 0)}%` : ''}${r.redis_cpu_pct !== undefined ? `, its Redis ${fmt(r.redis_cpu_pct, 0)}%` : ''}`;
  console.log(`  CPU over ${r.wall_s} s: server ${fmt(r.server_cpu_pct, 0)}%${storage}, load generator ${fmt(r.loadgen_cpu_pct, 0)}% (${r.loadgen_procs_cpu_pct.map((p) => `${p}%`).join(' + ')})${r.loadgen_saturated ? ' SATURATED: use --workers' : ''}, other ${fmt(r.other_cpu_pct, 0)}% (100% = one core)`);
}

// ---------------------------------------------------------------------------------------------
// CLI

const HELP = `usage: node bench/xmppload.mjs --scenario login|chat|register [options]
  --host H (127.0.0.1) --port P (5222) --domain D (localhost) --tls none|starttls (none)
  --mech SCRAM-SHA-1|SCRAM-SHA-256|PLAIN (SCRAM-SHA-1) --user-prefix S (user) --password T (bench-{n})
  --user-start N (1) --resource R (load) --timeout MS (30000) --scram-cache FILE
  --server-pid P[,P…] | --server-pidfile FILE     server processes for RSS and CPU
  --db-name DB --redis-port P   the server's storage: CPU of the PostgreSQL backends of DB and of the Redis on
                                127.0.0.1:P is reported beside the server's (db_cpu_pct, redis_cpu_pct)
  --workers N (1)        forked generator processes (clients spread round-robin)
  login:    --users N (2000) --concurrency C (50) --hold-ms MS (1500)
  chat:     --pairs P (500) --messages M per sender (20) and either --rate R msg/s per sender (2)
            or --window W in-flight messages per sender (saturation); --drain-ms MS (20000)
  register: --users N --concurrency C (XEP-0077)
  --label L --tag T --out FILE (append the JSON line)`;

function parseArgs(argv) {
  const o = {
    scenario: 'login', host: '127.0.0.1', port: 5222, domain: 'localhost', tls: 'none', mech: 'SCRAM-SHA-1',
    userPrefix: 'user', password: 'bench-{n}', userStart: 1, resource: 'load', timeout: 30000, scramCache: null,
    serverPid: [], workers: 1, users: 2000, concurrency: 50, holdMs: 1500, pairs: 500, messages: 20, rate: 2, window: 0,
    drainMs: 20000, label: '', tag: '', out: null, dbName: null, redisPort: null,
  };
  const numeric = new Set(['port', 'userStart', 'timeout', 'workers', 'users', 'concurrency', 'holdMs', 'pairs', 'messages', 'rate', 'window', 'drainMs', 'redisPort']);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-h' || a === '--help') { console.log(HELP); process.exit(0); }
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const key = a.slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    const v = argv[++i];
    if (v === undefined) throw new Error(`${a} needs a value`);
    if (key === 'serverPid') o.serverPid = v.split(',').map(Number);
    else if (key === 'serverPidfile') o.serverPid = fs.readFileSync(v, 'utf8').trim().split(/\s+/).map(Number);
    else if (!(key in o)) throw new Error(`unknown option ${a}\n${HELP}`);
    else o[key] = numeric.has(key) ? Number(v) : v;
  }
  return o;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const limit = setTimeout(() => { console.error('xmppload: overall time limit reached'); process.exit(3); }, Number(process.env.XMPPLOAD_MAX_SECONDS ?? 900) * 1000);
  limit.unref();
  const agents = o.workers > 1 ? Array.from({ length: o.workers }, workerAgent) : [localAgent()];
  const hostOpts = { host: o.host, port: o.port, domain: o.domain, tls: o.tls, mech: o.mech, userPrefix: o.userPrefix, password: o.password, resource: o.resource, timeout: o.timeout, scramCache: o.scramCache };
  await Promise.all(agents.map((a) => a.call('init', hostOpts)));
  const pids = o.serverPid.filter((p) => p > 0);
  const scenarios = { login: scenarioLogin, chat: scenarioChat, register: scenarioRegister };
  const run = scenarios[o.scenario];
  if (!run) throw new Error(`unknown scenario ${o.scenario}`);
  const started = new Date().toISOString();
  let result;
  try {
    result = await run(o, agents, pids);
  } finally {
    await Promise.all(agents.map((a) => a.close()));
  }
  const { scenario, label, tag, ...params } = o;
  delete params.out;
  const line = JSON.stringify({ scenario, label, tag, started, host: { cpus: os.cpus().length, node: process.version, loadavg: os.loadavg() }, params, result });
  console.log(line);
  if (o.out) fs.appendFileSync(o.out, `${line}\n`);
}

if (process.argv.includes('--worker-child')) runWorkerChild();
else main().catch((e) => { console.error(`xmppload: ${e?.stack ?? e}`); process.exit(1); });
