// The perch command: start the server and administer it.
import { existsSync } from 'node:fs';
import { loadConfig, ConfigError, type Config } from '../config.js';
import { startCommand } from '../workers.js';
import { openDataStores } from '../../storage/open.js';
import { migrate } from '../../storage/migrations.js';
import { defaultPartitionRows, MOVE_AT_START_LIMIT } from '../../storage/archive-partitions.js';
import {
  addUserCommand, changeUserPasswordCommand, deleteUserCommand, registeredUsersListCommand,
} from '../admin/users.js';
import type { AnyAdminCommand } from '../admin/command.js';
import { accountJid, adminMain, runAdmin, UsageError, EXIT_OK, EXIT_USAGE, type Io } from './admin.js';
import { CHAT_NOUNS, chatMain } from './chat.js';
import { selftestMain } from './selftest.js';
import { exportMain, importMain } from './data.js';
import { nodeMain } from './nodes.js';
import { archiveMain } from './archive.js';

const HELP = `perch — an XMPP server for persistent group chat

Usage: perch [--config FILE] <command> [args]

Commands:
  start [--workers N|auto]       run the server (SIGTERM/SIGINT stop it gracefully); N node
                                 processes share the ports (default: one per core with PostgreSQL
                                 and Redis configured, else one)
  user add USER [PASSWORD]       create an account (password read from stdin when omitted)
  user delete USER...            delete accounts and everything stored for them
  user passwd USER [PASSWORD]    change an account's password
  user list                      list accounts
  user set USER --ou PATH        put a user into an org unit ('' for none)
  category add|set|list|delete   persistent-chat categories (scope, creators, invitations, history)
  room add|set|show|list|disable|enable|delete
                                 persistent-chat rooms (privacy, type, members, managers, presenters)
  room clear|remove-messages     a room's chat content: clear before a date, remove or replace messages
  principal eligible             users who may enter a category or a room (groups, units, domains expanded)
  group add|set|show|list|delete directory groups (nested) and their members
  ou add|list|delete             org units (/corp/emea/sales)
  addin add|set|list|delete      add-ins rooms may show
  service get|set                chat service settings (history, file size, update limit, URL)
  policy get|set                 persistent chat on/off: global, group:NAME or a user
  compliance get|set|run         compliance capture and export: settings, waiting events and runs,
                                 a run now
  upload list|stats|expire|delete uploaded files: list, usage, expire now, delete one
  directory sync [--dry-run]     read groups, org units and users' units from LDAP and apply
                                 what changed (a progress bar, then a report)
  node list                      the cluster's nodes: id, address, sessions, rooms, active/draining
  node drain [NODE] [--wait]     stop taking connections, hand rooms and clients to the other
                                 nodes, exit when empty (default: the node beside this CLI);
                                 --wait returns once it has stopped
  admin <command> [--field v]    run any admin operation (perch admin --help lists them)
  export FILE [--level L] [--scope C] [--since DATE]
                                 write all data, or a level of it, to FILE (.jsonl.gz)
  import FILE [--dry-run] [--report FILE]
                                 merge an export into this server (same names overwritten)
  migrate                        apply database migrations and exit
  archive partition|partitions|reindex|expire
                                 the archive table: convert to quarterly partitions (progress bar),
                                 list them, remove messages before a date (drops whole quarters)
  selftest [--setup] [--json]    log two test users in, join a room, exchange messages, check
                                 archive and search, leave; each step timed (exit 1 on failure)
  config check                   validate the configuration and print it

User and admin commands act through the running server's admin socket (<dataDir>/admin.sock)
when a server holds the data directory, else straight on the database. Add --json for
machine-readable output, --help after a command for its options.
Exit codes: 0 done, 1 refused or failed (the message says why), 2 usage error.

Options:
  --config FILE   YAML or JSON config file (default: $PERCH_CONFIG, else ./perch.yaml if present)
  -h, --help      this help

Environment overrides: PERCH_DOMAIN, PERCH_DATA_DIR, DATABASE_URL, REDIS_URL, PERCH_NODE_ID,
PERCH_LOG_LEVEL, PERCH_WORKERS, PERCH_PUBLIC_ADDRESS, PERCH_C2S_PORT, PERCH_C2S_TLS_PORT, PERCH_COMPONENT_PORT, PERCH_METRICS_PORT, PERCH_UPLOAD_PORT,
PERCH_ADMINS (comma-separated), PERCH_REGISTRATION, PERCH_REQUIRE_STARTTLS.
`;

async function readStdinLine(prompt: string): Promise<string> {
  if (process.stdin.isTTY) process.stderr.write(prompt);
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) {
    chunks.push(c as Buffer);
    if (Buffer.concat(chunks).includes(10)) break;
  }
  return Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
}

const stdio: Io = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  readSecret: readStdinLine,
  errIsTty: process.stderr.isTTY === true,
};

/** `perch user <sub>`: short forms of the account operations, with positional arguments. */
const USER_COMMANDS: Record<string, { cmd: AnyAdminCommand; usage: string; positional: (args: string[], domain: string) => Record<string, string[]> }> = {
  add: {
    cmd: addUserCommand, usage: 'perch user add USER [PASSWORD]',
    positional: ([user, password], domain) => ({ accountjid: [accountJid(user!, domain)], ...(password !== undefined ? { password: [password] } : {}) }),
  },
  delete: {
    cmd: deleteUserCommand, usage: 'perch user delete USER...',
    positional: (users, domain) => ({ accountjids: users.map((u) => accountJid(u, domain)) }),
  },
  passwd: {
    cmd: changeUserPasswordCommand, usage: 'perch user passwd USER [PASSWORD]',
    positional: ([user, password], domain) => ({ accountjid: [accountJid(user!, domain)], ...(password !== undefined ? { password: [password] } : {}) }),
  },
  list: {
    cmd: registeredUsersListCommand, usage: 'perch user list',
    positional: () => ({ max_items: ['none'] }),
  },
};

async function userMain(config: Config, args: string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === '--help' || sub === '-h') {
    io.out(Object.values(USER_COMMANDS).map((e) => `  ${e.usage.padEnd(36)} ${e.cmd.title}`).join('\n') + '\n');
    io.out(`  ${'perch user set USER --ou PATH'.padEnd(36)} Set a User's Org Unit\n`);
    return EXIT_OK;
  }
  if (sub === 'set') return chatMain(config, 'user', args, io);
  const entry = sub ? USER_COMMANDS[sub] : undefined;
  if (!entry) throw new UsageError(`usage: perch user add|delete|passwd|list|set (perch user <sub> --help)`);
  const json = rest.includes('--json');
  const positional = rest.filter((a) => a !== '--json');
  if (positional.includes('--help') || positional.includes('-h')) {
    io.out(`${entry.cmd.title}\n\nUsage: ${entry.usage} [--json]\n\nThe same operation as perch admin ${entry.cmd.id}.\n`);
    return EXIT_OK;
  }
  if (positional.some((a) => a.startsWith('--'))) throw new UsageError(`unknown option in: ${rest.join(' ')}`);
  const max = sub === 'list' ? 0 : sub === 'delete' ? Infinity : 2;
  const min = sub === 'list' ? 0 : 1;
  if (positional.length < min || positional.length > max) throw new UsageError(`usage: ${entry.usage}`);
  // Check the arguments before reaching the server or the database.
  entry.positional(positional, config.domain);
  return runAdmin(config, entry.cmd, io, { input: {}, json, fromPositional: (domain) => entry.positional(positional, domain) });
}


export async function main(argv: string[], io: Io = stdio): Promise<number> {
  const args = [...argv];
  let configFile: string | null = process.env.PERCH_CONFIG ?? null;
  const ci = args.indexOf('--config');
  if (ci !== -1) {
    configFile = args[ci + 1] ?? null;
    args.splice(ci, 2);
  }
  if (!configFile && existsSync('perch.yaml')) configFile = 'perch.yaml';
  // `start --workers N` is the workers key (PERCH_WORKERS) for this run, checked like it.
  let env = process.env;
  if (args[0] === 'start') {
    const wi = args.indexOf('--workers');
    if (wi !== -1) {
      const value = args[wi + 1];
      if (value === undefined) {
        io.err('perch: usage: perch start [--workers N|auto]\n');
        return EXIT_USAGE;
      }
      env = { ...env, PERCH_WORKERS: value };
      args.splice(wi, 2);
    }
    if (args.length > 1) {
      io.err(`perch: usage: perch start [--workers N|auto] (unexpected: ${args.slice(1).join(' ')})\n`);
      return EXIT_USAGE;
    }
  }
  const [cmd, sub, ...rest] = args;
  if (!cmd || cmd === '--help' || cmd === '-h') {
    io.out(HELP);
    return cmd ? EXIT_OK : EXIT_USAGE;
  }
  let config: Config;
  try {
    config = loadConfig(configFile, env);
  } catch (e) {
    if (e instanceof ConfigError) {
      io.err(e.message + '\n');
      return EXIT_USAGE;
    }
    throw e;
  }
  try {
    switch (cmd) {
      case 'start':
        return await startCommand(config);
      case 'migrate': {
        const stores = await openDataStores({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
        const applied = await migrate(stores.db, (done, total, name) => io.err(`migration ${done}/${total}: ${name}\n`));
        const waiting = await defaultPartitionRows(stores.db, MOVE_AT_START_LIMIT);
        await stores.db.close();
        io.out(`database is up to date (${applied} applied now)\n`);
        if (waiting > 0) io.err(`warning: ${waiting > MOVE_AT_START_LIMIT ? `over ${MOVE_AT_START_LIMIT}` : waiting} archived message(s) wait in the default partition, outside their quarters: perch archive partitions moves them\n`);
        return EXIT_OK;
      }
      case 'config':
        if (sub !== 'check') break;
        io.out(JSON.stringify({ ...config, components: Object.fromEntries(Object.keys(config.components).map((k) => [k, '***'])) }, null, 2) + '\n');
        io.out('configuration is valid\n');
        return EXIT_OK;
      case 'user':
        return await userMain(config, [sub, ...rest].filter((a): a is string => a !== undefined), io);
      case 'selftest':
        return await selftestMain(config, [sub, ...rest].filter((a): a is string => a !== undefined), io);
      case 'admin':
        return await adminMain(config, [sub, ...rest].filter((a): a is string => a !== undefined), io);
      case 'node':
        return await nodeMain(config, [sub, ...rest].filter((a): a is string => a !== undefined), io);
      case 'export':
        return await exportMain(config, [sub, ...rest].filter((a): a is string => a !== undefined), io);
      case 'import':
        return await importMain(config, [sub, ...rest].filter((a): a is string => a !== undefined), io);
      case 'archive':
        return await archiveMain(config, [sub, ...rest].filter((a): a is string => a !== undefined), io);
    }
    if (cmd !== 'user' && cmd in CHAT_NOUNS) return await chatMain(config, cmd, [sub, ...rest].filter((a): a is string => a !== undefined), io);
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`perch: ${e.message}\n`);
      return EXIT_USAGE;
    }
    throw e;
  }
  io.err(`unknown command: ${args.join(' ')}\n\n${HELP}`);
  return EXIT_USAGE;
}
