// The compliance configuration in a running server: read at start, and re-read on every node when an
// administrator changes it (a cluster broadcast), so the capture's on/off test on the hot path is a
// field read.
import type { Module, Server } from '../context.js';
import type { ComplianceConfig } from '../../storage/types.js';

export const COMPLIANCE_TOPIC = 'compliance/config';

export interface ComplianceState {
  /** Capture on: every join, leave, post, history read, search, upload and download is recorded. */
  readonly enabled: boolean;
  readonly config: ComplianceConfig;
}

class State implements ComplianceState {
  constructor(public config: ComplianceConfig) {}
  get enabled(): boolean { return this.config.enabled; }
}

const states = new WeakMap<Server, State>();

/** The server's compliance state (the module loads it before any room or listener starts). */
export function complianceState(server: Server): ComplianceState {
  const s = states.get(server);
  if (!s) throw new Error('the compliance module is not started');
  return s;
}

/** Stores a new configuration and makes every node use it; resolves once this node does. */
export async function changeComplianceConfig(server: Server, config: ComplianceConfig): Promise<void> {
  await server.stores.compliance.setConfig(config);
  const s = states.get(server);
  if (s) s.config = config;
  await server.cluster.broadcast(COMPLIANCE_TOPIC, null);
}

export const complianceStateModule: Module = {
  name: 'compliance-state',
  async init(server) {
    const state = new State(await server.stores.compliance.getConfig());
    states.set(server, state);
    server.cluster.on(COMPLIANCE_TOPIC, () => {
      server.stores.compliance.getConfig().then((c) => { state.config = c; }, (err: unknown) => {
        server.log.error('compliance: cannot re-read the configuration', { err });
      });
    });
  },
};
