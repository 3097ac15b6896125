// A client that could not resume sends again what its lost session's server never acknowledged
// (XEP-0198 §5), same origin-id (XEP-0359). A node stopping between handling a one-to-one message and
// the <a/> that counts it made the recipient get, and both archives keep, that message twice (the
// rolling-restart fault). After a failed <resume/>, a message the sender's archive already has is
// acknowledged and not sent again; a new one goes through (docs/architecture.md, "Delivery guarantees").
import { expect } from 'chai';
import {
  startServer, connectRaw, openSecureStream, openStream, rawLogin, randomName, sleep,
  type RunningServer, type RawConnection, type RawSession,
} from './harness.js';

const SM = 'urn:xmpp:sm:3';

describe('conformance: a one-to-one message sent again after a failed resumption', function () {
  this.timeout(30000);
  let server: RunningServer;
  const sender = randomName('rs');
  const recipient = randomName('rr');
  const open: RawConnection[] = [];

  before(async function () {
    this.timeout(60000);
    server = await startServer({ users: { [sender]: 'pw', [recipient]: 'pw' } });
  });
  after(async () => {
    for (const c of open.splice(0)) c.close();
    await server?.stop();
  });

  /** Logs in; with resumeFrom, first asks to resume that (gone) session and expects <failed/>. */
  async function streamWithSm(user: string, resumeFrom?: string): Promise<RawConnection> {
    const raw = await connectRaw(server.ports.c2s);
    open.push(raw);
    await openSecureStream(raw);
    raw.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${user}\0pw`).toString('base64')}</auth>`);
    await raw.waitFor(/<success[^>]*(\/>|>[\s\S]*?<\/success>)/);
    await openStream(raw);
    if (resumeFrom !== undefined) {
      raw.send(`<resume xmlns='${SM}' previd='${resumeFrom}' h='0'/>`);
      await raw.waitFor(/<failed[\s\S]*?(<\/failed>|\/>)/);
    }
    raw.send(`<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>desk</resource></bind></iq>`);
    await raw.waitFor(/<iq[^>]*id=['"]bind1['"][\s\S]*?<\/iq>/);
    raw.send(`<enable xmlns='${SM}' resume='true'/>`);
    await raw.waitFor(/<enabled[^>]*>/);
    return raw;
  }

  function chat(token: string): string {
    return `<message to='${recipient}@localhost' type='chat' id='${token}'><body>R ${token}</body>` +
      `<origin-id xmlns='urn:xmpp:sid:0' id='${token}'/></message>`;
  }

  /** Sends a message and waits for the <a/> that counts it (h = n). */
  async function sendAcked(raw: RawConnection, token: string, n: number): Promise<void> {
    raw.send(chat(token) + `<r xmlns='${SM}'/>`);
    await raw.waitFor(new RegExp(`<a xmlns=['"]${SM}['"] h=['"]${n}['"]/>`), 10000);
  }

  async function ownArchiveCount(s: RawSession, token: string): Promise<number> {
    s.send(`<iq type='set' id='mam-${token}'><query xmlns='urn:xmpp:mam:2' queryid='q-${token}'/></iq>`);
    const end = new RegExp(`<iq[^>]*id=['"]mam-${token}['"]`);
    const all = await s.waitFor((t) => end.test(t), 10000);
    return all.split(`R ${token}<`).length - 1;
  }

  it('acknowledges a message the sender\'s archive already has and does not deliver it again; a new one goes through', async () => {
    const bob = await rawLogin(server.ports.c2s, recipient, 'pw', 'phone');
    open.push(bob);
    bob.send('<presence/>');
    await sleep(200);

    const first = await streamWithSm(sender);
    const token = randomName('m');
    await sendAcked(first, token, 1);
    first.close();

    // The client never saw that <a/> (the node stopped): it resumes, fails, binds, sends it again.
    const again = await streamWithSm(sender, 'gone-session');
    await sendAcked(again, token, 1);
    const fresh = randomName('n');
    await sendAcked(again, fresh, 2);
    await bob.waitFor((t) => t.includes(`R ${fresh}<`), 5000);
    await sleep(300);
    const seen = bob.text.split(`R ${token}<`).length - 1;
    expect(seen, 'the recipient got the message once').to.equal(1);
    expect(await ownArchiveCount(bob, token), 'the recipient\'s archive holds it once').to.equal(1);
    expect(await ownArchiveCount(bob, fresh), 'a new message after the failed resumption is delivered and archived').to.equal(1);
  });

  // The rolling-restart fault: the room committed a message, its sender's node stopped before the <a/>
  // that counts it, the client bound anew and sent it again, and the old session's departure reached
  // the room first. The room knows it: no error for a message it keeps, not archived twice; a new
  // message from someone not in the room is still refused.
  it('recognises a room message sent again by a client that is no longer an occupant; a new one is refused', async () => {
    const room = `${randomName('resend')}@conference.localhost`;
    // Someone stays, so the room outlives the sender's departure.
    const bob = await rawLogin(server.ports.c2s, recipient, 'pw', 'tablet');
    open.push(bob);
    bob.send(`<presence to='${room}/bob'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
    await bob.waitFor((t) => t.includes("code='110'") || t.includes('code="110"'), 5000);
    bob.send(`<iq type='set' id='unlock' to='${room}'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>`);
    await bob.waitFor(/<iq[^>]*id=['"]unlock['"]/, 5000);
    const alice = await rawLogin(server.ports.c2s, sender, 'pw', 'laptop');
    open.push(alice);
    alice.send(`<presence to='${room}/alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
    await alice.waitFor((t) => t.includes("code='110'") || t.includes('code="110"'), 5000);
    const token = randomName('g');
    const groupchat = (t: string) => `<message to='${room}' type='groupchat' id='${t}'><body>R ${t}</body><origin-id xmlns='urn:xmpp:sid:0' id='${t}'/></message>`;
    alice.send(groupchat(token));
    await alice.waitFor((t) => t.includes(`R ${token}<`), 5000);
    alice.send(`<presence to='${room}/alice' type='unavailable'/>`);
    await alice.waitFor((t) => /type=['"]unavailable['"]/.test(t), 5000);

    alice.send(groupchat(token));
    const fresh = randomName('n');
    alice.send(groupchat(fresh));
    const refused = await alice.waitFor(new RegExp(`<message[^>]*id=['"]${fresh}['"][^>]*type=['"]error['"][\\s\\S]*?</message>|<message[^>]*type=['"]error['"][^>]*id=['"]${fresh}['"][\\s\\S]*?</message>`), 5000);
    expect(refused, 'a new message from a non-occupant').to.include('not-acceptable');
    expect(alice.text, 'the message the room already has is not refused').to.not.match(new RegExp(`<message[^>]*id=['"]${token}['"][^>]*type=['"]error['"]|<message[^>]*type=['"]error['"][^>]*id=['"]${token}['"]`));

    alice.send(`<iq type='set' id='rm-${token}' to='${room}'><query xmlns='urn:xmpp:mam:2' queryid='rq-${token}'/></iq>`);
    const all = await alice.waitFor((t) => new RegExp(`<iq[^>]*id=['"]rm-${token}['"]`).test(t), 10000);
    expect(all.split(`R ${token}<`).length - 1, "the room's archive holds it once").to.equal(1);
  });
});
