// The cluster's nodes: list them, and drain one (the original's active-server list: a node taken out
// of it accepts no new connections). The work is in src/cluster-nodes.ts; a drain of another node
// goes to it over the cluster bus.
import { AdminError, isAdminActor, one, type AdminCommand, type AnyAdminCommand } from './command.js';
import { table } from './chat-context.js';
import { drainNode, listNodes, type DrainStarted, type NodeStatus } from '../cluster-nodes.js';

export const nodeListCommand: AdminCommand<NodeStatus[]> = {
  id: 'node-list', title: 'List the cluster\'s nodes',
  instructions: 'Every node up now: its id, client address, sessions, rooms held, and whether it is active or draining.',
  fields: [],
  needsServer: true,
  allowed: isAdminActor,
  run(ctx) {
    return listNodes(ctx.server!);
  },
  render(nodes) {
    const lines = table(['NODE', 'ADDRESS', 'SESSIONS', 'ROOMS', 'STATE'],
      nodes.map((n) => [n.id, n.address ?? '-', String(n.sessions), String(n.rooms), n.state]));
    return { notes: [], fields: [{ var: 'nodes', type: 'text-multi', label: 'Nodes', values: lines }], lines };
  },
};

export const nodeDrainCommand: AdminCommand<DrainStarted> = {
  id: 'node-drain', title: 'Drain a node',
  instructions: 'The node accepts no new connections, hands its rooms to the other active nodes, sends its clients to them '
    + '(see-other-host, or system-shutdown without an address) and exits once empty. Without a node: the one that runs this.',
  fields: [{ name: 'node', type: 'text-single', label: 'Node id (default: this node)', positional: 0 }],
  needsServer: true,
  allowed: isAdminActor,
  async run(ctx, input) {
    const node = one(input, 'node').trim() || null;
    const r = await drainNode(ctx.server!, node);
    if ('error' in r) throw new AdminError(r.error, 'item-not-found');
    ctx.server!.log.info('node drain requested', { node: r.node, actor: ctx.actor.kind });
    return r;
  },
  render(d) {
    const rooms = d.heirs.length ? `its ${d.rooms} room(s) go to ${d.heirs.join(', ')}` : `no other active node: its ${d.rooms} room(s) are released as it stops`;
    const clients = d.otherHost ? `its ${d.sessions} session(s) are sent to ${d.otherHost}` : `its ${d.sessions} session(s) are told system-shutdown`;
    const text = d.already ? `node ${d.node} is draining already` : `node ${d.node} draining: no new connections; ${rooms}; ${clients}; it exits when empty`;
    return { notes: [{ type: 'info', text }] };
  },
};

export const nodeCommands: AnyAdminCommand[] = [nodeListCommand, nodeDrainCommand];
