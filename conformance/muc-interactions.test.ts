// The whole interaction set in a room's archive, over real sockets: a reaction sent without a store
// hint, a reply, a correction, a retraction by its author and a moderation are archived in the room's
// order with their stanza ids, and a MAM query returns them so; what the room refuses (a correction
// or retraction by someone else, corrections where the room forbids them) is refused with the
// condition named in docs/interactions.md; a retracted message's reactions are gone from the archive.
import { expect } from 'chai';
import { startServer, login, iq, sleep, xml, type RunningServer, type LoggedIn, type XmppElement } from './harness.js';

const MUC = 'conference.localhost';
const NS = {
  muc: 'http://jabber.org/protocol/muc',
  owner: 'http://jabber.org/protocol/muc#owner',
  data: 'jabber:x:data',
  mam: 'urn:xmpp:mam:2',
  forward: 'urn:xmpp:forward:0',
  sid: 'urn:xmpp:sid:0',
  reactions: 'urn:xmpp:reactions:0',
  reply: 'urn:xmpp:reply:0',
  correct: 'urn:xmpp:message-correct:0',
  retract: 'urn:xmpp:message-retract:1',
  moderate: 'urn:xmpp:message-moderate:1',
  stanzas: 'urn:ietf:params:xml:ns:xmpp-stanzas',
};

describe('conformance: interactions in a room archive (XEP-0444, 0461, 0308, 0424, 0425)', function () {
  this.timeout(30000);
  let server: RunningServer;
  const clients: LoggedIn[] = [];
  const room = `talk@${MUC}`;

  before(async function () {
    this.timeout(60000);
    server = await startServer({ users: { ana: 'pw', ben: 'pw' } });
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.stop()));
    await server?.stop();
  });

  async function join(user: string, nick: string): Promise<LoggedIn> {
    const c = await login(server.ports.c2s, user, 'pw');
    clients.push(c);
    await c.xmpp.send(xml('presence', { to: `${room}/${nick}` }, xml('x', { xmlns: NS.muc })));
    await c.waitFor((el) => el.is('presence') && el.attrs.from === `${room}/${nick}`);
    return c;
  }

  const send = (c: LoggedIn, id: string, ...children: XmppElement[]) => c.xmpp.send(xml('message', { to: room, type: 'groupchat', id }, ...children));
  const body = (text: string) => xml('body', {}, text);
  /** The room's copy of the message the client sent with this id, as another occupant gets it. */
  const echo = (c: LoggedIn, id: string) => c.waitFor((el) => el.is('message') && el.attrs.id === id && el.attrs.type === 'groupchat');
  const stanzaId = (el: XmppElement) => el.getChild('stanza-id', NS.sid)!.attrs.id!;
  const refusal = async (c: LoggedIn, id: string) => {
    const err = await c.waitFor((el) => el.is('message') && el.attrs.id === id && el.attrs.type === 'error');
    return err.getChild('error')!.children.find((e) => typeof e !== 'string' && e.attrs.xmlns === NS.stanzas && e.name !== 'text') as XmppElement;
  };

  async function archive(c: LoggedIn): Promise<XmppElement[]> {
    const queryid = `q${Date.now()}`;
    await iq(c, 'set', xml('query', { xmlns: NS.mam, queryid }), room);
    return c.received.filter((el) => el.getChild('result', NS.mam)?.attrs.queryid === queryid).map((el) => el.getChild('result', NS.mam)!);
  }

  it('archives a reaction, a reply, a correction, a retraction and a moderation, returned by MAM in order', async () => {
    const ana = await join('ana', 'ana');
    await iq(ana, 'set', xml('query', { xmlns: NS.owner }, xml('x', { xmlns: NS.data, type: 'submit' })), room);
    const ben = await join('ben', 'ben');

    await send(ana, 'a1', body('Status meeting at 10'));
    const s1 = stanzaId(await echo(ben, 'a1'));
    // A reaction without a <store/> hint.
    await send(ben, 'b1', xml('reactions', { xmlns: NS.reactions, id: s1 }, xml('reaction', {}, '👍')));
    const r1 = stanzaId(await echo(ana, 'b1'));
    await send(ben, 'b2', body('> Status meeting at 10\nI will be there'),
      xml('reply', { xmlns: NS.reply, to: `${room}/ana`, id: s1 }));
    const r2 = stanzaId(await echo(ana, 'b2'));
    await send(ana, 'a2', body('Status meeting at 11'), xml('replace', { xmlns: NS.correct, id: 'a1' }));
    const c1 = stanzaId(await echo(ben, 'a2'));
    await send(ana, 'a3', body('wrong room'));
    const s3 = stanzaId(await echo(ben, 'a3'));
    await send(ben, 'b3', xml('reactions', { xmlns: NS.reactions, id: s3 }, xml('reaction', {}, '😂')));
    const r3 = stanzaId(await echo(ana, 'b3'));
    await send(ana, 'a4', xml('retract', { xmlns: NS.retract, id: s3 }));
    const x1 = stanzaId(await echo(ben, 'a4'));
    await send(ben, 'b4', body('buy cheap watches'));
    const s4 = stanzaId(await echo(ana, 'b4'));
    await iq(ana, 'set', xml('moderate', { xmlns: NS.moderate, id: s4 }, xml('retract', { xmlns: NS.retract }), xml('reason', {}, 'spam')), room);
    await ben.waitFor((el) => el.is('message') && el.getChild('retract', NS.retract)?.attrs.id === s4);
    await sleep(300);

    const results = await archive(ben);
    expect(results.map((r) => r.attrs.id)).to.deep.equal([s1, r1, r2, c1, s3, r3, x1, s4]);
    const msg = (i: number) => results[i]!.getChild('forwarded', NS.forward)!.getChild('message')!;
    expect(msg(1).getChild('reactions', NS.reactions)!.attrs.id).to.equal(s1);
    expect(msg(2).getChild('reply', NS.reply)!.attrs.id).to.equal(s1);
    expect(msg(3).getChild('replace', NS.correct)!.attrs.id).to.equal('a1');
    expect(msg(3).getChildText('body')).to.equal('Status meeting at 11');
    // The retracted message is a tombstone, and its reaction went with it.
    expect(msg(4).getChild('retracted', NS.retract)).to.not.equal(undefined);
    expect(msg(4).getChild('body')).to.equal(undefined);
    expect(msg(5).getChild('reactions', NS.reactions)).to.equal(undefined);
    expect(msg(5).getChild('retracted', NS.retract)).to.not.equal(undefined);
    expect(msg(6).getChild('retract', NS.retract)!.attrs.id).to.equal(s3);
    // The moderated message: a tombstone naming the moderator.
    expect(msg(7).getChild('retracted', NS.retract)!.getChild('moderated', NS.moderate)).to.not.equal(undefined);
    expect(msg(7).getChild('body')).to.equal(undefined);
  });

  it('refuses corrections and retractions by someone else, and corrections where the room forbids them', async () => {
    const ana = clients[0]!;
    const ben = clients[1]!;
    await send(ana, 'a10', body('my words'));
    const s = stanzaId(await echo(ben, 'a10'));
    await send(ben, 'b10', body('your words'), xml('replace', { xmlns: NS.correct, id: 'a10' }));
    expect((await refusal(ben, 'b10')).name).to.equal('forbidden');
    await send(ben, 'b11', xml('retract', { xmlns: NS.retract, id: s }));
    expect((await refusal(ben, 'b11')).name).to.equal('forbidden');
    await iq(ana, 'set', xml('query', { xmlns: NS.owner }, xml('x', { xmlns: NS.data, type: 'submit' },
      xml('field', { var: 'FORM_TYPE' }, xml('value', {}, 'http://jabber.org/protocol/muc#roomconfig')),
      xml('field', { var: 'x-perch#allow-corrections' }, xml('value', {}, '0')),
      xml('field', { var: 'x-perch#allow-retractions' }, xml('value', {}, '0')))), room);
    await send(ana, 'a11', body('my better words'), xml('replace', { xmlns: NS.correct, id: 'a10' }));
    expect((await refusal(ana, 'a11')).name).to.equal('not-allowed');
    await send(ana, 'a12', xml('retract', { xmlns: NS.retract, id: s }));
    expect((await refusal(ana, 'a12')).name).to.equal('not-allowed');
    const results = await archive(ana);
    expect(results.at(-1)!.attrs.id).to.equal(s);
  });
});
