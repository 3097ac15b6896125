// A handler that throws or rejects refuses the one stanza it was handling (internal-server-error, or
// the StanzaError it threw), is logged and counted, and the session, the room and the node go on.
import { expect } from 'chai';
import { EventEmitter } from 'node:events';
import { Element } from '../protocol/xml.js';
import { StanzaError } from '../protocol/errors.js';
import { guardProcess } from '../src/process-guard.js';
import type { ClientSession } from '../src/c2s.js';
import type { Logger } from '../src/log.js';
import { Metrics } from '../src/metrics.js';
import { startRoomKit, conditionOf, roomJid, type RoomKit, type FakeClient } from './muc/kit.js';

const BOOM = 'boom';

async function handlerErrors(kit: RoomKit, where: string): Promise<number> {
  const m = await kit.server.metrics.handlerErrors.get();
  return m.values.find((v) => v.labels.where === where)?.value ?? 0;
}

function chat(to: string, body: string, id: string): Element {
  return new Element('message', { to, type: 'chat', id }).append(new Element('body').t(body));
}

describe('isolation: a failing handler refuses one stanza and nothing else', function () {
  this.timeout(20000);
  let kit: RoomKit;
  let alice: FakeClient;
  let bob: FakeClient;

  before(async () => {
    kit = await startRoomKit();
    alice = await kit.client('alice@localhost');
    bob = await kit.client('bob@localhost');
    // One hook of each kind, failing only for a body or an id that says so.
    kit.server.hooks.on('client/stanza', ({ stanza }) => {
      if (stanza.attrs.id === 'sync-throw') throw new Error('a bug in a sync hook');
      if (stanza.attrs.id === 'sync-refuse') throw new StanzaError('policy-violation', 'not this one');
      return false;
    }, 1000);
    kit.server.hooks.on('message/bare', async ({ stanza }) => {
      await Promise.resolve();
      if (stanza.getChildText('body') === BOOM) throw new Error('a bug in an async hook');
      return false;
    }, 1000);
    kit.server.hooks.on('message/host', async () => {
      await Promise.resolve();
      throw new Error('a bug in a host handler');
    }, 1000);
    kit.service.hooks.admit((a) => {
      if (a.stanza.attrs.id !== 'admit-reject') return undefined;
      return Promise.reject(new Error('an async room policy that rejects'));
    });
    kit.service.hooks.on('message/pre-groupchat', ({ body }) => {
      if (body?.text() === BOOM) throw new Error('a bug in a room check');
      return undefined;
    });
    kit.service.hooks.on('message/committed', ({ body }) => {
      if (body?.text() === 'after-boom') throw new Error('a bug in a room after-handler');
      return undefined;
    });
  });
  after(async () => {
    await kit?.stop();
  });

  function clientSession(c: FakeClient): ClientSession {
    return kit.server.local.get(c.full) as unknown as ClientSession;
  }

  it('a client/stanza hook that throws: internal-server-error to the sender, the next stanza goes through', async () => {
    const before = await handlerErrors(kit, 'client');
    const m = chat(bob.bare, 'hi', 'sync-throw');
    m.attrs.from = alice.full;
    kit.server.handleClientStanza(clientSession(alice), m);
    const err = await alice.next((el) => el.attrs.id === 'sync-throw');
    expect(conditionOf(err)).to.equal('internal-server-error');
    expect(await handlerErrors(kit, 'client')).to.equal(before + 1);
    const ok = chat(bob.bare, 'after', 'next1');
    ok.attrs.from = alice.full;
    kit.server.handleClientStanza(clientSession(alice), ok);
    const got = await bob.next((el) => el.attrs.id === 'next1');
    expect(got.getChildText('body')).to.equal('after');
  });

  it('a hook that throws a StanzaError: that condition, not internal-server-error, and nothing counted', async () => {
    const before = await handlerErrors(kit, 'client');
    const m = chat(bob.bare, 'hi', 'sync-refuse');
    m.attrs.from = alice.full;
    kit.server.handleClientStanza(clientSession(alice), m);
    const err = await alice.next((el) => el.attrs.id === 'sync-refuse');
    expect(conditionOf(err)).to.equal('policy-violation');
    expect(await handlerErrors(kit, 'client')).to.equal(before);
  });

  it('an async routing hook that rejects: the sender gets internal-server-error, the next message is delivered', async () => {
    alice.send(chat(bob.bare, BOOM, 'async1'));
    const err = await alice.next((el) => el.attrs.id === 'async1');
    expect(conditionOf(err)).to.equal('internal-server-error');
    alice.send(chat(bob.bare, 'fine', 'async2'));
    expect((await bob.next((el) => el.attrs.id === 'async2')).getChildText('body')).to.equal('fine');
  });

  it('a message to the host whose handler rejects is bounced, not an unhandled rejection', async () => {
    const before = await handlerErrors(kit, 'route');
    alice.send(chat('localhost', 'hello server', 'host1'));
    const err = await alice.next((el) => el.attrs.id === 'host1');
    expect(conditionOf(err)).to.equal('internal-server-error');
    expect(await handlerErrors(kit, 'route')).to.equal(before + 1);
  });

  it('an IQ handler that throws synchronously: internal-server-error, the next IQ is answered', async () => {
    kit.server.iq('host', 'urn:example:broken', 'get', () => { throw new Error('a bug in an IQ handler'); });
    const err = await alice.iq('get', 'localhost', new Element('q', { xmlns: 'urn:example:broken' }));
    expect(conditionOf(err)).to.equal('internal-server-error');
    const pong = await alice.iq('get', 'localhost', new Element('ping', { xmlns: 'urn:xmpp:ping' }));
    expect(pong.attrs.type).to.equal('result');
  });

  describe('in a room', () => {
    const room = 'isolated';
    before(async () => {
      const self = await alice.join(room, 'alice');
      expect(self.attrs.type).to.equal(undefined);
      // XEP-0045 §10.1.2: an instant room, unlocked.
      const unlocked = await alice.iq('set', roomJid(room), new Element('query', { xmlns: 'http://jabber.org/protocol/muc#owner' })
        .append(new Element('x', { xmlns: 'jabber:x:data', type: 'submit' })));
      expect(unlocked.attrs.type).to.equal('result');
      expect((await bob.join(room, 'bob')).attrs.type).to.equal(undefined);
      alice.clear();
      bob.clear();
    });

    function groupchat(from: FakeClient, body: string, id: string): void {
      from.send(new Element('message', { to: roomJid(room), type: 'groupchat', id }).append(new Element('body').t(body)));
    }

    it('an async admission policy that rejects: the stanza is refused, the room serves the next one', async () => {
      const before = await handlerErrors(kit, 'room');
      groupchat(alice, 'x', 'admit-reject');
      const err = await alice.next((el) => el.attrs.id === 'admit-reject');
      expect(conditionOf(err)).to.equal('internal-server-error');
      expect(await handlerErrors(kit, 'room')).to.equal(before + 1);
      groupchat(alice, 'after the policy', 'r1');
      await bob.next((el) => el.getChildText('body') === 'after the policy');
    });

    it('a room check that throws: internal-server-error for that message, the room goes on', async () => {
      groupchat(alice, BOOM, 'r2');
      const err = await alice.next((el) => el.attrs.id === 'r2' && el.attrs.type === 'error');
      expect(conditionOf(err)).to.equal('internal-server-error');
      await bob.next((el) => el.getChildText('body') === BOOM, 300).then(() => { throw new Error('a refused message was delivered'); }, () => {});
      groupchat(bob, 'still here', 'r3');
      await alice.next((el) => el.getChildText('body') === 'still here');
    });

    it('an after-handler that throws never touches the message: it is delivered', async () => {
      groupchat(alice, 'after-boom', 'r4');
      await bob.next((el) => el.getChildText('body') === 'after-boom');
      groupchat(alice, 'next', 'r5');
      await bob.next((el) => el.getChildText('body') === 'next');
    });
  });
});

describe('isolation: errors that reach the process', () => {
  function fakeServer() {
    const lines: string[] = [];
    const log = { error: (msg: string) => lines.push(msg), warn() {}, info() {}, debug() {}, child() { return log; } } as unknown as Logger;
    let stopped = 0;
    return { lines, log, metrics: new Metrics(), get stopped() { return stopped; }, async stop() { stopped++; } };
  }

  it('an unhandled rejection is logged and counted, and the process serves on', async () => {
    const s = fakeServer();
    const exits: number[] = [];
    const target = new EventEmitter();
    const unguard = guardProcess(s, { exit: (c) => exits.push(c), target });
    try {
      target.emit('unhandledRejection', new Error('forgotten'), Promise.resolve());
      await new Promise((r) => setTimeout(r, 20));
      expect(s.lines).to.deep.equal(['unhandled promise rejection; serving on']);
      expect(exits).to.deep.equal([]);
      expect(s.stopped).to.equal(0);
      expect((await s.metrics.handlerErrors.get()).values[0]?.value).to.equal(1);
    } finally {
      unguard();
    }
  });

  it('an uncaught exception stops the server gracefully, then exits 1', async () => {
    const s = fakeServer();
    const exits: number[] = [];
    const target = new EventEmitter();
    const unguard = guardProcess(s, { exit: (c) => exits.push(c), target });
    try {
      target.emit('uncaughtException', new Error('thrown from a timer'));
      await new Promise((r) => setTimeout(r, 20));
      expect(s.lines).to.deep.equal(['uncaught exception; stopping']);
      expect(s.stopped).to.equal(1);
      expect(exits).to.deep.equal([1]);
    } finally {
      unguard();
    }
  });
});
