// What the features riding on PEP (bookmarks sync, avatar conversion) see of the pubsub module.
import type { Element } from '../../protocol/xml.js';
import type { PubsubNode } from '../../storage/sql-pubsub.js';
import type { Server } from '../context.js';
import type { PubsubEngine } from './engine.js';

export interface PubsubHost {
  readonly server: Server;
  readonly pep: PubsubEngine;
  /** Who hears of an event on a node (full JIDs, or bare JIDs of bare subscriptions). */
  recipients(engine: PubsubEngine, n: PubsubNode): Promise<Set<string>>;
  /** Sends an event payload (<items/>, <purge/> …) to every recipient of the node. */
  broadcast(engine: PubsubEngine, from: string, n: PubsubNode, payload: () => Element): Promise<void>;
}
