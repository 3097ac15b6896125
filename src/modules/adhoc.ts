// XEP-0050 Ad-Hoc Commands on the server JID: the commands node in disco and the <command/> IQ.
// The registry itself is infrastructure (src/commands/registry.ts); features add commands to it.
import { NS } from '../../protocol/namespaces.js';
import { StanzaError } from '../../protocol/errors.js';
import type { Module } from '../context.js';
import { commandItems, commandNodeInfo, handleCommandRequest } from '../commands/registry.js';

export const adhocModule: Module = {
  name: 'adhoc',
  init(server) {
    server.disco.hostFeatures.add(NS.commands);
    server.disco.nodes.set(NS.commands, {
      info: (from) => commandNodeInfo(server, 'host', NS.commands, from),
      items: (from) => commandItems(server, 'host', from),
    });
    server.iq('host', NS.commands, 'set', ({ payload, from, to }) => {
      if (payload.name !== 'command') throw new StanzaError('bad-request');
      return handleCommandRequest(server, 'host', payload, from, to);
    });
  },
};
