// Prosody and ejabberd (Debian packages) as the runners start them: a private copy of the shared peer script
// (../shared/bench/peers/NAME.sh) and its config template, with ports moved to the run's range, the Erlang
// node and the PostgreSQL database renamed to the run's own, state under the run's work directory.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { portFree } from './lib.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function dpkgVersion(pkg) {
  try { return execFileSync('dpkg-query', ['-W', '-f', '${Version}', pkg], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }); } catch { return null; }
}

/**
 * Ports (base + the shared scripts' last three digits) and the replacements that move them there.
 * Prosody: c2s base+322, s2s +369, component +347, http +380/+381; ejabberd: c2s base+522, distribution +569.
 */
const LAYOUT = {
  prosody: (base, db) => ({
    port: base + 322,
    patch: (t) => t.replaceAll('15222', String(base + 322)).replaceAll('15269', String(base + 369)).replaceAll('15347', String(base + 347))
      .replaceAll('15280', String(base + 380)).replaceAll('15281', String(base + 381)).replaceAll('bench_prosody', db),
    // ejabberd sets TCP_NODELAY; Prosody only when told to (the peers' main columns do the same)
    env: { PROSODY_NETWORK_SETTINGS: 'network_settings = { nagle = false }' },
  }),
  ejabberd: (base, db) => ({
    port: base + 522,
    patch: (t) => t.replaceAll('25222', String(base + 522)).replaceAll('25369', String(base + 569))
      .replaceAll('ejabberd-bench@localhost', `perch-bench-${base}@localhost`).replaceAll('bench_ejabberd', db),
    env: {},
  }),
};

/**
 * A peer server: `storage` is "sql" (PostgreSQL database `db`, dropped by shutdown) or the script's other
 * storage (mnesia, internal). `register(port)` creates the accounts once it runs and resolves the load
 * generator's register result ({created, exists, failed, per_s, errors}).
 */
export function peerServer(name, { work, peersDir, portBase, db, storage = 'sql', register, pgAdmin, log = console.log, variant = null }) {
  // A variant (another configuration of the same server, e.g. archiving on) has its own scripts,
  // state and database; it shares the ports, as servers run one at a time.
  const key = variant ? `${name}-${variant.key}` : name;
  const dir = path.join(work, 'peers', key);
  const state = path.join(work, key);
  const { port, patch, env } = LAYOUT[name](portBase, db);
  const patched = variant ? (t) => variant.patch(patch(t)) : patch;
  return {
    name: key, server: name, title: `${name === 'ejabberd' ? 'ejabberd' : 'Prosody'}${variant ? `, ${variant.title}` : ''}`, port, db: storage === 'sql' ? db : null, storage, script: null, running: false,
    prepare() {
      fs.mkdirSync(dir, { recursive: true });
      for (const f of fs.readdirSync(peersDir).filter((f) => f.startsWith(name))) {
        fs.writeFileSync(path.join(dir, f), patched(fs.readFileSync(path.join(peersDir, f), 'utf8')), { mode: 0o755 });
      }
      this.script = path.join(dir, `${name}.sh`);
    },
    sh(...a) {
      try {
        return execFileSync(this.script, a, { env: { ...process.env, ...env, BENCH_DIR: state }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
      } catch (e) {
        // what the script said is the only clue (its logs are removed with the work directory)
        const said = `${e.stdout ?? ''}${e.stderr ?? ''}`.trim().split('\n').slice(-8).join(' | ');
        throw new Error(`${name}.sh ${a.join(' ')}: exit ${e.status ?? e.signal}${said ? `: ${said}` : ''}`);
      }
    },
    pid() { return Number(fs.readFileSync(path.join(state, 'server.pid'), 'utf8').trim()); },
    version() { return dpkgVersion(name); },
    async provision() {
      if (!(await portFree(port))) throw new Error(`port ${port} is busy (another ${name}?)`);
      this.prepare();
      await this.twice('start', storage);
      const r = await register(port);
      if (!r || r.error || r.failed > 0) throw new Error(`${name} provisioning failed: ${r?.error ?? JSON.stringify(r?.errors)}`);
      this.provisioned = `${r.created + r.exists} accounts registered by XEP-0077 at ${Math.round(r.per_s)}/s`;
    },
    /**
     * Runs the script's start or restart, and once more after a stop when it fails: on a loaded machine a
     * restart now and then times out (ejabberdctl started), and a port of the run may be held for a moment
     * by a client connection when the range lies in the kernel's ephemeral ports.
     */
    async twice(...a) {
      for (let attempt = 1; ; attempt++) {
        try { log(`    ${this.sh(...a)}`); break; } catch (e) {
          try { this.sh('stop'); } catch { /* not running */ }
          this.killLauncher();
          this.running = false;
          if (attempt === 2) throw e;
          log(`    ${e.message.slice(0, 300)}; stopped, once more`);
          await sleep(2000);
        }
      }
      this.running = true;
    },
    /** prosody.sh writes server.pid only once the port is open: a start that failed leaves its launcher running. */
    killLauncher() {
      try {
        const pid = Number(fs.readFileSync(path.join(state, 'launcher.pid'), 'utf8').trim());
        // only while it is still this run's server (a pid is reused once its process is gone)
        if (fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(state)) process.kill(pid, 'SIGKILL');
      } catch { /* none, or gone */ }
    },
    async start() {
      await this.twice('restart');
      await sleep(500);
      return this.pid();
    },
    async stop() { if (this.running) { this.sh('stop'); this.running = false; } },
    async shutdown() {
      if (!this.script) return; // never started by this run
      try { this.sh('stop'); } catch (e) { log(`${name} stop: ${e.message}`); }
      this.killLauncher();
      this.running = false;
      if (this.db) await pgAdmin(`DROP DATABASE IF EXISTS ${this.db} WITH (FORCE)`).catch((e) => log(`drop ${this.db}: ${e.message}`));
    },
  };
}
