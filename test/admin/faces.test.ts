// The admin operations through their faces on one in-process server: the local socket (as the CLI
// uses it) and the ad-hoc commands, which must do the same thing.
import { expect } from 'chai';
import net from 'node:net';
import { readFile, stat } from 'node:fs/promises';
import { Element } from '../../protocol/xml.js';
import { NS } from '../../protocol/namespaces.js';
import { parseJid } from '../../protocol/jid.js';
import { handleCommandRequest } from '../../src/commands/registry.js';
import { checkInput, AdminError } from '../../src/admin/command.js';
import { addUserCommand } from '../../src/admin/users.js';
import { pidPath, socketPath } from '../../src/admin/socket.js';
import { connectAdminSocket, type RemoteAdmin } from '../../src/cli/remote.js';
import { accountJid, parseFlags, UsageError } from '../../src/cli/admin.js';
import { credentialsFor } from '../../src/accounts.js';
import type { ServerCore } from '../../src/server.js';
import { startUnitServer, stanzaErrorOf } from '../unit-server.js';

function submit(node: string, fields: Record<string, string[]>, sessionid?: string): Element {
  const c = new Element('command', { xmlns: NS.commands, node, ...(sessionid ? { sessionid } : {}) });
  const x = c.c('x', { xmlns: NS.dataForms, type: 'submit' });
  x.c('field', { var: 'FORM_TYPE' }).c('value').t(NS.adminCommands);
  for (const [k, vs] of Object.entries(fields)) {
    const f = x.c('field', { var: k });
    for (const v of vs) f.c('value').t(v);
  }
  return c;
}

describe('admin operations', () => {
  describe('input', () => {
    it('checks required and single-valued fields, and fills defaults', () => {
      expect(() => checkInput(addUserCommand, {})).to.throw(AdminError, /accountjid/);
      expect(() => checkInput(addUserCommand, { accountjid: ['a@x', 'b@x'] })).to.throw(AdminError, /one value/);
      expect(checkInput(addUserCommand, { accountjid: ['a@x'], password: ['p'] })).to.deep.equal({
        accountjid: ['a@x'], password: ['p'], 'password-verify': [], email: [],
      });
    });

    it('reads CLI flags from the same fields', () => {
      const { input, json } = parseFlags(addUserCommand, ['--accountjid', 'a@x', '--password=pw', '--json']);
      expect(input).to.deep.equal({ accountjid: ['a@x'], password: ['pw'] });
      expect(json).to.equal(true);
      expect(() => parseFlags(addUserCommand, ['--nope', 'x'])).to.throw(UsageError);
      expect(() => parseFlags(addUserCommand, ['--accountjid'])).to.throw(UsageError);
      expect(accountJid('alice', 'example.com')).to.equal('alice@example.com');
      expect(() => accountJid('a/b@c', 'example.com')).to.throw(UsageError);
    });
  });

  describe('faces of one server', function () {
    this.timeout(60000);
    let server: ServerCore;
    let stop: () => Promise<void>;
    let remote: RemoteAdmin;
    const deleted: string[] = [];

    before(async () => {
      ({ server, stop } = await startUnitServer('perch-admin-unit-'));
      server.config.admins.push('root@localhost');
      server.hooks.on('user/deleted', ({ username }) => { deleted.push(username); return false; });
      const r = await connectAdminSocket(socketPath(server.config.dataDir), 5000);
      if (r.kind !== 'connected') throw new Error(`admin socket: ${JSON.stringify(r)}`);
      remote = r.client;
    });
    after(async () => {
      remote?.close();
      await stop?.();
    });

    it('serves an owner-only socket and marks the data directory held', async () => {
      expect((await stat(socketPath(server.config.dataDir))).mode & 0o777).to.equal(0o600);
      expect((await readFile(pidPath(server.config.dataDir), 'utf8')).trim()).to.equal(String(process.pid));
      expect(remote.hello).to.include({ perch: 'admin', domain: server.domain });
    });

    it('adds, changes and deletes accounts through the socket, at once', async () => {
      const added = await remote.call('add-user', { accountjid: ['sock@localhost'], password: ['pw'], 'password-verify': ['pw'] });
      expect(added).to.deep.include({ ok: true, output: { ok: true, text: 'Account successfully created' } });
      expect(await server.stores.users.get('sock')).to.not.equal(null);
      const again = await remote.call('add-user', { accountjid: ['sock@localhost'], password: ['pw'], 'password-verify': ['pw'] });
      expect(again).to.deep.include({ ok: false, condition: 'conflict' });
      const missing = await remote.call('change-user-password', { accountjid: ['sock@localhost'] });
      expect(missing).to.deep.include({ ok: false, condition: 'bad-request' });
      const gone = await remote.call('delete-user', { accountjids: ['sock@localhost', 'nobody@localhost'] });
      expect(gone).to.deep.include({ ok: true, output: { ok: ['sock@localhost'], failures: ['nobody@localhost: no such account'] } });
      expect(await server.stores.users.get('sock')).to.equal(null);
      expect(deleted).to.include('sock');
      expect(await remote.call('no-such-command', {})).to.deep.include({ ok: false, condition: 'item-not-found' });
    });

    it('offers the same operations as ad-hoc commands, to admins only', async () => {
      await server.stores.users.create('adhoc', await credentialsFor('pw', 4096));
      const root = parseJid('root@localhost/desk');
      const user = parseJid('someone@localhost/desk');
      const node = `${NS.adminCommands}#delete-user`;
      const first = await handleCommandRequest(server, 'host', new Element('command', { xmlns: NS.commands, node, action: 'execute' }), root, parseJid('localhost'));
      expect(first.attrs.status).to.equal('executing');
      const fields = first.getChild('x', NS.dataForms)!.getChildren('field').map((f) => f.attrs.var);
      expect(fields).to.deep.equal(['FORM_TYPE', 'accountjids']);
      const done = await handleCommandRequest(server, 'host', submit(node, { accountjids: ['adhoc@localhost'] }, first.attrs.sessionid), root, parseJid('localhost'));
      expect(done.attrs.status).to.equal('completed');
      expect(done.getChildText('note', NS.commands)).to.match(/were deleted:\nadhoc@localhost/);
      expect(await server.stores.users.get('adhoc')).to.equal(null);
      expect(deleted).to.include('adhoc');
      expect((await stanzaErrorOf(handleCommandRequest(server, 'host', submit(node, { accountjids: ['x@localhost'] }), user, parseJid('localhost')))).condition)
        .to.equal('forbidden');
      const bad = await stanzaErrorOf(handleCommandRequest(server, 'host', submit(`${NS.adminCommands}#add-user`, {}), root, parseJid('localhost')));
      expect(bad.appCondition?.name).to.equal('bad-payload');
    });

    it('answers malformed requests with an error and keeps serving', async () => {
      const raw = net.connect(socketPath(server.config.dataDir));
      raw.setEncoding('utf8');
      let text = '';
      raw.on('data', (c: string) => (text += c));
      raw.write('null\n{not json\n{"id":7,"command":"get-registered-users-num","input":"x"}\n');
      const deadline = Date.now() + 5000;
      while (text.split('\n').length < 5 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      raw.destroy();
      const [hello, ...replies] = text.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(hello).to.include({ perch: 'admin' });
      expect(replies.map((r) => r.ok)).to.deep.equal([false, false, true]);
      expect(replies[2]).to.include({ id: 7 });
    });

    it('runs operations on live sessions through a running server', async () => {
      const online = await remote.call('get-online-users-num', {});
      expect(online).to.deep.include({ ok: true, output: 0 });
    });
  });
});
