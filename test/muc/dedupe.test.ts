// A room message sent again is recognised and answered as the first was, never archived or broadcast
// twice: by the sender's origin-id (XEP-0359; a client resending after a lost connection) and by the
// stanza id a forwarding node proposed (a node resending after its owner died), also after the room is
// loaded anew from its archive (src/muc/recent.ts).
import { expect } from 'chai';
import { Element } from '../../protocol/xml.js';
import { RecentMessages, originKey, idKey, storedOriginId } from '../../src/muc/recent.js';
import { startRoomKit, createRoom, SERVICE, type RoomKit } from './kit.js';

const SID = 'urn:xmpp:sid:0';

function groupchat(room: string, body: string, originId?: string): Element {
  const m = new Element('message', { to: `${room}@${SERVICE}`, type: 'groupchat' });
  m.c('body').t(body);
  if (originId !== undefined) m.c('origin-id', { xmlns: SID, id: originId });
  return m;
}

describe('room: messages sent again (dedupe)', () => {
  describe('RecentMessages', () => {
    it('reads the origin-id of a stored stanza in either quoting, and nothing else', () => {
      expect(storedOriginId(`<message><body>x</body><origin-id xmlns='urn:xmpp:sid:0' id='a1'/></message>`)).to.equal('a1');
      expect(storedOriginId(`<message><origin-id id="b2" xmlns="urn:xmpp:sid:0"/></message>`)).to.equal('b2');
      expect(storedOriginId(`<message><origin-id xmlns='urn:other' id='c3'/></message>`)).to.equal(null);
      expect(storedOriginId(`<message><body>origin-id</body></message>`)).to.equal(null);
    });

    it('is bounded: the oldest keys go first, and a key seen again becomes the newest', () => {
      const r = new RecentMessages(3);
      const a = { xml: 'a', waiters: [] };
      r.add([idKey('1'), idKey('2')], a);
      r.add([idKey('3')], { xml: 'b', waiters: [] });
      r.add([idKey('1')], a);
      r.add([idKey('4')], { xml: 'c', waiters: [] });
      expect(r.size).to.equal(3);
      expect(r.find(idKey('2')), 'the oldest').to.equal(undefined);
      expect(r.find(idKey('1'))).to.equal(a);
      expect(r.find(null)).to.equal(undefined);
    });

    it('loads archived messages under their stanza id and their sender\'s origin-id, retracted ones by their id only', () => {
      const r = new RecentMessages();
      const base = { archive: 'r@c', stamp: new Date(), fromJid: 'r@c/n', body: 'x', id: 1 };
      r.load([
        { ...base, stanzaId: 's1', realJid: 'u@h', stanza: `<message><origin-id xmlns='urn:xmpp:sid:0' id='o1'/></message>`, retracted: false },
        { ...base, stanzaId: 's2', realJid: 'u@h', stanza: `<message><origin-id xmlns='urn:xmpp:sid:0' id='o2'/></message>`, retracted: true },
        { ...base, stanzaId: 's3', realJid: null, stanza: `<message><origin-id xmlns='urn:xmpp:sid:0' id='o3'/></message>`, retracted: false },
      ]);
      expect(r.find(idKey('s1'))?.xml).to.include('o1');
      expect(r.find(originKey('u@h', 'o1'))).to.equal(r.find(idKey('s1')));
      expect(r.find(idKey('s2')), 'retracted: by its id').to.not.equal(undefined);
      expect(r.find(originKey('u@h', 'o2')), 'retracted: not by its origin-id').to.equal(undefined);
      expect(r.find(idKey('s3'))).to.not.equal(undefined);
      expect(r.find(originKey('u@h', 'o3')), 'no real JID: by its id only').to.equal(undefined);
    });
  });

  describe('in a room', () => {
    let kit: RoomKit;
    before(async () => { kit = await startRoomKit({ nodeId: 'dedupe-kit' }); });
    after(async () => { await kit.stop(); });

    async function archived(room: string): Promise<{ stanzaId: string; body: string | null }[]> {
      await kit.service.writer.flushed();
      return (await kit.server.stores.archive.lastN(`${room}@${SERVICE}`, 100)).map((m) => ({ stanzaId: m.stanzaId, body: m.body }));
    }

    it('a client resending with the same origin-id gets the reflection again; nobody else sees it twice; archived once', async () => {
      const owner = await kit.client('dd-owner@localhost');
      await createRoom(owner, 'dd1', { 'muc#roomconfig_persistentroom': '1' });
      const other = await kit.client('dd-other@localhost');
      await other.join('dd1', 'other');
      owner.clear();
      other.clear();
      owner.send(groupchat('dd1', 'once', 'origin-1'));
      const first = await owner.next((el) => el.getChildText('body') === 'once');
      await other.next((el) => el.getChildText('body') === 'once');
      owner.send(groupchat('dd1', 'once', 'origin-1'));
      const again = await owner.next((el) => el.getChildText('body') === 'once');
      expect(again.getChild('stanza-id', SID)?.attrs.id, 'the same message').to.equal(first.getChild('stanza-id', SID)?.attrs.id);
      await new Promise((r) => setTimeout(r, 200));
      expect(other.inbox.filter((el) => el.getChildText('body') === 'once'), 'not broadcast again').to.have.length(0);
      expect((await archived('dd1')).filter((m) => m.body === 'once')).to.have.length(1);
      // Another sender's message with the same origin-id is its own message.
      other.send(groupchat('dd1', 'same id, other sender', 'origin-1'));
      await owner.next((el) => el.getChildText('body') === 'same id, other sender');
    });

    it('a stanza a node forwards again (same proposed id) is confirmed, not archived or broadcast twice, and keeps that id', async () => {
      const owner = await kit.client('dd-owner2@localhost');
      await createRoom(owner, 'dd2', { 'muc#roomconfig_persistentroom': '1' });
      owner.clear();
      const xml = groupchat('dd2', 'forwarded').toString().replace('<message ', `<message from='${owner.full}' `);
      const confirmations: unknown[] = [];
      kit.server.cluster.on('muc', (data) => { if ((data as { confirm?: string }).confirm) confirmations.push(data); });
      const forwarded = { service: SERVICE, xml, hops: 1, id: 'proposed-1', origin: kit.server.sessions.nodeId };
      kit.service.onForwarded(forwarded);
      const seen = await owner.next((el) => el.getChildText('body') === 'forwarded');
      expect(seen.getChild('stanza-id', SID)?.attrs.id).to.equal('proposed-1');
      kit.service.onForwarded(forwarded);
      await new Promise((r) => setTimeout(r, 200));
      expect(owner.inbox.filter((el) => el.getChildText('body') === 'forwarded'), 'no second fan-out').to.have.length(0);
      expect((await archived('dd2')).filter((m) => m.stanzaId === 'proposed-1')).to.have.length(1);
      expect(confirmations, 'each sending confirmed').to.have.length(2);
    });

    it('a room loaded anew reads its archive once, for its resend check, its join history and its retraction authors alike', async () => {
      const owner = await kit.client('dd-owner4@localhost');
      await createRoom(owner, 'dd4', { 'muc#roomconfig_persistentroom': '1' });
      owner.send(groupchat('dd4', 'first', 'origin-4a'));
      owner.send(groupchat('dd4', 'second', 'origin-4b'));
      const second = await owner.next((el) => el.getChildText('body') === 'second');
      await kit.service.writer.flushed();
      // The room goes (its node let it go), with its owner still inside; the next stanza loads it.
      kit.service.forget([...kit.service.loadedRooms()].find((r) => r.name === 'dd4')!);
      const archive = kit.server.stores.archive;
      const lastN = archive.lastN.bind(archive);
      const reads: string[] = [];
      archive.lastN = (jid, n, opts) => { reads.push(jid); return lastN(jid, n, opts); };
      try {
        const joiner = await kit.client('dd-joiner4@localhost');
        await joiner.join('dd4', 'joiner');
        const history = await joiner.next((el) => el.getChildText('body') === 'second' && el.getChild('delay', 'urn:xmpp:delay') !== undefined);
        expect(history.getChild('stanza-id', SID)?.attrs.id).to.equal(second.getChild('stanza-id', SID)?.attrs.id);
        owner.clear();
        // Sent again: recognised by what the load read.
        owner.send(groupchat('dd4', 'second', 'origin-4b'));
        const again = await owner.next((el) => el.getChildText('body') === 'second');
        expect(again.getChild('stanza-id', SID)?.attrs.id).to.equal(second.getChild('stanza-id', SID)?.attrs.id);
        // Someone else's retraction of it is refused: its author came from the same read.
        const retraction = new Element('message', { to: `dd4@${SERVICE}`, type: 'groupchat' });
        retraction.c('retract', { xmlns: 'urn:xmpp:message-retract:1', id: second.getChild('stanza-id', SID)!.attrs.id! });
        joiner.send(retraction);
        const refused = await joiner.next((el) => el.attrs.type === 'error');
        expect(refused.getChild('error')?.getChild('forbidden', 'urn:ietf:params:xml:ns:xmpp-stanzas')).to.not.equal(undefined);
        expect(reads, 'archive reads while the room loaded').to.deep.equal([`dd4@${SERVICE}`]);
      } finally {
        archive.lastN = lastN;
      }
      expect((await archived('dd4')).map((m) => m.body)).to.deep.equal(['first', 'second']);
    });

    it('what the archive holds is recognised by a room loaded anew (the next owner after a crash)', async () => {
      const owner = await kit.client('dd-owner3@localhost');
      await createRoom(owner, 'dd3', { 'muc#roomconfig_persistentroom': '1' });
      owner.send(groupchat('dd3', 'before the crash', 'origin-3'));
      await owner.next((el) => el.getChildText('body') === 'before the crash');
      const fresh = new RecentMessages();
      fresh.load(await kit.server.stores.archive.lastN(`dd3@${SERVICE}`, 100));
      expect(fresh.find(originKey('dd-owner3@localhost', 'origin-3'))?.xml).to.include('before the crash');
    });
  });
});
