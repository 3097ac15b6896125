// A real web client end to end: Converse.js (the npm package's built dist/, served by this test as an
// ES module) in Debian's Chromium driven by playwright-core, connected to Perch over WebSocket. It
// logs in, joins a room that already has history, sees it, posts (a TCP client and a slixmpp user
// receive it), receives a slixmpp user's message, and a screenshot of the room is kept in
// test-artifacts/. A second test bookmarks the room with autojoin and signs in again from a fresh
// browser profile: the room must be joined from the bookmark alone. Converse keeps bookmarks only in
// PEP (XEP-0402, or XEP-0048 in a PEP node), so that test needs PEP and bookmarks on the server.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { startServer, login, xml, sleep, REPO_ROOT, IN_CI, type RunningServer, type LoggedIn } from './harness.js';
import { NS, post } from './pchat-kit.js';

const CHROMIUM = '/usr/bin/chromium';
const PYTHON = '/usr/bin/python3';
const SLIXMPP = path.join(REPO_ROOT, 'conformance', 'clients', 'slixmpp_room_talk.py');
const DIST = path.join(REPO_ROOT, 'node_modules', 'converse.js', 'dist');
const ARTIFACTS = path.join(REPO_ROOT, 'test-artifacts');
const ROOM = 'webroom@conference.localhost';

const TYPES: Record<string, string> = {
  '.js': 'text/javascript', '.css': 'text/css', '.json': 'application/json', '.wasm': 'application/wasm', '.map': 'application/json',
  '.svg': 'image/svg+xml', '.png': 'image/png', '.woff': 'font/woff', '.woff2': 'font/woff2', '.ttf': 'font/ttf',
  '.mp3': 'audio/mpeg', '.ogg': 'audio/ogg', '.html': 'text/html; charset=utf-8',
};

/** The page: Converse as an ES module, websocket_url set directly, a plugin that exposes its API to the test. */
function indexHtml(websocketUrl: string, jid: string, password: string): string {
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>Perch web client test</title>
<link rel="stylesheet" href="/dist/converse.min.css"></head>
<body class="converse-fullscreen">
<script type="module">
import converse from '/dist/converse.min.js';
converse.plugins.add('perch-test', { initialize() { window.perchTest = this._converse; } });
converse.initialize({
  assets_path: '/dist/',
  websocket_url: ${JSON.stringify(websocketUrl)},
  discover_connection_methods: false,
  jid: ${JSON.stringify(jid)}, password: ${JSON.stringify(password)}, auto_login: true,
  view_mode: 'fullscreen',
  whitelisted_plugins: ['perch-test'],
  persistent_store: 'localStorage',
  loglevel: 'info',
  play_sounds: false,
  // OMEMO needs its WebAssembly and PEP device lists; nothing here is encrypted.
  blacklisted_plugins: ['converse-omemo'],
  show_desktop_notifications: false,
  muc_show_logs_before_join: true,
});
</script></body></html>`;
}

function startWebServer(html: () => string): Promise<{ url: string; close(): void }> {
  const srv = http.createServer((req, res) => {
    const p = decodeURIComponent((req.url ?? '/').split('?')[0]!);
    if (p === '/' || p === '/index.html') {
      res.writeHead(200, { 'content-type': TYPES['.html']! }).end(html());
      return;
    }
    if (p.startsWith('/dist/')) {
      const file = path.normalize(path.join(DIST, p.slice('/dist/'.length)));
      if (file.startsWith(DIST + path.sep) && existsSync(file)) {
        res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream' }).end(readFileSync(file));
        return;
      }
    }
    res.writeHead(404).end();
  });
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => {
    const a = srv.address() as { port: number };
    resolve({ url: `http://127.0.0.1:${a.port}/`, close: () => { srv.close(); srv.closeAllConnections(); } });
  }));
}

/** The slixmpp user: joins, waits for `expect`, then says `say`. */
function slixmppTalker(port: number, expectBody: string, say: string) {
  const child = spawn(PYTHON, [SLIXMPP, '127.0.0.1', String(port), 'sam@localhost/slix', 'pw', ROOM, 'sam', expectBody, say], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const waiters: (() => void)[] = [];
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); waiters.forEach((w) => w()); });
  child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => { waiters.forEach((w) => w()); r(code); }));
  return {
    exited,
    output: () => `${out}\n${err}`,
    waitLine(line: string, ms = 30000): Promise<void> {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (out.split('\n').some((l) => l.startsWith(line))) { clearTimeout(t); resolve(); }
        };
        const t = setTimeout(() => reject(new Error(`slixmpp: no ${line} in ${ms} ms:\n${out}\n${err}`)), ms);
        waiters.push(check);
        check();
      });
    },
    kill: () => child.kill('SIGKILL'),
  };
}

describe('conformance: Converse.js in Chromium over WebSocket', function () {
  this.timeout(60000);
  let server: RunningServer;
  let web: { url: string; close(): void };
  let browser: Browser;
  let carol: LoggedIn;
  const consoleLines: string[] = [];
  let missing: string | null = null;

  before(async function () {
    this.timeout(90000);
    for (const [what, file] of [['chromium (Debian package)', CHROMIUM], ['python3 with slixmpp', PYTHON], ['converse.js dist', path.join(DIST, 'converse.min.js')]] as const) {
      if (!existsSync(file)) missing ??= `${what} is missing: ${file}`;
    }
    if (missing) {
      if (IN_CI) throw new Error(missing);
      this.skip();
    }
    mkdirSync(ARTIFACTS, { recursive: true });
    server = await startServer({ users: { alice: 'pw', carol: 'pw', sam: 'pw' } });
    const wsUrl = `wss://localhost:${server.ports.websocket}/xmpp-websocket`;
    web = await startWebServer(() => indexHtml(wsUrl, 'alice@localhost', 'pw'));
    browser = await chromium.launch({
      executablePath: CHROMIUM, headless: true,
      // The server's certificate is self-signed; root (CI containers) cannot use Chromium's sandbox.
      args: ['--ignore-certificate-errors', ...(process.getuid?.() === 0 ? ['--no-sandbox'] : [])],
    });
    // The room, with history, created and configured by a TCP client that stays in it.
    carol = await login(server.ports.c2s, 'carol', 'pw');
    await carol.xmpp.send(xml('presence', { to: `${ROOM}/carol` }, xml('x', { xmlns: NS.muc })));
    await carol.waitFor((e) => e.is('presence') && e.attrs.from === `${ROOM}/carol`, 10000);
    const form = xml('x', { xmlns: 'jabber:x:data', type: 'submit' },
      xml('field', { var: 'FORM_TYPE' }, xml('value', {}, 'http://jabber.org/protocol/muc#roomconfig')),
      xml('field', { var: 'muc#roomconfig_persistentroom' }, xml('value', {}, '1')),
      xml('field', { var: 'muc#roomconfig_roomname' }, xml('value', {}, 'Web room')));
    await carol.xmpp.iqCaller.request(xml('iq', { type: 'set', to: ROOM }, xml('query', { xmlns: 'http://jabber.org/protocol/muc#owner' }, form)), 10000);
    expect(await post(carol, ROOM, 'history: the agenda was posted before you came')).to.equal('ok');
  });

  after(async () => {
    await browser?.close();
    web?.close();
    await carol?.stop();
    await server?.stop();
  });

  async function openPage(context: BrowserContext): Promise<Page> {
    const page = await context.newPage();
    page.on('console', (m) => consoleLines.push(`[${m.type()}] ${m.text()}`));
    page.on('pageerror', (e) => consoleLines.push(`[pageerror] ${e.message}`));
    await page.goto(web.url);
    // Logged in: Converse's connection is up and the session bound.
    await page.waitForFunction(() => {
      const c = (window as unknown as { perchTest?: { api: { connection: { connected(): boolean } } } }).perchTest;
      return c?.api.connection.connected() === true;
    }, undefined, { timeout: 20000 });
    return page;
  }

  const dump = () => consoleLines.slice(-40).join('\n');

  it('logs in over WebSocket, joins a room with history, posts and receives (screenshot kept)', async () => {
    const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1200, height: 800 } });
    const sam = slixmppTalker(server.ports.c2s, 'hello from the browser', 'hello from slixmpp');
    try {
      await sam.waitLine('READY');
      const page = await openPage(context);
      // Join through the page, as a user does: the groupchats menu, "Add groupchat", the room's address.
      await page.locator('converse-rooms-list converse-dropdown button').first().click();
      await page.locator('converse-rooms-list .show-add-muc-modal').first().click();
      const modal = page.locator('converse-add-muc-modal');
      await modal.locator('input[name="chatroom"]').fill(ROOM);
      const nick = modal.locator('input[name="nickname"]');
      if (await nick.count()) await nick.fill('alice');
      await modal.locator('input[type="submit"][name="join"]').click();
      await page.getByText('the agenda was posted before you came').first().waitFor({ timeout: 20000 }).catch((e: Error) => { throw new Error(`${e.message}\n${dump()}`); });
      const textarea = page.locator('converse-muc textarea.chat-textarea').first();
      await textarea.waitFor({ timeout: 10000 });
      await textarea.fill('hello from the browser');
      await textarea.press('Enter');
      const got = await carol.waitFor((e) => e.is('message') && e.getChildText('body') === 'hello from the browser', 10000);
      expect(got.attrs.from).to.equal(`${ROOM}/alice`);
      await sam.waitLine('RECEIVED alice');
      await sam.waitLine('SAID');
      await page.getByText('hello from slixmpp').first().waitFor({ timeout: 10000 });
      // The client's stream-management bookkeeping agrees with the server's acknowledgements.
      expect(consoleLines.filter((l) => /Higher reported acknowledge count|New reported stanza count lower/.test(l))).to.deep.equal([]);
      await page.screenshot({ path: path.join(ARTIFACTS, 'converse-room.png'), fullPage: true });
      expect(existsSync(path.join(ARTIFACTS, 'converse-room.png'))).to.equal(true);
    } catch (e) {
      throw new Error(`${(e as Error).message}\nslixmpp: ${sam.output()}\nbrowser console:\n${dump()}`);
    } finally {
      sam.kill();
      await context.close();
    }
  });

  // Depends on PEP and XEP-0402 bookmarks on the server: Converse initialises bookmarks only when the
  // account's disco#info offers http://jabber.org/protocol/pubsub#publish-options, and otherwise never
  // resolves bookmarksInitialized.
  it('BOOKMARKS: bookmarks the room with autojoin, and a fresh sign-in rejoins it by autojoin', async () => {
    const first = await browser.newContext({ ignoreHTTPSErrors: true });
    try {
      const page = await openPage(first);
      // Converse stores the bookmark with XEP-0402 when the server offers urn:xmpp:bookmarks:1#compat.
      const stored = await page.evaluate(async (room) => {
        const c = (window as unknown as { perchTest: { api: { bookmarks: { set(a: object): Promise<unknown> } } } }).perchTest;
        const timeout = new Promise((r) => setTimeout(() => r('bookmarks not initialised after 15 s'), 15000));
        return Promise.race([c.api.bookmarks.set({ jid: room, name: 'Web room', nick: 'alice', autojoin: true }).then(() => 'ok', (e: unknown) => String(e)), timeout]);
      }, ROOM);
      expect(stored, `the bookmark was not stored (Converse keeps bookmarks only with PEP and pubsub#publish-options on the account); browser console:\n${dump()}`).to.equal('ok');
      await sleep(1000);
    } finally {
      await first.close();
    }
    // A fresh profile: nothing cached in the browser, so only the server's bookmark can open the room.
    const second = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1200, height: 800 } });
    try {
      const page = await openPage(second);
      await page.getByText('the agenda was posted before you came').first().waitFor({ timeout: 20000 })
        .catch((e: Error) => { throw new Error(`the room was not rejoined by autojoin: ${e.message}\n${dump()}`); });
      const presence = await carol.waitFor((e) => e.is('presence') && e.attrs.from === `${ROOM}/alice` && e.attrs.type === undefined, 10000);
      expect(presence).to.not.equal(undefined);
      await page.screenshot({ path: path.join(ARTIFACTS, 'converse-autojoin.png'), fullPage: true });
    } finally {
      await second.close();
    }
  });
});
