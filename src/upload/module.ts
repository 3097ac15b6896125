// HTTP File Upload (XEP-0363) served by Perch: the service JID (upload.<domain>, listed in the
// server's disco#items), its HTTPS listener with the server's certificate, and the expiry job.
import type { Module, Server } from '../context.js';
import { loadTlsMaterial } from '../tls.js';
import { deleteUpload, runUploadExpiry } from './expiry.js';
import { UploadHttp } from './http.js';
import { UploadMetrics, blobStoreFor, setUploadRuntime, type UploadRuntime } from './runtime.js';
import { uploadStanzaHandler } from './slots.js';

interface Running { http: UploadHttp; timer: NodeJS.Timeout | null; server: Server; domain: string }
// Services of every server started in this process (tests run several), stopped with them.
const running = new WeakMap<Server, Running>();

/** Seconds between expiry runs: an hour, sooner when files expire within hours (down to 10 s). */
function expiryInterval(days: number | null): number {
  if (days === null) return 3600;
  return Math.min(3600, Math.max(10, (days * 86400) / 4));
}

export const uploadModule: Module = {
  name: 'upload',
  async init(server) {
    const listen = server.config.listen.upload;
    if (!listen) return;
    const cfg = server.config.upload;
    const domain = cfg.domain ?? `upload.${server.domain}`;
    const rt: UploadRuntime = { domain, base: '', blobs: blobStoreFor(server.config), metrics: new UploadMetrics(server.metrics.registry) };
    const http = new UploadHttp(server, rt, await loadTlsMaterial(server.config, server.log));
    const port = await http.listen(listen.host, listen.port);
    server.ports.upload = port;
    rt.base = cfg.publicUrl ?? `https://${server.domain}:${port}`;
    setUploadRuntime(server, rt);
    server.router.addDomain(domain, uploadStanzaHandler(server, rt));
    server.disco.hostItems.push({ jid: domain, name: 'HTTP File Upload' });
    const expire = () => {
      runUploadExpiry(server.stores, rt.blobs, cfg).then((r) => {
        const n = r.lapsed + r.deleted.length;
        if (n > 0) {
          rt.metrics.expired.inc(n);
          server.log.info('upload: expired', { lapsed: r.lapsed, deleted: r.deleted.length, referenced: r.referenced });
        }
      }, (err: unknown) => server.log.error('upload: expiry failed', { err }));
    };
    // A deleted account's personal files go with it, as its personal archive does; files posted to
    // rooms belong to the rooms' records and stay (expiry still applies to them).
    server.hooks.on('user/deleted', async ({ username }) => {
      const owner = `${username}@${server.domain}`;
      const files = await server.stores.uploads.list({ owner }, 100_000);
      for (const f of files) if (f.room === null) await deleteUpload(server.stores, rt.blobs, f.id);
      return false;
    });
    const timer = setInterval(expire, expiryInterval(cfg.expireUnreferencedDays) * 1000);
    timer.unref();
    running.set(server, { http, timer, server, domain });
  },
  async stop(server) {
    const r = running.get(server);
    if (!r) return;
    running.delete(server);
    if (r.timer) clearInterval(r.timer);
    r.server.router.removeDomain(r.domain);
    await r.http.close();
  },
};
