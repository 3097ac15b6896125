#!/usr/bin/env node
// The perch command: start the server and administer it.
import v8 from 'node:v8';
import { loadConfig, ConfigError, type Config } from './config.js';
import { ServerCore } from './server.js';
import { openDataStores } from '../storage/open.js';
import { migrate } from '../storage/migrations.js';
import { addUser, normalizeUsername, setPassword } from './accounts.js';

// The embedded database is WebAssembly: compile it fully once at start instead of tiering it up in
// background threads while the first clients are served (measured: login storm right after start).
v8.setFlagsFromString('--no-wasm-dynamic-tiering');

const HELP = `perch — an XMPP server for persistent group chat

Usage: perch [--config FILE] <command> [args]

Commands:
  start                       run the server (SIGTERM/SIGINT stop it gracefully)
  user add USER [PASSWORD]    create an account (password read from stdin when omitted)
  user delete USER            delete an account and everything stored for it
  user passwd USER [PASSWORD] change an account's password
  user list                   list accounts
  migrate                     apply database migrations and exit
  config check                validate the configuration and print it

Options:
  --config FILE   YAML or JSON config file (default: $PERCH_CONFIG, else ./perch.yaml if present)
  -h, --help      this help

Environment overrides: PERCH_DOMAIN, PERCH_DATA_DIR, DATABASE_URL, REDIS_URL, PERCH_NODE_ID,
PERCH_LOG_LEVEL, PERCH_C2S_PORT, PERCH_C2S_TLS_PORT, PERCH_COMPONENT_PORT, PERCH_METRICS_PORT,
PERCH_ADMINS (comma-separated), PERCH_REGISTRATION, PERCH_REQUIRE_STARTTLS.
`;

async function readSecret(prompt: string): Promise<string> {
  if (process.stdin.isTTY) process.stderr.write(prompt);
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) {
    chunks.push(c as Buffer);
    if (Buffer.concat(chunks).includes(10)) break;
  }
  return Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
}

async function withStores<T>(config: Config, fn: (stores: Awaited<ReturnType<typeof openDataStores>>) => Promise<T>): Promise<T> {
  const stores = await openDataStores({
    databaseUrl: config.databaseUrl, dataDir: config.dataDir,
    onMigrationProgress: (done, total, name) => process.stderr.write(`migration ${done}/${total}: ${name}\n`),
  });
  try {
    return await fn(stores);
  } finally {
    await stores.db.close();
  }
}

export async function main(argv: string[]): Promise<number> {
  const args = [...argv];
  let configFile: string | null = process.env.PERCH_CONFIG ?? null;
  const ci = args.indexOf('--config');
  if (ci !== -1) {
    configFile = args[ci + 1] ?? null;
    args.splice(ci, 2);
  }
  if (!configFile) {
    const { existsSync } = await import('node:fs');
    if (existsSync('perch.yaml')) configFile = 'perch.yaml';
  }
  if (args.length === 0 || args.includes('--help') || args.includes('-h')) {
    process.stdout.write(HELP);
    return args.length === 0 ? 1 : 0;
  }
  let config: Config;
  try {
    config = loadConfig(configFile);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(e.message + '\n');
      return 2;
    }
    throw e;
  }
  const [cmd, sub, ...rest] = args;
  switch (cmd) {
    case 'start': {
      const server = new ServerCore(config);
      await server.start();
      const stop = async (signal: string) => {
        server.log.info('stopping', { signal });
        await server.stop();
        process.exit(0);
      };
      process.once('SIGTERM', () => void stop('SIGTERM'));
      process.once('SIGINT', () => void stop('SIGINT'));
      return -1; // keep running
    }
    case 'migrate': {
      const stores = await openDataStores({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
      const applied = await migrate(stores.db, (done, total, name) => process.stderr.write(`migration ${done}/${total}: ${name}\n`));
      await stores.db.close();
      process.stdout.write(`database is up to date (${applied} applied now)\n`);
      return 0;
    }
    case 'config':
      if (sub !== 'check') break;
      process.stdout.write(JSON.stringify({ ...config, components: Object.fromEntries(Object.keys(config.components).map((k) => [k, '***'])) }, null, 2) + '\n');
      process.stdout.write('configuration is valid\n');
      return 0;
    case 'user': {
      const name = rest[0];
      if (sub === 'list') {
        return withStores(config, async (stores) => {
          for (const u of await stores.users.list()) process.stdout.write(`${u}@${config.domain}\n`);
          return 0;
        });
      }
      if (!name || !['add', 'delete', 'passwd'].includes(sub ?? '')) break;
      const user = normalizeUsername(name.replace(new RegExp(`@${config.domain}$`), ''), config.domain);
      if (!user) {
        process.stderr.write(`invalid username: ${name}\n`);
        return 2;
      }
      return withStores(config, async (stores) => {
        if (sub === 'delete') {
          const ok = await stores.users.delete(user);
          process.stdout.write(ok ? `deleted ${user}@${config.domain}\n` : `no such user: ${user}\n`);
          return ok ? 0 : 1;
        }
        const password = rest[1] ?? (await readSecret('password: '));
        if (!password) {
          process.stderr.write('empty password\n');
          return 2;
        }
        if (sub === 'add') {
          const r = await addUser(stores, config.domain, user, password, config.scramIterations);
          process.stdout.write(r === 'ok' ? `created ${user}@${config.domain}\n` : `${r}: ${user}\n`);
          return r === 'ok' ? 0 : 1;
        }
        const ok = await setPassword(stores, config.domain, user, password, config.scramIterations);
        process.stdout.write(ok ? `password changed for ${user}@${config.domain}\n` : `no such user: ${user}\n`);
        return ok ? 0 : 1;
      });
    }
  }
  process.stderr.write(`unknown command: ${args.join(' ')}\n\n${HELP}`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => { if (code >= 0) process.exit(code); },
  (e: unknown) => {
    process.stderr.write(`perch: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
