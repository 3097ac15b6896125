// Network-level fuzzing of a running Perch server: raw sockets, authenticated and not, send stanzas
// taken from the protocol and mutated (truncated, attributes swapped or made huge, random bytes,
// deep nesting, bad namespaces, unknown elements anywhere). Every input must get an answer (a reply,
// a stanza error or a stream error and a close) within a timeout, never a hang, never
// internal-server-error; a well-behaved client connected throughout must keep being served, and the
// server must stay up with bounded memory. Used by conformance/net-fuzz.test.ts (short) and
// bench/net-fuzz.mjs (minutes).
import { connectRaw, openSecureStream, rawLogin, sleep, type RawConnection, type RawSession } from './harness.js';

/** Server config for fuzzing: the limits a fuzzer trips on purpose, raised so that it keeps fuzzing rather than being throttled. */
export const NET_FUZZ_CONFIG = `limits: { authFailuresPerIp: 1000000, authFailuresPerAccount: 1000000 }\nmuc:\n  messagesPerSecond: 1000\n  messageBurst: 1000\n`;

export interface NetFuzzOptions {
  port: number;
  metricsPort: number;
  /** Accounts the fuzzing connections log in as (password 'pw'). */
  users: string[];
  /** The well-behaved client's account (password 'pw'). */
  watcher: string;
  /** A room of conference.localhost (the watcher creates it), for groupchat seeds. */
  room: string;
  durationMs: number;
  seed: number;
  /** Fuzzing connections at a time. */
  workers?: number;
  /** How long one input may go unanswered. */
  answerTimeoutMs?: number;
  /** Whether the server process is still alive. */
  alive: () => boolean;
  log?: (line: string) => void;
}

export interface NetFuzzReport {
  seed: number;
  inputs: number;
  connections: number;
  /** Inputs answered with the probe after them going through (no stream error). */
  handled: number;
  stanzaErrors: Record<string, number>;
  streamErrors: Record<string, number>;
  /** Inputs after which the stream closed without a stream error, by the input's element (e.g. a refused STARTTLS: failure, then close). */
  closedWithoutError: Record<string, number>;
  /** Findings: hangs, internal errors, wrong conditions; each with the input that caused it. */
  findings: { kind: string; input: string; detail: string; before?: string[] }[];
  watcher: { rounds: number; failures: number; maxRttMs: number };
  rssStartMb: number;
  rssEndMb: number;
  rssMaxMb: number;
  serverAlive: boolean;
  elapsedMs: number;
}

/** mulberry32: deterministic from the seed, so a finding can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const STANZA_NS = 'urn:ietf:params:xml:ns:xmpp-stanzas';
const STREAM_NS = 'urn:ietf:params:xml:ns:xmpp-streams';
/** Stream errors a fuzzed input may legitimately get (RFC 6120 §4.9.3). */
const ACCEPTABLE_STREAM_ERRORS = new Set([
  'bad-format', 'bad-namespace-prefix', 'invalid-from', 'invalid-namespace', 'invalid-xml', 'not-authorized',
  'not-well-formed', 'policy-violation', 'restricted-xml', 'unsupported-encoding', 'unsupported-stanza-type',
  'unsupported-version', 'host-unknown', 'improper-addressing', 'connection-timeout',
]);

interface Seeds { authenticated: string[]; unauthenticated: string[] }

function seeds(o: NetFuzzOptions, self: string): Seeds {
  const peer = `${o.watcher}@localhost`;
  const room = o.room;
  return {
    authenticated: [
      `<message to='${peer}' type='chat' id='m1'><body>hello</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>`,
      `<message to='${self}' type='chat' id='m2'><body>to myself</body><request xmlns='urn:xmpp:receipts'/></message>`,
      `<message to='${room}' type='groupchat' id='m3'><body>to the room</body><origin-id xmlns='urn:xmpp:sid:0' id='o1'/></message>`,
      `<message to='${room}/watcher' type='chat' id='m4'><body>private</body><x xmlns='http://jabber.org/protocol/muc#user'/></message>`,
      `<message to='${room}' id='m5'><x xmlns='http://jabber.org/protocol/muc#user'><invite to='${peer}'><reason>join</reason></invite></x></message>`,
      `<message to='${room}' type='groupchat' id='m6'><subject>topic</subject></message>`,
      `<message to='${room}' type='groupchat' id='m7'><apply-to xmlns='urn:xmpp:fasten:0' id='x'><retract xmlns='urn:xmpp:message-retract:0'/></apply-to></message>`,
      `<presence id='p1'><show>away</show><status>fuzz</status><priority>5</priority><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/></presence>`,
      `<presence to='${room}/fz' id='p2'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='5'/><password>pw</password></x></presence>`,
      `<presence to='${peer}' type='subscribe' id='p3'/>`,
      `<presence to='${room}/fz' type='unavailable' id='p4'/>`,
      `<iq type='get' id='i1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`,
      `<iq type='get' id='i2' to='conference.localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`,
      `<iq type='get' id='i3'><query xmlns='jabber:iq:roster' ver=''/></iq>`,
      `<iq type='set' id='i4'><query xmlns='jabber:iq:roster'><item jid='${peer}' name='w'><group>g</group></item></query></iq>`,
      `<iq type='get' id='i5'><vCard xmlns='vcard-temp'/></iq>`,
      `<iq type='set' id='i6'><vCard xmlns='vcard-temp'><FN>Fuzz</FN><NICKNAME>fz</NICKNAME></vCard></iq>`,
      `<iq type='set' id='i7'><query xmlns='urn:xmpp:mam:2' queryid='q'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field><field var='with'><value>${peer}</value></field></x><set xmlns='http://jabber.org/protocol/rsm'><max>5</max></set></query></iq>`,
      `<iq type='set' id='i8' to='${room}'><query xmlns='urn:xmpp:mam:2' queryid='r'><set xmlns='http://jabber.org/protocol/rsm'><max>3</max><before/></set></query></iq>`,
      `<iq type='get' id='i9' to='${room}'><query xmlns='http://jabber.org/protocol/muc#owner'/></iq>`,
      `<iq type='set' id='i10' to='${room}'><query xmlns='http://jabber.org/protocol/muc#admin'><item nick='watcher' role='none'><reason>r</reason></item></query></iq>`,
      `<iq type='set' id='i11' to='${room}'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_roomname'><value>n</value></field></x></query></iq>`,
      `<iq type='set' id='i12' to='localhost'><command xmlns='http://jabber.org/protocol/commands' node='http://jabber.org/protocol/admin#add-user' action='execute'/></iq>`,
      `<iq type='get' id='i13'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query></iq>`,
      `<iq type='set' id='i14'><block xmlns='urn:xmpp:blocking'><item jid='x@y'/></block></iq>`,
      `<iq type='set' id='i15'><enable xmlns='urn:xmpp:carbons:2'/></iq>`,
      `<iq type='get' id='i16' to='localhost'><query xmlns='jabber:iq:version'/></iq>`,
      `<iq type='set' id='i17'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:avatar:metadata'><item id='1'><metadata xmlns='urn:xmpp:avatar:metadata'/></item></publish></pubsub></iq>`,
      `<iq type='get' id='i18' to='localhost'><query xmlns='jabber:iq:search'/></iq>`,
      `<iq type='get' id='i19' to='localhost'><request xmlns='urn:xmpp:http:upload:0' filename='a.txt' size='10' content-type='text/plain'/></iq>`,
      `<iq type='set' id='i20'><query xmlns='jabber:iq:register'><remove/></query></iq>`.replace('<remove/>', '<password>pw</password>'),
      `<iq type='result' id='i21' to='${peer}'/>`,
      `<enable xmlns='urn:xmpp:sm:3' resume='true'/>`,
      `<r xmlns='urn:xmpp:sm:3'/>`,
      `<a xmlns='urn:xmpp:sm:3' h='0'/>`,
      `<inactive xmlns='urn:xmpp:csi:0'/>`,
    ],
    unauthenticated: [
      `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from('\0nobody\0pw').toString('base64')}</auth>`,
      `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>${Buffer.from('n,,n=nobody,r=abcdefgh').toString('base64')}</auth>`,
      `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>${Buffer.from('n,,n=nobody,r=abcdefgh').toString('base64')}</auth>`,
      `<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>${Buffer.from('c=biws,r=abc,p=xyz').toString('base64')}</response>`,
      `<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`,
      `<iq type='get' id='reg1'><query xmlns='jabber:iq:register'/></iq>`,
      `<iq type='set' id='reg2'><query xmlns='jabber:iq:register'><username>a</username><password>b</password></query></iq>`,
      `<message to='x@localhost'><body>before auth</body></message>`,
      `<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`,
    ],
  };
}

// --- mutations --------------------------------------------------------------------------------------

type Mutation = { name: string; apply: (xml: string, r: () => number) => string; expect?: string[] };

const pick = <T>(r: () => number, a: readonly T[]): T => a[Math.floor(r() * a.length)]!;
const randInt = (r: () => number, n: number) => Math.floor(r() * n);

const WEIRD_VALUES = ['', '@', 'a@b@c', '/', '@localhost', 'localhost/', '\u0000', '&amp;', '&lt;x&gt;', 'x'.repeat(1100), '☃@localhost', 'a@[::1]',
  'conference.localhost', '-1', '99999999999999999999', 'true', 'set', 'get', 'error', 'result', 'groupchat', 'unavailable', '\u202e', 'x@localhost/\u0001'];
const NAMESPACES = ['jabber:client', 'jabber:server', 'urn:example:unknown', '', 'http://jabber.org/protocol/muc', 'urn:xmpp:mam:2',
  'http://etherx.jabber.org/streams', 'urn:ietf:params:xml:ns:xmpp-sasl', 'jabber:x:data', 'urn:xmpp:sm:3'];

function attrs(xml: string): { start: number; end: number; name: string; value: string }[] {
  const out: { start: number; end: number; name: string; value: string }[] = [];
  const re = /\s([a-zA-Z:_-]+)='([^']*)'/g;
  for (let m = re.exec(xml); m; m = re.exec(xml)) out.push({ start: m.index, end: m.index + m[0].length, name: m[1]!, value: m[2]! });
  return out;
}

/** Positions just after a start tag's '>' (where a child may go). */
function childPositions(xml: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < xml.length; i++) if (xml[i] === '>' && xml[i - 1] !== '/') out.push(i + 1);
  return out;
}

function escapeText(s: string): string {
  return s.replace(/&(?!amp;|lt;|gt;)/g, '&amp;').replace(/</g, '&lt;').replace(/'/g, '&apos;');
}

const MUTATIONS: Mutation[] = [
  { name: 'none', apply: (x) => x },
  { name: 'truncate', apply: (x, r) => x.slice(0, 1 + randInt(r, x.length - 1)) },
  {
    name: 'swap-attribute-values', apply: (x, r) => {
      const a = attrs(x);
      if (a.length < 2) return x;
      const i = randInt(r, a.length), j = randInt(r, a.length);
      const [lo, hi] = a[i]!.start < a[j]!.start ? [a[i]!, a[j]!] : [a[j]!, a[i]!];
      if (lo === hi) return x;
      return x.slice(0, lo.start) + ` ${lo.name}='${hi.value}'` + x.slice(lo.end, hi.start) + ` ${hi.name}='${lo.value}'` + x.slice(hi.end);
    },
  },
  {
    name: 'weird-attribute-value', apply: (x, r) => {
      const a = attrs(x);
      if (a.length === 0) return x;
      const t = pick(r, a);
      return x.slice(0, t.start) + ` ${t.name}='${escapeText(pick(r, WEIRD_VALUES))}'` + x.slice(t.end);
    },
  },
  {
    name: 'drop-attribute', apply: (x, r) => {
      const a = attrs(x);
      if (a.length === 0) return x;
      const t = pick(r, a);
      return x.slice(0, t.start) + x.slice(t.end);
    },
  },
  {
    name: 'random-bytes', apply: (x, r) => {
      const at = randInt(r, x.length);
      const bytes = Array.from({ length: 1 + randInt(r, 8) }, () => String.fromCharCode(randInt(r, 256))).join('');
      return x.slice(0, at) + bytes + x.slice(at);
    },
  },
  {
    name: 'huge-attribute', expect: ['policy-violation'],
    apply: (x) => x.replace(/^<([a-zA-Z:]+)/, (m) => `${m} huge='${'h'.repeat(300 * 1024)}'`),
  },
  { name: 'deep-nesting', expect: ['policy-violation'], apply: (x) => x.replace(/>/, `>${'<d>'.repeat(100)}${'</d>'.repeat(100)}`) },
  {
    name: 'unknown-element', apply: (x, r) => {
      const pos = childPositions(x);
      if (pos.length === 0) return x;
      const at = pick(r, pos);
      const el = pick(r, [`<unknown xmlns='urn:example:fuzz'/>`, `<x xmlns='${pick(r, NAMESPACES)}'>${'t'.repeat(randInt(r, 50))}</x>`, `<body>b</body>`, `<error type='cancel'><item-not-found xmlns='${STANZA_NS}'/></error>`, `<thread/>`, `<query xmlns='jabber:iq:roster'/>`]);
      return x.slice(0, at) + el + x.slice(at);
    },
  },
  {
    name: 'bad-namespace', apply: (x, r) => {
      const a = attrs(x).filter((t) => t.name === 'xmlns');
      if (a.length === 0) return x.replace(/^<([a-zA-Z]+)/, `<$1 xmlns='${pick(r, NAMESPACES)}'`);
      const t = pick(r, a);
      return x.slice(0, t.start) + ` xmlns='${pick(r, NAMESPACES)}'` + x.slice(t.end);
    },
  },
  { name: 'undeclared-prefix', expect: ['bad-namespace-prefix'], apply: (x) => x.replace(/^<([a-zA-Z]+)/, '<fz:$1').replace(/<\/([a-zA-Z]+)>$/, '</fz:$1>').replace(/\/>$/, '/>') },
  {
    name: 'rename-element', apply: (x, r) => {
      const names = [...x.matchAll(/<([a-zA-Z]+)[\s/>]/g)].map((m) => m[1]!);
      if (names.length === 0) return x;
      const from = pick(r, names);
      const to = pick(r, ['message', 'presence', 'iq', 'query', 'body', 'x', 'item', 'stream', 'features', 'foo']);
      return x.replace(new RegExp(`<${from}([\\s/>])`, 'g'), `<${to}$1`).replace(new RegExp(`</${from}>`, 'g'), `</${to}>`);
    },
  },
  { name: 'duplicate-child', apply: (x) => x.replace(/(<([a-z]+)[^>]*>[^<]*<\/\2>)/, '$1$1') },
  { name: 'type-change', apply: (x, r) => (/ type='[^']*'/.test(x) ? x.replace(/ type='[^']*'/, ` type='${pick(r, ['get', 'set', 'result', 'error', 'chat', 'groupchat', 'headline', 'normal', 'subscribe', 'probe', 'unavailable', 'bogus', ''])}'`) : x.replace(/^<([a-z]+)/, `<$1 type='${pick(r, ['get', 'set', 'error', 'bogus'])}'`)) },
  { name: 'comment', expect: ['restricted-xml'], apply: (x) => x.replace(/>/, '><!-- c -->') },
  { name: 'processing-instruction', expect: ['restricted-xml'], apply: (x) => x.replace(/>/, '><?pi x?>') },
  { name: 'undefined-entity', expect: ['not-well-formed', 'restricted-xml'], apply: (x) => x.replace(/>/, '>&fuzz;') },
  { name: 'many-attributes', apply: (x) => x.replace(/^<([a-zA-Z]+)/, (m) => `${m}${Array.from({ length: 500 }, (_, i) => ` a${i}='${i}'`).join('')}`) },
  { name: 'random-text', apply: (x, r) => Array.from({ length: 1 + randInt(r, 200) }, () => String.fromCharCode(32 + randInt(r, 95))).join('') },
  { name: 'double-mutation', apply: (x, r) => { const a = pick(r, MUTATIONS.slice(1, 14)); const b = pick(r, MUTATIONS.slice(1, 14)); return b.apply(a.apply(x, r), r); } },
];

// --- one fuzzing connection ---------------------------------------------------------------------------

interface Outcome { kind: 'handled' | 'stream-error' | 'closed' | 'hang'; condition?: string; stanzaErrors: string[] }

function streamErrorOf(text: string): string | undefined {
  const m = /<stream:error>[\s\S]*?<\/stream:error>/.exec(text);
  if (!m) return undefined;
  return new RegExp(`<([a-z-]+) xmlns=['"]${STREAM_NS}['"]`).exec(m[0])?.[1] ?? 'unknown';
}

function stanzaErrorsIn(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/<(message|presence|iq)[^>]*type=['"]error['"][\s\S]*?<\/\1>/g)) {
    const c = new RegExp(`<([a-z-]+) xmlns=['"]${STANZA_NS}['"]`).exec(m[0])?.[1];
    if (c) out.push(c);
  }
  return out;
}

/**
 * Sends one input, then a probe the server always answers with the probe's id (a ping, or before
 * authentication a registration form request); when the probe is not answered in
 * time, closes our stream, and then the server must answer with a stream error or close.
 */
async function sendOne(c: RawConnection, input: string, authenticated: boolean, probeId: string, timeoutMs: number): Promise<Outcome> {
  const start = c.text.length;
  c.send(input);
  // Before authentication the probe is an in-band registration form request (the server must have
  // registration on), the one stanza answered there with its own id.
  const probe = authenticated
    ? `<iq type='get' id='${probeId}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`
    : `<iq type='get' id='${probeId}'><query xmlns='jabber:iq:register'/></iq>`;
  c.send(probe);
  const answered = (t: string) => new RegExp(`<iq[^>]*id=['"]${probeId}['"]`).test(t);
  const deadline = Date.now() + timeoutMs;
  let closedOurs = false;
  for (;;) {
    const text = c.text.slice(start);
    const se = streamErrorOf(text);
    if (se) {
      await Promise.race([c.closed, sleep(timeoutMs)]);
      if (!c.isClosed()) return { kind: 'hang', condition: `${se} (not closed)`, stanzaErrors: stanzaErrorsIn(text) };
      return { kind: 'stream-error', condition: se, stanzaErrors: stanzaErrorsIn(text) };
    }
    if (!closedOurs && answered(text)) return { kind: 'handled', stanzaErrors: stanzaErrorsIn(text) };
    if (c.isClosed()) return { kind: 'closed', stanzaErrors: stanzaErrorsIn(text) };
    if (Date.now() > deadline) {
      if (closedOurs) return { kind: 'hang', stanzaErrors: stanzaErrorsIn(text) };
      // An unfinished element (a truncated input) waits for its end, as it must: end our stream, which
      // the server must answer (a stream error for what is unfinished, or a close).
      closedOurs = true;
      c.send('</stream:stream>');
      // Unfinished attribute values or comments swallow even that: a quote and a closing tag.
      c.send(`'"-->?>]]></stream:stream>`);
      await Promise.race([c.closed, sleep(timeoutMs)]);
      if (c.isClosed() || streamErrorOf(c.text.slice(start))) continue;
      return { kind: 'hang', stanzaErrors: stanzaErrorsIn(c.text.slice(start)) };
    }
    await new Promise<void>((resolve) => {
      const socket = c.socket;
      const done = () => { clearTimeout(t); socket.off('data', done); resolve(); };
      const t = setTimeout(done, 50);
      socket.on('data', done);
    });
  }
}

async function rssMb(metricsPort: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const m = /^perch_process_resident_memory_bytes (\d+(\.\d+)?(e\+\d+)?)/m.exec(text);
  return m ? Math.round(Number(m[1]) / 1e6) : 0;
}

export async function runNetFuzz(o: NetFuzzOptions): Promise<NetFuzzReport> {
  const rand = prng(o.seed);
  const timeoutMs = o.answerTimeoutMs ?? 4000;
  const log = o.log ?? (() => {});
  const report: NetFuzzReport = {
    seed: o.seed, inputs: 0, connections: 0, handled: 0, stanzaErrors: {}, streamErrors: {}, closedWithoutError: {},
    findings: [], watcher: { rounds: 0, failures: 0, maxRttMs: 0 }, rssStartMb: await rssMb(o.metricsPort), rssEndMb: 0, rssMaxMb: 0,
    serverAlive: true, elapsedMs: 0,
  };
  report.rssMaxMb = report.rssStartMb;
  const started = Date.now();
  const until = started + o.durationMs;
  let probeSerial = 0;
  const shorten = (s: string) => (s.length > 300 ? `${s.slice(0, 300)}… (${s.length} chars)` : s);

  // The well-behaved client: a ping and a message to itself every second, each answered in time.
  const watcher: RawSession = await rawLogin(o.port, o.watcher, 'pw', 'watcher');
  // It also creates the room the groupchat seeds go to (an instant room, XEP-0045 §10.1.2).
  watcher.send(`<presence to='${o.room}/watcher'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
  await watcher.waitFor(/<status code=['"]110['"]/);
  watcher.send(`<iq type='set' id='room' to='${o.room}'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>`);
  await watcher.waitFor(/<iq[^>]*id=['"]room['"]/);
  let watching = true;
  const watch = (async () => {
    let n = 0;
    while (watching) {
      const t = Date.now();
      const id = `w${n++}`;
      watcher.send(`<iq type='get' id='${id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq><message to='${watcher.jid}' id='${id}m'><body>${id}</body></message>`);
      try {
        await watcher.waitFor(new RegExp(`<iq[^>]*id=['"]${id}['"]`), 5000);
        await watcher.waitFor(new RegExp(`<message[^>]*id=['"]${id}m['"]`), 5000);
        report.watcher.maxRttMs = Math.max(report.watcher.maxRttMs, Date.now() - t);
      } catch (e) {
        report.watcher.failures++;
        report.findings.push({ kind: 'watcher not served', input: '', detail: (e as Error).message.slice(0, 300) });
        if (watcher.isClosed()) break;
      }
      report.watcher.rounds++;
      const rss = await rssMb(o.metricsPort).catch(() => 0);
      report.rssMaxMb = Math.max(report.rssMaxMb, rss);
      await sleep(Math.max(0, 1000 - (Date.now() - t)));
    }
  })();

  const worker = async (w: number) => {
    while (Date.now() < until && o.alive()) {
      const authenticated = rand() < 0.75;
      let c: RawConnection;
      let self = '';
      try {
        if (authenticated) {
          const s = await rawLogin(o.port, o.users[w % o.users.length]!, 'pw', `fz${w}-${report.connections}`);
          self = s.jid;
          c = s;
        } else {
          c = await connectRaw(o.port);
          await openSecureStream(c);
        }
      } catch (e) {
        if (!o.alive()) break;
        report.findings.push({ kind: 'connect failed', input: '', detail: (e as Error).message.slice(0, 300) });
        await sleep(500);
        continue;
      }
      report.connections++;
      const pool = authenticated ? seeds(o, self).authenticated : seeds(o, self).unauthenticated;
      // What this connection was sent before, for the findings (an input can fail because of an earlier one).
      const history: string[] = [];
      const find = (f: { kind: string; input: string; detail: string }) => report.findings.push({ ...f, before: history.slice(-4, -1) });
      try {
        while (!c.isClosed() && Date.now() < until) {
          const mutation = pick(rand, MUTATIONS);
          const input = mutation.apply(pick(rand, pool), rand);
          report.inputs++;
          history.push(shorten(input));
          const outcome = await sendOne(c, input, authenticated, `probe${probeSerial++}`, timeoutMs);
          for (const cond of outcome.stanzaErrors) {
            report.stanzaErrors[cond] = (report.stanzaErrors[cond] ?? 0) + 1;
            if (cond === 'internal-server-error' || cond === 'undefined-condition') {
              find({ kind: `stanza error ${cond}`, input: shorten(input), detail: mutation.name });
            }
          }
          if (outcome.kind === 'handled') {
            report.handled++;
            if (mutation.expect && !mutation.expect.includes('none')) {
              find({ kind: `expected ${mutation.expect.join('|')}, got no stream error`, input: shorten(input), detail: mutation.name });
            }
            continue;
          }
          if (outcome.kind === 'stream-error') {
            const cond = outcome.condition!;
            report.streamErrors[cond] = (report.streamErrors[cond] ?? 0) + 1;
            // XEP-0198 §4: an <a/> acknowledging more than was sent ends the stream with undefined-condition.
            const smAckTooHigh = cond === 'undefined-condition' && /^<a [^>]*xmlns='urn:xmpp:sm:3'/.test(input);
            if (!ACCEPTABLE_STREAM_ERRORS.has(cond) && !smAckTooHigh) find({ kind: `stream error ${cond}`, input: shorten(input), detail: mutation.name });
            else if (mutation.expect && !mutation.expect.includes(cond) && mutation.name !== 'double-mutation') {
              find({ kind: `expected ${mutation.expect.join('|')}, got ${cond}`, input: shorten(input), detail: mutation.name });
            }
          } else if (outcome.kind === 'closed') {
            const el = /^<([^\s/>]+)/.exec(input)?.[1] ?? '(text)';
            report.closedWithoutError[el] = (report.closedWithoutError[el] ?? 0) + 1;
          } else {
            find({ kind: 'hang', input: shorten(input), detail: `${mutation.name}; received: ${shorten(c.text.slice(-400))}` });
          }
          break;
        }
      } finally {
        c.close();
      }
    }
  };
  await Promise.all(Array.from({ length: o.workers ?? 4 }, (_, w) => worker(w)));
  watching = false;
  await watch;
  watcher.close();
  report.serverAlive = o.alive();
  report.rssEndMb = report.serverAlive ? await rssMb(o.metricsPort).catch(() => 0) : 0;
  report.elapsedMs = Date.now() - started;
  log(`net fuzz: ${report.inputs} inputs on ${report.connections} connections in ${Math.round(report.elapsedMs / 1000)} s, ${report.findings.length} findings`);
  return report;
}
