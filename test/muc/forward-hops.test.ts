// A stanza forwarded from node to node while its room moves, until its hops run out (MAX_HOPS in
// src/muc/service.ts). One whose forwarding node proposed a stanza id is left to that node, which keeps
// it until a holder confirms it and sends it again to the holder it finds anew: refused here, the sender
// could be told no for a message that a resend of it then commits. One without a proposed id has nobody
// to send it again, and is refused.
import { expect } from 'chai';
import { Element } from '../../protocol/xml.js';
import type { MemoryLeases } from '../../storage/session-memory.js';
import { startRoomKit, SERVICE, conditionOf, type RoomKit } from './kit.js';

describe('room: a stanza whose hops between nodes ran out', () => {
  let kit: RoomKit;
  const sentTo: string[] = [];
  before(async () => {
    kit = await startRoomKit({ nodeId: 'hops-kit' });
    const send = kit.server.cluster.send;
    kit.server.cluster.send = (node, topic, data) => { sentTo.push(node); send(node, topic, data); };
  });
  after(async () => { await kit.stop(); });

  /** The room's lease taken by a node that is not this one (the kit's lease table stands for the cluster's). */
  const heldElsewhere = (room: string) => {
    const leases = (kit.server.sessions as unknown as { leases: MemoryLeases }).leases;
    expect(leases.acquire(`muc:${SERVICE}:${room}`, 'hops-elsewhere', 60_000)).to.equal('hops-elsewhere');
  };
  const message = (from: string, room: string, body: string) => {
    const m = new Element('message', { from, to: `${room}@${SERVICE}`, type: 'groupchat', id: 'h1' });
    m.c('body').t(body);
    return m.toString();
  };
  const settle = () => new Promise((r) => setTimeout(r, 300));

  it('leaves one with a proposed id to the node that forwarded it: no error to the sender, not forwarded again', async () => {
    const sender = await kit.client('hops-sender@localhost');
    heldElsewhere('hops1');
    sentTo.length = 0;
    kit.service.onForwarded({ service: SERVICE, hops: 3, xml: message(sender.full, 'hops1', 'moving'), id: 'proposed-h1', origin: 'hops-origin', at: Date.now() });
    await settle();
    expect(sender.inbox.filter((el) => el.attrs.type === 'error'), 'no error').to.deep.equal([]);
    expect(sentTo.filter((n) => n === 'hops-elsewhere'), 'not sent on').to.deep.equal([]);
  });

  it('refuses one without a proposed id, remote-server-timeout, as nobody would send it again', async () => {
    const sender = await kit.client('hops-sender2@localhost');
    heldElsewhere('hops2');
    sentTo.length = 0;
    kit.service.onForwarded({ service: SERVICE, hops: 3, xml: message(sender.full, 'hops2', 'moving too') });
    const error = await sender.next((el) => el.name === 'message' && el.attrs.type === 'error');
    expect(conditionOf(error)).to.equal('remote-server-timeout');
    expect(sentTo.filter((n) => n === 'hops-elsewhere'), 'not sent on').to.deep.equal([]);
  });

  it('forwards one with hops left to the holder, with the id proposed before', async () => {
    const sender = await kit.client('hops-sender3@localhost');
    heldElsewhere('hops3');
    sentTo.length = 0;
    kit.service.onForwarded({ service: SERVICE, hops: 1, xml: message(sender.full, 'hops3', 'on its way'), id: 'proposed-h3', origin: 'hops-origin', at: Date.now() });
    await settle();
    expect(sentTo).to.include('hops-elsewhere');
    expect(sender.inbox.filter((el) => el.attrs.type === 'error')).to.deep.equal([]);
  });
});
