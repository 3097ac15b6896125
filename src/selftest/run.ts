// The self-test's steps: two accounts log in over the c2s listener, join the room, exchange a pair
// of messages, find them in the room's archive and by full-text search, leave and log off. Each
// step is timed and says why it failed; the first failure ends the run (later steps depend on it).
import { randomBytes } from 'node:crypto';
import { Element } from '../../protocol/xml.js';
import { NS } from '../../protocol/namespaces.js';
import { FULLTEXT_FIELD } from '../../protocol/mam.js';
import { SelftestClient, ClientError, errorText } from './client.js';
import type { TestAccount } from './fixture.js';

export interface StepResult { name: string; ok: boolean; ms: number; detail: string }
export interface SelftestReport { ok: boolean; steps: StepResult[]; totalMs: number }

export interface SelftestTarget {
  host: string;
  port: number;
  domain: string;
  room: string;
  users: [TestAccount, TestAccount];
  /** Per step. */
  timeoutMs: number;
}

/** How often the archive is asked again while the messages are not in it yet (archiving may lag delivery). */
const ARCHIVE_RETRY_MS = 200;

class StepFailure extends Error {}

/** A run that failed before any step (no fixture, bad input): one failed step saying why. */
export function failedBeforeStart(name: string, detail: string): SelftestReport {
  return { ok: false, steps: [{ name, ok: false, ms: 0, detail }], totalMs: 0 };
}

export async function runSelftest(t: SelftestTarget, first: StepResult[] = []): Promise<SelftestReport> {
  const started = performance.now();
  const steps: StepResult[] = [...first];
  const clients: SelftestClient[] = [];
  const step = async <R>(name: string, fn: () => Promise<{ value: R; detail: string }>): Promise<R> => {
    const t0 = performance.now();
    let timer: NodeJS.Timeout | undefined;
    try {
      // Every wait inside has its own timeout; this one bounds the step as a whole.
      const limit = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new StepFailure(`not done in ${t.timeoutMs} ms`)), t.timeoutMs + 1000);
      });
      const work = fn();
      // Past the time limit the step's work is abandoned (its connections close below): its failure is not news.
      work.catch(() => {});
      const { value, detail } = await Promise.race([work, limit]);
      steps.push({ name, ok: true, ms: elapsed(t0), detail });
      return value;
    } catch (e) {
      const why = e instanceof ClientError || e instanceof StepFailure ? e.message : `unexpected: ${(e as Error).stack ?? String(e)}`;
      steps.push({ name, ok: false, ms: elapsed(t0), detail: why });
      throw new StepFailure(why);
    } finally {
      clearTimeout(timer);
    }
  };
  const token = uniqueToken();
  const nicks = ['selftest-1', 'selftest-2'];
  try {
    for (const i of [0, 1] as const) {
      const u = t.users[i];
      const c = await step(`login-${i + 1}`, async () => {
        const c = await SelftestClient.login({ host: t.host, port: t.port, domain: t.domain, username: u.username, password: u.password, timeoutMs: t.timeoutMs });
        clients.push(c);
        const tls = !c.tls.used ? 'no TLS' : c.tls.verified ? `${c.tls.protocol} verified` : `${c.tls.protocol}, certificate not verified (${c.tls.reason ?? 'unknown'})`;
        return { value: c, detail: `${c.jid} via ${t.host}:${t.port}, ${tls}, ${c.mechanism}` };
      });
      void c;
    }
    const [c1, c2] = clients as [SelftestClient, SelftestClient];
    for (const i of [0, 1] as const) {
      await step(`join-${i + 1}`, async () => ({ value: undefined, detail: await join([c1, c2][i]!, t.room, nicks[i]!) }));
    }
    const ids: string[] = [];
    ids.push(await step('message-1-to-2', () => exchange(c1, c2, t.room, nicks[0]!, `perch self-test ${token} (1 of 2)`)));
    ids.push(await step('message-2-to-1', () => exchange(c2, c1, t.room, nicks[1]!, `perch self-test ${token} (2 of 2)`)));
    await step('archive', async () => {
      const found = await untilFound(t.timeoutMs, () => archiveQuery(c1, t.room, null), ids);
      return { value: undefined, detail: `both messages in ${t.room}'s archive (${found} results read)` };
    });
    await step('search', async () => {
      const found = await untilFound(t.timeoutMs, () => archiveQuery(c1, t.room, token), ids);
      return { value: undefined, detail: `full-text search for ${token} found both messages (${found} hits)` };
    });
    for (const i of [0, 1] as const) {
      await step(`leave-${i + 1}`, async () => ({ value: undefined, detail: await leave([c1, c2][i]!, t.room, nicks[i]!) }));
    }
    for (const i of [0, 1] as const) {
      await step(`logoff-${i + 1}`, async () => {
        await clients[i]!.logout();
        return { value: undefined, detail: 'stream closed by both sides' };
      });
    }
  } catch (e) {
    if (!(e instanceof StepFailure)) throw e;
  } finally {
    for (const c of clients) c.close();
  }
  return { ok: steps.every((s) => s.ok), steps, totalMs: elapsed(started) + first.reduce((n, s) => n + s.ms, 0) };
}

function elapsed(t0: number): number {
  return Math.round((performance.now() - t0) * 10) / 10;
}

/** Letters only, so that any full-text tokenizer keeps it one word. */
function uniqueToken(): string {
  return 'selftest' + [...randomBytes(8)].map((b) => String.fromCharCode(97 + (b % 26))).join('');
}

function mucStatuses(p: Element): number[] {
  return (p.getChild('x', NS.mucUser)?.getChildren('status') ?? []).map((s) => Number(s.attrs.code));
}

async function join(c: SelftestClient, room: string, nick: string): Promise<string> {
  const full = `${room}/${nick}`;
  const p = new Element('presence', { to: full });
  p.c('x', { xmlns: NS.muc }).c('history', { maxstanzas: '0' });
  const self = c.waitFor((e) => e.name === 'presence' && e.attrs.from === full && (e.attrs.type === 'error' || mucStatuses(e).includes(110)), `self-presence from ${full}`);
  c.write(p);
  const answer = await self;
  if (answer.attrs.type === 'error') throw new ClientError(`${room} refused the join: ${errorText(answer)}`);
  if (mucStatuses(answer).includes(201)) {
    // The join created the room: the self-test tests rooms, it does not make them. Remove it again.
    const destroy = new Element('iq', { type: 'set', to: room });
    destroy.c('query', { xmlns: NS.mucOwner }).c('destroy').c('reason').t('created by mistake by the self-test');
    const undone = await c.request(destroy, 'destroying the room the join created').then(() => 'destroyed it again', (e: Error) => `could not destroy it: ${e.message}`);
    throw new ClientError(`no room ${room}: the join created it (${undone}); run perch selftest --setup, or name an existing room`);
  }
  const item = answer.getChild('x', NS.mucUser)?.getChild('item');
  return `in ${room} as ${nick} (${item?.attrs.affiliation ?? '?'}, ${item?.attrs.role ?? '?'})`;
}

async function leave(c: SelftestClient, room: string, nick: string): Promise<string> {
  const full = `${room}/${nick}`;
  const gone = c.waitFor((e) => e.name === 'presence' && e.attrs.from === full && e.attrs.type === 'unavailable', `unavailable self-presence from ${full}`);
  c.write(new Element('presence', { to: full, type: 'unavailable' }));
  await gone;
  return `left ${room}`;
}

/** One message from `from` to the room, received by `to`; resolves with the room's stanza id. */
async function exchange(from: SelftestClient, to: SelftestClient, room: string, nick: string, body: string): Promise<{ value: string; detail: string }> {
  const id = from.id('msg');
  const sender = `${room}/${nick}`;
  const isIt = (e: Element) => e.name === 'message' && e.attrs.from === sender && e.getChildText('body') === body;
  const received = to.waitFor((e) => isIt(e) || (e.name === 'message' && e.attrs.type === 'error'), `the message from ${nick}`);
  const reflected = from.waitFor((e) => (isIt(e) && e.attrs.id === id) || (e.name === 'message' && e.attrs.type === 'error' && e.attrs.id === id), 'the room\'s reflection of the message');
  from.write(new Element('message', { to: room, type: 'groupchat', id }).append(new Element('body').t(body)));
  const echo = await reflected;
  if (echo.attrs.type === 'error') throw new ClientError(`the room refused the message: ${errorText(echo)}`);
  const got = await received;
  if (got.attrs.type === 'error') throw new ClientError(`the receiver got an error instead: ${errorText(got)}`);
  const sid = echo.getChildren('stanza-id', NS.sid).find((s) => s.attrs.by === room)?.attrs.id;
  if (!sid) throw new ClientError('the room\'s reflection carries no stanza id of the room (is it archived?)');
  return { value: sid, detail: `delivered, archived as ${sid}` };
}

/** Stanza ids of the room archive's newest messages, or of those matching the full-text search. */
async function archiveQuery(c: SelftestClient, room: string, search: string | null): Promise<string[]> {
  const queryid = c.id('mam');
  const iq = new Element('iq', { type: 'set', to: room });
  const q = iq.c('query', { xmlns: NS.mam, queryid });
  const form = q.c('x', { xmlns: NS.dataForms, type: 'submit' });
  form.c('field', { var: 'FORM_TYPE', type: 'hidden' }).c('value').t(NS.mam);
  if (search !== null) form.c('field', { var: FULLTEXT_FIELD }).c('value').t(search);
  const set = q.c('set', { xmlns: NS.rsm });
  set.c('max').t('20');
  set.c('before');
  const isResult = (e: Element) => e.name === 'message' && e.getChild('result', NS.mam)?.attrs.queryid === queryid;
  // The results arrive before the answer and wait, unclaimed, until it comes.
  await c.request(iq, search === null ? 'archive query' : 'full-text search');
  const results = c.takeAll(isResult);
  return results.map((m) => m.getChild('result', NS.mam)!.attrs.id ?? '');
}

/** Asks until every id is among the answer; resolves with the number of results last read. */
async function untilFound(timeoutMs: number, ask: () => Promise<string[]>, ids: readonly string[]): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const got = await ask();
    const missing = ids.filter((id) => !got.includes(id));
    if (missing.length === 0) return got.length;
    if (performance.now() + ARCHIVE_RETRY_MS > deadline) throw new ClientError(`not found: ${missing.join(', ')} (${got.length} results read)`);
    await new Promise((r) => setTimeout(r, ARCHIVE_RETRY_MS));
  }
}
