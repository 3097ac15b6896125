// Multi-user chat (XEP-0045) with archived rooms: one MucService per configured service domain.
// This module wires the room machinery of src/muc/ to the server (routing, cluster bus, disco, node
// loss, metrics) and keeps the services where policy modules can reach them.
import client from 'prom-client';
import type { Module, Server } from '../context.js';
import { MucService, CLUSTER_TOPIC, type ForwardedStanza } from './service.js';
import { archiveWriter } from '../archive-writer.js';
import { roomFeatures } from './features/index.js';
import { watchRoomLeases } from './recovery.js';

const services = new WeakMap<Server, Map<string, MucService>>();

/** A node was found dead (by the node named in by): its sessions leave the rooms held elsewhere. */
const LOST_TOPIC = 'muc-lost';
interface NodeLost { node: string; jids: string[]; by: string }

/** The MUC services of a server, by domain (for policy modules and tools). */
export function mucServices(server: Server): Map<string, MucService> {
  return services.get(server) ?? new Map();
}

// What each server's init started, stopped with that server.
const stoppers = new WeakMap<Server, (() => void)[]>();

export const mucModule: Module = {
  name: 'muc',
  init(server) {
    const byDomain = new Map<string, MucService>();
    services.set(server, byDomain);
    // One group-commit writer for all rooms of this node: concurrent rooms share INSERTs.
    const writer = archiveWriter(server);
    const cfg = server.config.muc;
    for (const s of cfg.services ?? []) {
      const service = new MucService(server, {
        domain: s.domain, name: s.name, roomCreation: cfg.roomCreation,
        messagesPerSecond: cfg.messagesPerSecond, messageBurst: cfg.messageBurst, maxNickLength: cfg.maxNickLength,
        idleUnloadSeconds: cfg.idleUnloadSeconds,
      }, writer, roomFeatures);
      byDomain.set(s.domain, service);
      service.start();
      server.disco.hostItems.push({ jid: s.domain, name: s.name });
    }
    server.cluster.on(CLUSTER_TOPIC, (data) => {
      const f = data as ForwardedStanza;
      byDomain.get(f.service)?.onForwarded(f);
    });
    stoppers.set(server, [watchRoomLeases(server, byDomain.values())]);
    // The node that finds another one dead runs cluster/lost; rooms held by every other node must hear
    // of it too (their occupants on the dead node leave), so it tells them.
    server.hooks.on('cluster/lost', ({ node, records }) => {
      const jids = records.map((r) => r.jid);
      const gone = new Set(jids);
      for (const s of byDomain.values()) s.nodeLost(node, gone);
      server.cluster.broadcast(LOST_TOPIC, { node, jids, by: server.sessions.nodeId } satisfies NodeLost)
        .catch((e: unknown) => server.log.warn('muc: telling other nodes of a lost node failed', { err: e, node }));
    });
    server.cluster.on(LOST_TOPIC, (data) => {
      const lost = data as NodeLost;
      if (lost.by === server.sessions.nodeId || !Array.isArray(lost.jids)) return;
      const gone = new Set(lost.jids);
      for (const s of byDomain.values()) s.nodeLost(lost.node, gone);
    });
    const registers = [server.metrics.registry];
    const commit = new client.Histogram({
      name: 'perch_muc_commit_seconds', help: 'Time a room message waits for its archive commit before fan-out', registers,
      buckets: [0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5],
    });
    for (const s of byDomain.values()) s.onCommitted = (seconds) => commit.observe(seconds);
    const duplicates = new client.Counter({
      name: 'perch_muc_duplicates_total', help: 'Room messages sent again (by a client or a node) and recognised: answered, not archived twice', registers,
    });
    for (const s of byDomain.values()) s.onDuplicate = () => duplicates.inc();
    new client.Gauge({
      name: 'perch_muc_rooms_loaded', help: 'Rooms held by this node', registers,
      collect() {
        let n = 0;
        for (const s of byDomain.values()) for (const _room of s.loadedRooms()) n++;
        this.set(n);
      },
    });
    new client.Gauge({
      name: 'perch_archive_batches', help: 'Group commits to the archive by this node (rooms and personal archives)', registers,
      collect() { this.set(writer.batches); },
    });
    new client.Gauge({
      name: 'perch_archived_messages', help: 'Messages archived by this node (rooms and personal archives)', registers,
      collect() { this.set(writer.written); },
    });
  },
  async stop(server) {
    for (const stop of stoppers.get(server) ?? []) stop();
    stoppers.delete(server);
    await Promise.all([...mucServices(server).values()].map((s) => s.stop()));
  },
};
