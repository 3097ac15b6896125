// A real legacy group-chat bridge: biboumi (XEP-0114 component) joins an IRC server (ngircd) to Perch.
// An XMPP user in #lab%localhost@biboumi.localhost and an IRC user in #lab see each other's messages.
// Every process listens on a port the OS chose; nothing here touches the default ports 6667 or 5347.
// BRIDGE_DEBUG=1 turns on biboumi's debug log and prints the logs of all three programs at the end.
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  startServer, login, iq, xml, randomName, sleep, IN_CI,
  type RunningServer, type LoggedIn, type XmppElement,
} from './harness.js';

const BIBOUMI = '/usr/bin/biboumi';
const NGIRCD = '/usr/sbin/ngircd';
const GATEWAY = 'biboumi.localhost';
const SECRET = randomName('bridge-secret-');
// The IRC server's name in the JIDs; its address and port are set per user with biboumi's ad-hoc
// 'configure' command on localhost@biboumi.localhost.
const IRC_SERVER = 'localhost';
const ROOM = `#lab%${IRC_SERVER}@${GATEWAY}`;
const MUC_NS = 'http://jabber.org/protocol/muc';
const COMMANDS_NS = 'http://jabber.org/protocol/commands';

/** A port free right now on 127.0.0.1, for a program that cannot be told to use port 0. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

interface Child { proc: ChildProcess; output: string[]; exited: Promise<void> }

function run(cmd: string, args: string[], cwd: string): Child {
  const proc = spawn(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  for (const s of [proc.stdout!, proc.stderr!]) {
    s.setEncoding('utf8');
    s.on('data', (d: string) => output.push(d));
  }
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  return { proc, output, exited };
}

async function stopChild(c: Child | undefined): Promise<void> {
  if (!c || c.proc.exitCode !== null || c.proc.signalCode !== null) return;
  c.proc.kill('SIGTERM');
  const timer = setTimeout(() => c.proc.kill('SIGKILL'), 3000);
  await c.exited;
  clearTimeout(timer);
}

async function waitUntil(what: string, pred: () => boolean | Promise<boolean>, timeoutMs: number, logs: () => string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; logs:\n${logs()}`);
    await sleep(100);
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/** A line-oriented IRC client over a raw socket: what a person's IRC program sends. */
class IrcClient {
  readonly lines: string[] = [];
  private cursor = 0;
  private waiters = new Set<() => void>();
  private constructor(private readonly socket: net.Socket) {
    let partial = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      partial += d;
      const parts = partial.split('\r\n');
      partial = parts.pop()!;
      for (const line of parts) {
        if (line.startsWith('PING ')) this.send('PONG ' + line.slice(5));
        this.lines.push(line);
      }
      for (const w of [...this.waiters]) w();
    });
    socket.on('error', () => {});
  }

  static connect(port: number): Promise<IrcClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => { s.off('error', reject); resolve(new IrcClient(s)); });
      s.once('error', reject);
    });
  }

  send(line: string): void {
    this.socket.write(line + '\r\n');
  }

  /** The next line (after the previous match) matching the pattern. */
  waitFor(pattern: RegExp, timeoutMs = 10000): Promise<string> {
    return new Promise((resolve, reject) => {
      const check = () => {
        for (let i = this.cursor; i < this.lines.length; i++) {
          if (pattern.test(this.lines[i]!)) {
            this.cursor = i + 1;
            clearTimeout(timer);
            this.waiters.delete(check);
            resolve(this.lines[i]!);
            return;
          }
        }
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`IRC: timed out waiting for ${String(pattern)}; received:\n${this.lines.slice(this.cursor).join('\n')}`));
      }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

function bodyOf(el: XmppElement): string | undefined {
  return el.getChildText('body') ?? undefined;
}

describe('conformance: biboumi IRC bridge (XEP-0114 component)', function () {
  this.timeout(40000);
  const user = randomName('bb');
  const ircNick = randomName('irc').slice(0, 9);
  const xmppNick = randomName('xm').slice(0, 9);
  let server: RunningServer | undefined;
  let dir = '';
  let ngircd: Child | undefined;
  let biboumi: Child | undefined;
  let ircPort = 0;
  let client: LoggedIn | undefined;
  let irc: IrcClient | undefined;
  let second: LoggedIn | undefined;
  const allLogs = () => [
    '--- perch', ...(server?.logs.slice(-40) ?? []),
    '--- ngircd', ...(ngircd?.output ?? []),
    '--- biboumi', ...(biboumi?.output.slice(-60) ?? []),
  ].join('\n');

  before(async function () {
    this.timeout(40000);
    const missing = [BIBOUMI, NGIRCD].filter((p) => !existsSync(p));
    if (missing.length) {
      const msg = `the bridge test needs ${missing.join(' and ')} (Debian packages biboumi, ngircd)`;
      if (IN_CI) throw new Error(msg);
      console.warn(`  skipped: ${msg}`);
      this.skip();
    }
    dir = await mkdtemp(path.join(tmpdir(), 'perch-bridge-'));
    server = await startServer({
      users: { [user]: 'pw' },
      configYaml: `components:\n  ${GATEWAY}: ${SECRET}\n`,
    });

    // ngircd in the foreground (-n) on a free loopback port; as root it drops to 'nobody' by itself.
    ircPort = await freePort();
    const ngircdConf = path.join(dir, 'ngircd.conf');
    await writeFile(ngircdConf, [
      '[Global]',
      '  Name = irc.localhost',
      '  Info = Perch bridge test',
      '  AdminInfo1 = Perch conformance', '  AdminInfo2 = loopback', '  AdminEMail = root@localhost',
      '  Listen = 127.0.0.1',
      `  Ports = ${ircPort}`,
      '  MotdPhrase = Perch bridge test',
      '[Limits]',
      '  MaxConnectionsIP = 0',
      '[Options]',
      '  DNS = no', '  Ident = no', '  PAM = no',
      '',
    ].join('\n'));
    ngircd = run(NGIRCD, ['-n', '-f', ngircdConf], dir);
    await waitUntil('ngircd to listen', () => canConnect(ircPort), 10000, allLogs);

    // biboumi connects to Perch's component port; no identd (it would want port 113).
    const biboumiConf = path.join(dir, 'biboumi.cfg');
    await writeFile(biboumiConf, [
      `hostname=${GATEWAY}`,
      `password=${SECRET}`,
      'xmpp_server_ip=127.0.0.1',
      `port=${server.ports.component}`,
      `admin=${user}@localhost`,
      `db_name=${path.join(dir, 'biboumi.sqlite')}`,
      'identd_port=0',
      'outgoing_bind=127.0.0.1',
      'realname_customization=true',
      `log_level=${process.env.BRIDGE_DEBUG ? 0 : 1}`,
      `policy_directory=${dir}`,
      '',
    ].join('\n'));
    biboumi = run(BIBOUMI, [biboumiConf], dir);
    await waitUntil('biboumi to connect to Perch', () => server!.logs.some((l) => l.includes('component connected')),
      10000, allLogs);

    client = await login(server.ports.c2s, user, 'pw', { resource: 'bridge' });
    irc = await IrcClient.connect(ircPort);
    irc.send(`NICK ${ircNick}`);
    irc.send(`USER ${ircNick} 0 * :IRC side`);
    await irc.waitFor(/^:\S+ 001 /);
    irc.send('JOIN #lab');
    await irc.waitFor(new RegExp(`^:${ircNick}!\\S+ JOIN :?#lab`, 'i'));
  });

  after(async () => {
    if (process.env.BRIDGE_DEBUG) console.log(allLogs());
    irc?.close();
    await second?.stop();
    await client?.stop();
    await stopChild(biboumi);
    await stopChild(ngircd);
    await server?.stop();
    if (dir) await rm(dir, { recursive: true, force: true }).catch(() => {});
  });

  it('configures the IRC server through the gateway\'s ad-hoc command (XEP-0050 through the component)', async () => {
    const c = client!;
    const target = `${IRC_SERVER}@${GATEWAY}`;
    const first = await c.xmpp.iqCaller.request(
      xml('iq', { type: 'set', to: target }, xml('command', { xmlns: COMMANDS_NS, node: 'configure', action: 'execute' })), 10000);
    const cmd = first.getChild('command', COMMANDS_NS)!;
    expect(cmd.attrs.status).to.equal('executing');
    const form = cmd.getChild('x', 'jabber:x:data')!;
    const vars = form.getChildren('field').map((f) => f.attrs.var as string);
    expect(vars).to.include.members(['address', 'ports']);
    // Plain-text IRC on the test's port only: no TLS ports to try first.
    const fields = [
      xml('field', { var: 'address' }, xml('value', {}, '127.0.0.1')),
      xml('field', { var: 'ports' }, xml('value', {}, String(ircPort))),
    ];
    if (vars.includes('tls_ports')) fields.push(xml('field', { var: 'tls_ports' }));
    const done = await c.xmpp.iqCaller.request(
      xml('iq', { type: 'set', to: target },
        xml('command', { xmlns: COMMANDS_NS, node: 'configure', sessionid: cmd.attrs.sessionid, action: 'complete' },
          xml('x', { xmlns: 'jabber:x:data', type: 'submit' }, ...fields))), 10000);
    expect(done.getChild('command', COMMANDS_NS)!.attrs.status).to.equal('completed');
  });

  it('joins #lab from XMPP, and the IRC user sees the join', async () => {
    const c = client!;
    await c.xmpp.send(xml('presence', { to: `${ROOM}/${xmppNick}` }, xml('x', { xmlns: MUC_NS })));
    const self = await c.waitFor((el) => el.is('presence') && el.attrs.from === `${ROOM}/${xmppNick}`
      && el.attrs.type !== 'error', 20000).catch((e: Error) => { throw new Error(`${e.message}\n${allLogs()}`); });
    expect(self.attrs.type).to.equal(undefined);
    await irc!.waitFor(new RegExp(`^:${xmppNick}!\\S+ JOIN :?#lab`, 'i'));
    // The IRC user already in the channel appears as an occupant.
    await c.waitFor((el) => el.is('presence') && el.attrs.from === `${ROOM}/${ircNick}`, 10000);
  });

  it('carries an IRC message to the XMPP user as a groupchat message from the IRC nick', async () => {
    irc!.send('PRIVMSG #lab :hello from IRC');
    const m = await client!.waitFor((el) => el.is('message') && bodyOf(el) === 'hello from IRC', 10000);
    expect(m.attrs.type).to.equal('groupchat');
    expect(m.attrs.from).to.equal(`${ROOM}/${ircNick}`);
  });

  it('carries an XMPP groupchat message to the IRC channel under the XMPP nick', async () => {
    await client!.xmpp.send(xml('message', { to: ROOM, type: 'groupchat', id: randomName('m') }, xml('body', {}, 'hello from XMPP')));
    const line = await irc!.waitFor(/ PRIVMSG #lab :hello from XMPP$/);
    expect(line).to.match(new RegExp(`^:${xmppNick}!`));
    // biboumi reflects the message to its sender, as a MUC does.
    await client!.waitFor((el) => el.is('message') && bodyOf(el) === 'hello from XMPP'
      && el.attrs.from === `${ROOM}/${xmppNick}`, 10000);
  });
  it('carries private messages both ways between an IRC nick and the XMPP user', async () => {
    irc!.send(`PRIVMSG ${xmppNick} :private from IRC`);
    const m = await client!.waitFor((el) => el.is('message') && bodyOf(el) === 'private from IRC', 10000);
    expect(m.attrs.type).to.equal('chat');
    // From the IRC user's address on the gateway: nick%server@gateway.
    expect(m.attrs.from).to.equal(`${ircNick}%${IRC_SERVER}@${GATEWAY}`);
    await client!.xmpp.send(xml('message', { to: `${ircNick}%${IRC_SERVER}@${GATEWAY}`, type: 'chat' }, xml('body', {}, 'private from XMPP')));
    await irc!.waitFor(new RegExp(`^:${xmppNick}!\\S+ PRIVMSG ${ircNick} :private from XMPP$`, 'i'));
  });

  it('answers an IRC CTCP VERSION with the XMPP client\'s software version (an IQ from the component and back)', async () => {
    client!.xmpp.iqCallee.get('jabber:iq:version', 'query', () =>
      xml('query', { xmlns: 'jabber:iq:version' }, xml('name', {}, 'PerchBridgeTest'), xml('version', {}, '1.0')));
    irc!.send(`PRIVMSG ${xmppNick} :\x01VERSION\x01`);
    const line = await irc!.waitFor(new RegExp(`^:${xmppNick}!\\S+ NOTICE ${ircNick} :\x01VERSION `, 'i'), 10000);
    expect(line).to.include('PerchBridgeTest');
  });

  it('lists the gateway in the server\'s disco#items, and routes disco#info to it', async () => {
    const items = await iq(client!, 'get', xml('query', { xmlns: 'http://jabber.org/protocol/disco#items' }), 'localhost');
    expect(items.getChild('query')!.getChildren('item').map((i) => i.attrs.jid)).to.include(GATEWAY);
    const info = await iq(client!, 'get', xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' }), GATEWAY);
    const identities = info.getChild('query')!.getChildren('identity').map((i) => `${i.attrs.category}/${i.attrs.type}`);
    expect(identities).to.include('conference/irc');
  });

  it('joins through a mixed-case address: Perch hands biboumi the nodeprepped JID', async () => {
    // biboumi's documentation leaves preparation to the server (components.test.ts checks the exact
    // addresses it is handed); the room answers from its prepared address.
    second = await login(server!.ports.c2s, user, 'pw', { resource: 'second' });
    await second.xmpp.send(xml('presence', { to: `#LAB%LocalHost@Biboumi.LOCALHOST/${xmppNick}` }, xml('x', { xmlns: MUC_NS })));
    const self = await second.waitFor((el) => el.is('presence') && el.attrs.from?.endsWith(`/${xmppNick}`), 15000)
      .catch((e: Error) => { throw new Error(`${e.message}\n${allLogs()}`); });
    expect(self.attrs.type).to.equal(undefined);
    expect(self.attrs.from).to.equal(`${ROOM}/${xmppNick}`);
  });

  it('tells the IRC channel when the XMPP user goes offline without leaving (directed presence, RFC 6121 §4.6.3)', async () => {
    // Both resources drop their streams without an unavailable presence; the server sends it.
    await second?.stop();
    await client!.stop();
    const line = await irc!.waitFor(new RegExp(`^:${xmppNick}!\\S+ (PART|QUIT)`, 'i'), 15000);
    expect(line).to.match(/ (PART|QUIT)/);
  });
});
