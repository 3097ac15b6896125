import { expect } from 'chai';
import { Element } from '../../protocol/xml.js';
import { NS } from '../../protocol/namespaces.js';
import { parseJid } from '../../protocol/jid.js';
import { StanzaError } from '../../protocol/errors.js';
import { formValue } from '../../protocol/forms.js';
import { stanzaErrorOf } from '../unit-server.js';
import type { Server, DiscoNodeHandler } from '../../src/context.js';
import {
  CommandSessions, commandElement, commandItems, commandNodeInfo, handleCommandRequest, registerCommand,
  resolveAction, type AdhocCommand,
} from '../../src/commands/registry.js';

const DOMAIN = 'example.com';
const admin = parseJid('admin@example.com/desk');
const other = parseJid('admin@example.com/phone');
const user = parseJid('user@example.com/home');
const host = parseJid(DOMAIN);

/** The part of a server the command registry touches. */
function fakeServer(): Server {
  const nodes = new Map<string, DiscoNodeHandler>();
  return { domain: DOMAIN, disco: { nodes } } as unknown as Server; // only domain and disco.nodes are used
}

function command(node: string, attrs: Record<string, string> = {}, form?: Record<string, string>): Element {
  const c = new Element('command', { xmlns: NS.commands, node, ...attrs });
  if (form) {
    const x = c.c('x', { xmlns: NS.dataForms, type: 'submit' });
    for (const [k, v] of Object.entries(form)) x.c('field', { var: k }).c('value').t(v);
  }
  return c;
}


/** A two-stage command: asks for a name, then completes with a greeting. */
const greet: AdhocCommand = {
  node: 'greet', name: 'Greet', allowed: (from) => from.local === 'admin',
  async execute(ctx) {
    if (!ctx.form) return { status: 'executing', form: { type: 'form', fields: [{ var: 'name', type: 'text-single', values: [] }] } };
    const name = formValue(ctx.form, 'name');
    if (!name) throw new StanzaError('bad-request', 'no name', 'modify');
    ctx.state.calls = ((ctx.state.calls as number | undefined) ?? 0) + 1;
    return { status: 'completed', notes: [{ text: `hello ${name}` }] };
  },
};

describe('ad-hoc commands', () => {
  describe('resolveAction', () => {
    const stage = { allowed: ['prev', 'complete'] as ('prev' | 'complete')[], defaultAction: 'complete' as const };
    it('execute (or no action) is the stage default', () => {
      expect(resolveAction(undefined, stage)).to.equal('complete');
      expect(resolveAction('execute', stage)).to.equal('complete');
    });
    it('rejects unknown actions with malformed-action', () => {
      const e = (() => { try { resolveAction('jump', stage); } catch (err) { return err as StanzaError; } })();
      expect(e?.condition).to.equal('bad-request');
      expect(e?.appCondition?.name).to.equal('malformed-action');
    });
    it('rejects actions the stage does not offer with bad-action', () => {
      const e = (() => { try { resolveAction('next', stage); } catch (err) { return err as StanzaError; } })();
      expect(e?.appCondition?.name).to.equal('bad-action');
    });
    it('always allows cancel; a new session starts with execute', () => {
      expect(resolveAction('cancel', stage)).to.equal('cancel');
      expect(resolveAction(undefined, null)).to.equal('execute');
    });
  });

  describe('commandElement', () => {
    it('lists actions in schema order with the default', () => {
      const el = commandElement('n', 's1', {
        status: 'executing', form: { type: 'form', fields: [] }, actions: { allowed: ['complete', 'prev'], default: 'complete' },
      });
      expect(el.attrs).to.include({ node: 'n', sessionid: 's1', status: 'executing' });
      const actions = el.getChild('actions', NS.commands)!;
      expect(actions.attrs.execute).to.equal('complete');
      expect(actions.elements().map((e) => e.name)).to.deep.equal(['prev', 'complete']);
      expect(el.getChild('x', NS.dataForms)?.attrs.type).to.equal('form');
    });
    it('carries notes on completion and nothing on cancel', () => {
      const el = commandElement('n', 's1', { status: 'completed', notes: [{ type: 'error', text: 'no' }] });
      expect(el.getChild('note', NS.commands)?.attrs.type).to.equal('error');
      expect(el.getChild('actions', NS.commands)).to.equal(undefined);
      expect(commandElement('n', 's1', { status: 'canceled' }).elements()).to.have.length(0);
    });
  });

  describe('CommandSessions', () => {
    it('lets only the same requester continue, and expires sessions', () => {
      let now = 1000;
      const sessions = new CommandSessions(600_000, () => now);
      const s = sessions.create(DOMAIN, 'greet', admin.toString());
      sessions.save(s);
      expect(sessions.take(s.id, DOMAIN, 'greet', admin.toString())).to.equal(s);
      expect(() => sessions.take(s.id, DOMAIN, 'greet', other.toString())).to.throw(StanzaError);
      expect(() => sessions.take(s.id, DOMAIN, 'other-node', admin.toString())).to.throw(StanzaError);
      now += 600_000;
      try {
        sessions.take(s.id, DOMAIN, 'greet', admin.toString());
        expect.fail('expired session accepted');
      } catch (e) {
        expect((e as StanzaError).condition).to.equal('not-allowed');
        expect((e as StanzaError).appCondition?.name).to.equal('session-expired');
      }
      expect(sessions.size).to.equal(0);
    });

    it('bounds the sessions one requester holds and sweeps abandoned ones', () => {
      let now = 0;
      const sessions = new CommandSessions(600_000, () => now, 2);
      sessions.save(sessions.create(DOMAIN, 'greet', admin.toString()));
      sessions.save(sessions.create(DOMAIN, 'greet', admin.toString()));
      expect(() => sessions.create(DOMAIN, 'greet', admin.toString())).to.throw(StanzaError);
      sessions.create(DOMAIN, 'greet', other.toString());
      now = 600_000;
      sessions.save(sessions.create(DOMAIN, 'greet', admin.toString()));
      expect(sessions.size).to.equal(1);
    });
  });

  describe('handleCommandRequest', () => {
    let server: Server;
    beforeEach(() => {
      server = fakeServer();
      registerCommand(server, greet);
    });

    it('runs a two-stage command', async () => {
      const first = await handleCommandRequest(server, 'host', command('greet', { action: 'execute' }), admin, host);
      expect(first.attrs.status).to.equal('executing');
      const sid = first.attrs.sessionid!;
      expect(sid).to.be.a('string').and.not.equal('');
      expect(first.getChild('actions', NS.commands)?.attrs.execute).to.equal('complete');
      const second = await handleCommandRequest(server, 'host', command('greet', { sessionid: sid }, { name: 'x' }), admin, host);
      expect(second.attrs).to.include({ status: 'completed', sessionid: sid });
      expect(second.getChildText('note', NS.commands)).to.equal('hello x');
      // The session is over.
      const e = await stanzaErrorOf(handleCommandRequest(server, 'host', command('greet', { sessionid: sid }, { name: 'x' }), admin, host));
      expect(e.appCondition?.name).to.equal('bad-sessionid');
    });

    it('keeps the session after an error the requester can correct', async () => {
      const first = await handleCommandRequest(server, 'host', command('greet'), admin, host);
      const sid = first.attrs.sessionid!;
      await stanzaErrorOf(handleCommandRequest(server, 'host', command('greet', { sessionid: sid }, { name: '' }), admin, host));
      const again = await handleCommandRequest(server, 'host', command('greet', { sessionid: sid }, { name: 'y' }), admin, host);
      expect(again.attrs.status).to.equal('completed');
    });

    it('cancels', async () => {
      const first = await handleCommandRequest(server, 'host', command('greet'), admin, host);
      const sid = first.attrs.sessionid!;
      const c = await handleCommandRequest(server, 'host', command('greet', { sessionid: sid, action: 'cancel' }), admin, host);
      expect(c.attrs).to.include({ status: 'canceled', sessionid: sid });
      const e = await stanzaErrorOf(handleCommandRequest(server, 'host', command('greet', { sessionid: sid }), admin, host));
      expect(e.appCondition?.name).to.equal('bad-sessionid');
    });

    it('refuses another resource, unknown sessions, forbidden users and unknown nodes', async () => {
      const first = await handleCommandRequest(server, 'host', command('greet'), admin, host);
      const sid = first.attrs.sessionid!;
      expect((await stanzaErrorOf(handleCommandRequest(server, 'host', command('greet', { sessionid: sid }), other, host))).appCondition?.name)
        .to.equal('bad-sessionid');
      expect((await stanzaErrorOf(handleCommandRequest(server, 'host', command('greet', { sessionid: 'nope' }), admin, host))).condition)
        .to.equal('bad-request');
      expect((await stanzaErrorOf(handleCommandRequest(server, 'host', command('greet'), user, host))).condition).to.equal('forbidden');
      expect((await stanzaErrorOf(handleCommandRequest(server, 'host', command('missing'), admin, host))).condition).to.equal('item-not-found');
      expect((await stanzaErrorOf(handleCommandRequest(server, 'host', command('greet', { action: 'jump' }), admin, host))).appCondition?.name)
        .to.equal('malformed-action');
      expect((await stanzaErrorOf(handleCommandRequest(server, 'host', command('greet', { sessionid: sid, action: 'next' }), admin, host))).appCondition?.name)
        .to.equal('bad-action');
    });

    it('lists and describes only the commands the requester may use', () => {
      expect(commandItems(server, 'host', admin).map((i) => i.attrs)).to.deep.equal([{ jid: DOMAIN, node: 'greet', name: 'Greet' }]);
      expect(commandItems(server, 'host', user)).to.have.length(0);
      const info = server.disco.nodes.get('greet')!.info!(admin)!;
      expect(info.getChild('identity', NS.discoInfo)?.attrs).to.include({ category: 'automation', type: 'command-node' });
      expect(info.getChildren('feature', NS.discoInfo).map((f) => f.attrs.var)).to.deep.equal([NS.commands, NS.dataForms]);
      expect(() => commandNodeInfo(server, 'host', 'greet', user)).to.throw(StanzaError);
      expect(commandNodeInfo(server, 'host', 'missing', admin)).to.equal(null);
    });
  });
});
