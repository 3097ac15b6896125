// Rooms when the session store fails (docs/architecture.md, "When Redis restarts or is cut off"):
// - Redis came back empty ('cluster/store-reset'): each loaded room takes its lease back and writes its
//   occupants again, so a node that looks the room up finds this one and the room keeps its people. If
//   another node got the lease meanwhile, the room is let go here (that node runs it from now on).
// - Redis unreachable: a room whose lease this node can no longer count on (not renewed within its TTL)
//   is let go at once, so two nodes never run one room; stanzas for it then get an error until the
//   store answers again and the room is looked up anew.
import type { Server } from '../context.js';
import { snapshotOccupant } from './occupants.js';
import type { MucService } from './service.js';

const CHECK_MS = 1000;

export function watchRoomLeases(server: Server, services: Iterable<MucService>): () => void {
  const list = [...services];
  server.hooks.on('cluster/store-reset', async () => {
    await Promise.all(list.map((s) => reassertRooms(s)));
  });
  const timer = setInterval(() => {
    for (const s of list) dropUnheldRooms(s);
  }, CHECK_MS);
  timer.unref();
  return () => clearInterval(timer);
}

/** Takes every loaded room's lease back and writes its occupants again (in the room's order). */
export async function reassertRooms(service: MucService): Promise<void> {
  const sessions = service.server.sessions;
  const log = service.server.log;
  const done: Promise<void>[] = [];
  for (const room of [...service.loadedRooms()]) {
    done.push(new Promise<void>((resolve) => {
      service.inRoomOrder(room.name, async () => {
        try {
          const key = service.storeKey(room.name);
          const holder = await sessions.reclaimLease(key, service.leaseMs);
          if (holder !== sessions.nodeId) {
            log.warn('muc: another node took a room while the session store was empty; letting it go', { room: room.jid, holder });
            service.forget(room);
            return;
          }
          await Promise.all([...room.occupants].map(([nick, occ]) => sessions.stateSet(key, nick, snapshotOccupant(occ))));
        } catch (err) {
          log.error('muc: re-asserting a room after a session store reset failed', { err, room: room.jid });
        } finally {
          resolve();
        }
      });
    }));
  }
  await Promise.all(done);
}

/** Lets go of rooms whose lease ran out unrenewed (the store could not be reached). */
function dropUnheldRooms(service: MucService): void {
  const sessions = service.server.sessions;
  for (const room of [...service.loadedRooms()]) {
    if (sessions.holdsLease(service.storeKey(room.name))) continue;
    service.server.log.warn('muc: the lease of a room could not be renewed in time; letting the room go', { room: room.jid });
    service.forget(room);
  }
}
