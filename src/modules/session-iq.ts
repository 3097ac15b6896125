// RFC 3921 session establishment, kept for old clients: a no-op that succeeds (RFC 6121 Appendix E).
import { NS } from '../../protocol/namespaces.js';
import type { Module } from '../context.js';

export const sessionIqModule: Module = {
  name: 'session-iq',
  init(server) {
    server.iq('host', NS.session, 'set', () => null);
    server.iq('account', NS.session, 'set', () => null);
  },
};
