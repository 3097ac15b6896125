import type { Db, DbTx } from './types.js';
import {
  archiveFulltextLanguage, cheaperArchiveRows, ensureArchivePartitions, MOVE_AT_START_LIMIT, fulltextKey, keyArchivesInMigration, keyFulltextByArchive, narrowSenderIndex,
  partitionInMigration, tsvFilledByWriters,
} from './archive-partitions.js';
import { archiveKeys, readKeyMode } from './archive-keys.js';

/**
 * Append-only list; never edit an applied migration. Statements are separated by ';' at the end
 * of a line because PGlite's query() runs one statement at a time.
 */
export const migrations: { version: number; name: string; sql: string; run?: (tx: DbTx) => Promise<void> }[] = [
  {
    version: 1,
    name: 'initial schema',
    sql: `
CREATE TABLE users (
  username text PRIMARY KEY,
  disabled boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  sha1_salt bytea NOT NULL,
  sha1_iterations int NOT NULL,
  sha1_stored_key bytea NOT NULL,
  sha1_server_key bytea NOT NULL,
  sha256_salt bytea NOT NULL,
  sha256_iterations int NOT NULL,
  sha256_stored_key bytea NOT NULL,
  sha256_server_key bytea NOT NULL
);
CREATE TABLE roster_items (
  username text NOT NULL REFERENCES users(username) ON DELETE CASCADE,
  jid text NOT NULL,
  name text,
  subscription text NOT NULL DEFAULT 'none' CHECK (subscription IN ('none', 'to', 'from', 'both')),
  ask_out boolean NOT NULL DEFAULT false,
  approved boolean NOT NULL DEFAULT false,
  groups text[] NOT NULL DEFAULT '{}',
  PRIMARY KEY (username, jid)
);
CREATE TABLE roster_versions (
  username text PRIMARY KEY REFERENCES users(username) ON DELETE CASCADE,
  version bigint NOT NULL
);
CREATE TABLE subscription_requests (
  username text NOT NULL REFERENCES users(username) ON DELETE CASCADE,
  jid text NOT NULL,
  stanza text NOT NULL,
  PRIMARY KEY (username, jid)
);
CREATE TABLE offline_messages (
  id bigserial PRIMARY KEY,
  username text NOT NULL REFERENCES users(username) ON DELETE CASCADE,
  stanza text NOT NULL,
  stamp timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX offline_messages_username_id ON offline_messages (username, id);
CREATE TABLE user_data (
  username text NOT NULL REFERENCES users(username) ON DELETE CASCADE,
  kind text NOT NULL,
  key text NOT NULL,
  value text NOT NULL,
  PRIMARY KEY (username, kind, key)
);
`,
  },
  {
    version: 2,
    name: 'rooms and archives',
    sql: `
CREATE TABLE rooms (
  service text COLLATE "C" NOT NULL,
  name text COLLATE "C" NOT NULL,
  config jsonb NOT NULL DEFAULT '{}',
  affiliations jsonb NOT NULL DEFAULT '{}',
  subject_text text,
  subject_nick text,
  subject_stamp timestamptz,
  persistent boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (service, name)
);
CREATE TABLE archive (
  id bigserial PRIMARY KEY,
  archive text NOT NULL,
  stanza_id text NOT NULL,
  stamp timestamptz NOT NULL,
  from_jid text NOT NULL,
  real_jid text,
  body text,
  stanza text NOT NULL,
  retracted boolean NOT NULL DEFAULT false,
  tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', body)) STORED
);
CREATE UNIQUE INDEX archive_archive_stanza_id ON archive (archive, stanza_id);
CREATE INDEX archive_archive_id ON archive (archive, id);
CREATE INDEX archive_archive_stamp ON archive (archive, stamp);
CREATE INDEX archive_archive_from_jid ON archive (archive, from_jid);
CREATE INDEX archive_archive_real_jid ON archive (archive, real_jid);
CREATE INDEX archive_tsv ON archive USING gin (tsv);
`,
  },
  {
    // Counting a million-message archive for every page (XEP-0059 <count/>) would cost more than
    // the page itself: statement triggers keep each archive's size, bulk loads (COPY) included.
    // Rows are locked in archive order, so concurrent batches cannot deadlock on them.
    version: 3,
    name: 'archive sizes',
    sql: `
CREATE TABLE archive_count (
  archive text PRIMARY KEY,
  n bigint NOT NULL
);
INSERT INTO archive_count (archive, n) SELECT archive, count(*) FROM archive GROUP BY archive;
CREATE FUNCTION archive_count_insert() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO archive_count (archive, n) SELECT archive, count(*) FROM new_rows GROUP BY archive ORDER BY archive ON CONFLICT (archive) DO UPDATE SET n = archive_count.n + EXCLUDED.n; RETURN NULL; END $$;
CREATE FUNCTION archive_count_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE archive_count c SET n = c.n - d.n FROM (SELECT archive, count(*) AS n FROM old_rows GROUP BY archive ORDER BY archive) d WHERE c.archive = d.archive; RETURN NULL; END $$;
CREATE TRIGGER archive_count_insert AFTER INSERT ON archive REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION archive_count_insert();
CREATE TRIGGER archive_count_delete AFTER DELETE ON archive REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION archive_count_delete();
CREATE FUNCTION archive_count_truncate() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN DELETE FROM archive_count; RETURN NULL; END $$;
CREATE TRIGGER archive_count_truncate AFTER TRUNCATE ON archive FOR EACH STATEMENT EXECUTE FUNCTION archive_count_truncate();
`,
  },
  {
    // The directory (nested groups, org units) and the persistent-chat model. Display names are
    // compared case-insensitively through an lname column filled by the server (String#toLowerCase),
    // because lower() under the "C" collation folds ASCII only. Every access list (of categories and
    // rooms) is one table, indexed by principal for "where is X listed".
    version: 4,
    name: 'directory and persistent chat',
    sql: `
CREATE TABLE directory_groups (
  name text COLLATE "C" PRIMARY KEY,
  description text NOT NULL DEFAULT ''
);
CREATE TABLE directory_group_members (
  group_name text COLLATE "C" NOT NULL REFERENCES directory_groups(name) ON DELETE CASCADE,
  member text COLLATE "C" NOT NULL,
  PRIMARY KEY (group_name, member)
);
CREATE INDEX directory_group_members_member ON directory_group_members (member);
CREATE TABLE org_units (
  path text COLLATE "C" PRIMARY KEY,
  description text NOT NULL DEFAULT ''
);
CREATE TABLE user_org_units (
  user_jid text COLLATE "C" PRIMARY KEY,
  path text COLLATE "C" NOT NULL REFERENCES org_units(path)
);
CREATE INDEX user_org_units_path ON user_org_units (path);
CREATE TABLE chat_categories (
  service text COLLATE "C" NOT NULL,
  name text COLLATE "C" NOT NULL,
  lname text COLLATE "C" NOT NULL,
  description text NOT NULL DEFAULT '',
  invitations boolean NOT NULL DEFAULT false,
  file_upload boolean NOT NULL DEFAULT true,
  chat_history boolean NOT NULL DEFAULT true,
  PRIMARY KEY (service, name)
);
CREATE UNIQUE INDEX chat_categories_lname ON chat_categories (service, lname);
CREATE TABLE chat_rooms (
  service text COLLATE "C" NOT NULL,
  room text COLLATE "C" NOT NULL,
  category text COLLATE "C" NOT NULL,
  name text COLLATE "C" NOT NULL,
  lname text COLLATE "C" NOT NULL,
  description text NOT NULL DEFAULT '',
  privacy text NOT NULL DEFAULT 'closed' CHECK (privacy IN ('open', 'closed', 'secret')),
  type text NOT NULL DEFAULT 'normal' CHECK (type IN ('normal', 'auditorium')),
  invitations text NOT NULL DEFAULT 'inherit' CHECK (invitations IN ('inherit', 'off')),
  disabled boolean NOT NULL DEFAULT false,
  addin text COLLATE "C",
  members_inherit boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (service, room),
  FOREIGN KEY (service, category) REFERENCES chat_categories (service, name) ON UPDATE CASCADE
);
CREATE UNIQUE INDEX chat_rooms_lname ON chat_rooms (service, lname);
CREATE INDEX chat_rooms_category ON chat_rooms (service, category);
CREATE TABLE chat_acl (
  service text COLLATE "C" NOT NULL,
  object_kind text NOT NULL CHECK (object_kind IN ('category', 'room')),
  object_name text COLLATE "C" NOT NULL,
  list text NOT NULL CHECK (list IN ('allowed', 'denied', 'creators', 'members', 'managers', 'presenters')),
  principal text COLLATE "C" NOT NULL,
  PRIMARY KEY (service, object_kind, object_name, list, principal)
);
CREATE INDEX chat_acl_principal ON chat_acl (principal);
CREATE TABLE chat_addins (
  service text COLLATE "C" NOT NULL,
  name text COLLATE "C" NOT NULL,
  lname text COLLATE "C" NOT NULL,
  url text NOT NULL,
  PRIMARY KEY (service, name)
);
CREATE UNIQUE INDEX chat_addins_lname ON chat_addins (service, lname);
CREATE TABLE chat_service_settings (
  service text COLLATE "C" PRIMARY KEY,
  default_history int NOT NULL,
  max_file_size_kb int NOT NULL,
  participant_update_limit int NOT NULL,
  room_management_url text NOT NULL DEFAULT ''
);
CREATE TABLE chat_policies (
  scope text NOT NULL CHECK (scope IN ('global', 'group', 'user')),
  subject text COLLATE "C" NOT NULL,
  enabled boolean NOT NULL,
  PRIMARY KEY (scope, subject)
);
CREATE TABLE chat_invitations (
  id bigserial PRIMARY KEY,
  user_jid text COLLATE "C" NOT NULL,
  service text COLLATE "C" NOT NULL,
  room text COLLATE "C" NOT NULL,
  inviter text COLLATE "C" NOT NULL,
  at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX chat_invitations_user_id ON chat_invitations (user_jid, id);
`,
  },
  {
    // Each archive's size in bytes beside its count (the admin's room list filters on content size),
    // kept by the same statement triggers, plus one on UPDATE: a retraction or an administrator's
    // replacement rewrites the stanza. Sums over the statement's rows, one row per archive touched.
    version: 5,
    name: 'archive bytes',
    sql: `
ALTER TABLE archive_count ADD COLUMN bytes bigint NOT NULL DEFAULT 0;
UPDATE archive_count c SET bytes = s.b FROM (SELECT archive, sum(octet_length(stanza)) AS b FROM archive GROUP BY archive) s WHERE c.archive = s.archive;
CREATE OR REPLACE FUNCTION archive_count_insert() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO archive_count (archive, n, bytes) SELECT archive, count(*), sum(octet_length(stanza)) FROM new_rows GROUP BY archive ORDER BY archive ON CONFLICT (archive) DO UPDATE SET n = archive_count.n + EXCLUDED.n, bytes = archive_count.bytes + EXCLUDED.bytes; RETURN NULL; END $$;
CREATE OR REPLACE FUNCTION archive_count_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE archive_count c SET n = c.n - d.n, bytes = c.bytes - d.b FROM (SELECT archive, count(*) AS n, sum(octet_length(stanza)) AS b FROM old_rows GROUP BY archive ORDER BY archive) d WHERE c.archive = d.archive; RETURN NULL; END $$;
CREATE FUNCTION archive_count_update() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE archive_count c SET bytes = c.bytes + d.b FROM (SELECT archive, sum(b) AS b FROM (SELECT archive, octet_length(stanza) AS b FROM new_rows UNION ALL SELECT archive, -octet_length(stanza) FROM old_rows) x GROUP BY archive ORDER BY archive) d WHERE c.archive = d.archive AND d.b <> 0; RETURN NULL; END $$;
CREATE TRIGGER archive_count_update AFTER UPDATE ON archive REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION archive_count_update();
`,
  },
  {
    version: 6,
    name: 'compliance',
    sql: `
CREATE TABLE compliance_events (
  id bigserial PRIMARY KEY,
  stamp timestamptz NOT NULL,
  kind text NOT NULL,
  room text,
  actor text NOT NULL,
  nick text,
  content text NOT NULL DEFAULT '',
  message_id text,
  detail jsonb
);
CREATE TABLE compliance_state (
  id int PRIMARY KEY CHECK (id = 1),
  config jsonb NOT NULL DEFAULT '{}',
  lease_holder text,
  lease_expires timestamptz,
  last_run_at timestamptz
);
INSERT INTO compliance_state (id) VALUES (1);
CREATE TABLE compliance_runs (
  id bigserial PRIMARY KEY,
  node text NOT NULL,
  from_id bigint NOT NULL,
  to_id bigint NOT NULL,
  started_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz,
  events int NOT NULL DEFAULT 0,
  files jsonb NOT NULL DEFAULT '[]',
  present jsonb NOT NULL DEFAULT '{}',
  error text
);
`,
  },
  {
    // HTTP File Upload: one row per slot, kept as the stored file's record once its bytes arrive.
    // Quotas sum stored files and live pending slots; the expiry job walks stored, unreferenced rows.
    version: 7,
    name: 'uploads',
    sql: `
CREATE TABLE upload_files (
  id text COLLATE "C" PRIMARY KEY,
  token text COLLATE "C" NOT NULL,
  put_token text COLLATE "C" NOT NULL,
  owner text NOT NULL,
  room text,
  name text NOT NULL,
  content_type text NOT NULL,
  size bigint NOT NULL CHECK (size > 0),
  state text NOT NULL CHECK (state IN ('pending', 'stored')),
  created_at timestamptz NOT NULL DEFAULT now(),
  stored_at timestamptz,
  expires_at timestamptz NOT NULL,
  referenced boolean NOT NULL DEFAULT false
);
CREATE INDEX upload_files_owner ON upload_files (owner, created_at);
CREATE INDEX upload_files_room ON upload_files (room, created_at);
CREATE INDEX upload_files_pending ON upload_files (expires_at) WHERE state = 'pending';
CREATE INDEX upload_files_unreferenced ON upload_files (stored_at) WHERE state = 'stored' AND NOT referenced;
`,
  },
  {
    // Publish-subscribe (XEP-0060) for PEP (service = an account's bare JID) and the pubsub service
    // (service = its domain). Items keep publish order in seq; republishing an id moves it last.
    version: 8,
    name: 'pubsub',
    sql: `
CREATE TABLE pubsub_nodes (
  service text COLLATE "C" NOT NULL,
  node text COLLATE "C" NOT NULL,
  owner text NOT NULL,
  config jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (service, node)
);
CREATE SEQUENCE pubsub_item_seq;
CREATE TABLE pubsub_items (
  service text COLLATE "C" NOT NULL,
  node text COLLATE "C" NOT NULL,
  id text COLLATE "C" NOT NULL,
  publisher text NOT NULL,
  payload text NOT NULL,
  stamp timestamptz NOT NULL DEFAULT now(),
  seq bigint NOT NULL DEFAULT nextval('pubsub_item_seq'),
  PRIMARY KEY (service, node, id),
  FOREIGN KEY (service, node) REFERENCES pubsub_nodes (service, node) ON DELETE CASCADE
);
CREATE INDEX pubsub_items_order ON pubsub_items (service, node, seq);
CREATE TABLE pubsub_subscriptions (
  service text COLLATE "C" NOT NULL,
  node text COLLATE "C" NOT NULL,
  jid text COLLATE "C" NOT NULL,
  state text NOT NULL CHECK (state IN ('subscribed', 'pending', 'unconfigured')),
  PRIMARY KEY (service, node, jid),
  FOREIGN KEY (service, node) REFERENCES pubsub_nodes (service, node) ON DELETE CASCADE
);
CREATE TABLE pubsub_affiliations (
  service text COLLATE "C" NOT NULL,
  node text COLLATE "C" NOT NULL,
  jid text COLLATE "C" NOT NULL,
  affiliation text NOT NULL CHECK (affiliation IN ('owner', 'publisher', 'publish-only', 'member', 'outcast')),
  PRIMARY KEY (service, node, jid),
  FOREIGN KEY (service, node) REFERENCES pubsub_nodes (service, node) ON DELETE CASCADE
);
`,
  },
  {
    // A category may forbid its rooms' authors to correct and retract posted messages (XEP-0308,
    // XEP-0424), as the original product forbade editing; existing categories keep allowing it.
    version: 9,
    name: 'category editing policy',
    sql: `
ALTER TABLE chat_categories ADD COLUMN editing boolean NOT NULL DEFAULT true;
`,
  },
  {
    // Counts without a lock per archive: each statement appends its archives' deltas (no conflict, so
    // concurrent batches to one archive never wait on each other) and reads sum the kept row with the
    // deltas (archive_size). About one statement in 20 folds the deltas into archive_count, skipping
    // when another fold holds the lock; only folds write archive_count, so its row locks wait on
    // nothing. Exact at every snapshot: a fold deletes deltas and adds them in one statement.
    version: 10,
    name: 'archive counts by deltas',
    sql: `
CREATE TABLE archive_count_delta (
  archive text NOT NULL,
  n bigint NOT NULL,
  bytes bigint NOT NULL
);
CREATE INDEX archive_count_delta_archive ON archive_count_delta (archive);
CREATE VIEW archive_size AS SELECT archive, sum(n)::bigint AS n, sum(bytes)::bigint AS bytes FROM (SELECT archive, n, bytes FROM archive_count UNION ALL SELECT archive, n, bytes FROM archive_count_delta) s GROUP BY archive;
CREATE FUNCTION archive_count_fold() RETURNS void LANGUAGE plpgsql AS $$ BEGIN IF pg_try_advisory_xact_lock(7065726369) THEN WITH d AS (DELETE FROM archive_count_delta RETURNING archive, n, bytes) INSERT INTO archive_count (archive, n, bytes) SELECT archive, sum(n), sum(bytes) FROM d GROUP BY archive ORDER BY archive ON CONFLICT (archive) DO UPDATE SET n = archive_count.n + EXCLUDED.n, bytes = archive_count.bytes + EXCLUDED.bytes; END IF; END $$;
CREATE OR REPLACE FUNCTION archive_count_insert() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO archive_count_delta (archive, n, bytes) SELECT archive, count(*), sum(octet_length(stanza)) FROM new_rows GROUP BY archive; IF random() < 0.05 THEN PERFORM archive_count_fold(); END IF; RETURN NULL; END $$;
CREATE OR REPLACE FUNCTION archive_count_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO archive_count_delta (archive, n, bytes) SELECT archive, -count(*), -sum(octet_length(stanza)) FROM old_rows GROUP BY archive; RETURN NULL; END $$;
CREATE OR REPLACE FUNCTION archive_count_update() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO archive_count_delta (archive, n, bytes) SELECT archive, 0, sum(b) FROM (SELECT archive, octet_length(stanza) AS b FROM new_rows UNION ALL SELECT archive, -octet_length(stanza) FROM old_rows) x GROUP BY archive HAVING sum(b) <> 0; RETURN NULL; END $$;
CREATE OR REPLACE FUNCTION archive_count_truncate() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN DELETE FROM archive_count; DELETE FROM archive_count_delta; RETURN NULL; END $$;
`,
  },
  {
    // The archive partitioned by quarter of stamp, its indexes one per query shape (see
    // storage/archive-partitions.ts and docs/scaling.md). Converted here when it holds at most a
    // million rows; a larger one is left as it is for \`perch archive partition\` to convert online.
    version: 11,
    name: 'archive partitioned by time',
    sql: '',
    run: partitionInMigration,
  },
  {
    // The full-text index keyed by archive (GIN on (archive, tsv), btree_gin): a search reads the
    // matches in its archive instead of every match in the table (see keyFulltextByArchive).
    version: 12,
    name: 'full-text index keyed by archive',
    sql: '',
    run: keyFulltextByArchive,
  },
  {
    // The sender index keeps room rows only: an account's rows are found by real_jid (see
    // narrowSenderIndex); a one-to-one message's two rows skip it.
    version: 13,
    name: 'sender index for room rows only',
    sql: '',
    run: narrowSenderIndex,
  },
  {
    // Rows cheaper to write: tsv filled by its writers, once per message (archive_tsv), and no
    // deduplication passes on indexes whose keys never repeat (see cheaperArchiveRows).
    version: 14,
    name: 'archive rows cheaper to write',
    sql: '',
    run: cheaperArchiveRows,
  },
  {
    // The deltas folded beside the writes, not in them: one statement in 20 folded every delta written
    // since the last fold inside its own transaction, and the message it carried waited for that (a
    // statement of one message: 0.92× PostgreSQL's CPU without it, bench/archive-statement-cost.mjs). A running node folds
    // about once a second (src/modules/archive-counts.ts, ArchiveStore.foldCounts); reads stay
    // exact whenever it does, as they sum the kept row with the deltas.
    version: 15,
    name: 'archive counts folded beside the writes',
    sql: `
CREATE OR REPLACE FUNCTION archive_count_insert() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO archive_count_delta (archive, n, bytes) SELECT archive, count(*), sum(octet_length(stanza)) FROM new_rows GROUP BY archive; RETURN NULL; END $$;
`,
  },
  {
    // Each archive named by an integer (archive_keys, akey): the indexes lead with it instead of the
    // JID, 0.81× of PostgreSQL's instructions per appended message (see keyArchivesInMigration,
    // storage/archive-keys.ts). Keyed here up to a million rows; a larger archive is read by JID, as
    // before, until \`perch archive reindex\` keys it online.
    version: 16,
    name: 'archives named by integers',
    sql: '',
    run: keyArchivesInMigration,
  },
];

// Arbitrary constant shared by every process migrating the same database.
const LOCK_KEY = 7_065_726_368;

function statements(sql: string): string[] {
  return sql
    .split(/;\s*(?:\n|$)/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/**
 * Applies pending migrations, each in its own transaction holding a transaction-scoped advisory
 * lock, so processes starting together apply each migration exactly once. Returns how many this
 * call applied.
 */
export async function migrate(
  db: Db,
  onProgress?: (done: number, total: number, name: string) => void,
  /** Stop after this version (tests and benchmarks of a migration from an older schema). */
  upTo = Number.POSITIVE_INFINITY,
  /** Rows the default partition may hold for this call to move them into their quarters (see MOVE_AT_START_LIMIT). */
  moveAtMost = MOVE_AT_START_LIMIT,
): Promise<number> {
  const applied = await db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [LOCK_KEY]);
    await tx.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version int PRIMARY KEY,
      name text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    return tx.query<{ version: number }>('SELECT version FROM schema_migrations');
  });
  const done = new Set(applied.map((r) => Number(r.version)));
  const pending = [...migrations].sort((a, b) => a.version - b.version).filter((m) => !done.has(m.version) && m.version <= upTo);

  let count = 0;
  for (const [i, m] of pending.entries()) {
    const ran = await db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [LOCK_KEY]);
      // Another process may have applied it while we waited for the lock.
      const rows = await tx.query('SELECT 1 FROM schema_migrations WHERE version = $1', [m.version]);
      if (rows.length > 0) return false;
      for (const stmt of statements(m.sql)) await tx.query(stmt);
      if (m.run) await m.run(tx);
      await tx.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
      return true;
    });
    if (ran) count++;
    onProgress?.(i + 1, pending.length, m.name);
  }
  // The coming quarters' archive partitions, at every start (moving no more stray rows than a start should wait for).
  await ensureArchivePartitions(db, { moveAtMost });
  // This process's stores read the archive's mode again (a migration may have keyed it).
  archiveKeys(db).invalidate();
  return count;
}

/**
 * Makes the archive's full-text column use this text search configuration ('simple': no stemming,
 * any language; 'english', 'german', …: stemming). Changing it rebuilds the column and its index,
 * which rewrites the archive table: a one-off cost, logged by the caller.
 */
export async function setFulltextLanguage(db: Db, language: string, onRebuild?: (from: string, to: string) => void): Promise<void> {
  if (!/^[a-z_]{1,63}$/.test(language)) throw new Error(`invalid full-text language: ${language}`);
  const current = await archiveFulltextLanguage(db);
  if (current === language) return;
  const known = await db.query('SELECT 1 FROM pg_ts_config WHERE cfgname = $1', [language]);
  if (known.length === 0) throw new Error(`PostgreSQL has no text search configuration named ${language}`);
  onRebuild?.(current ?? '(none)', language);
  await db.transaction(async (tx) => {
    await tx.query('DROP INDEX IF EXISTS archive_tsv');
    await tx.query('DROP TRIGGER IF EXISTS archive_tsv_insert ON archive');
    await tx.query('DROP TRIGGER IF EXISTS archive_tsv_update ON archive');
    await tx.query('ALTER TABLE archive DROP COLUMN IF EXISTS tsv');
    // Added as a generated column, so the table's rewrite computes every row's words (no row
    // trigger runs), then made the plain column the writers fill.
    await tx.query(`ALTER TABLE archive ADD COLUMN tsv tsvector GENERATED ALWAYS AS (to_tsvector('${language}', body)) STORED`);
    await tsvFilledByWriters(tx, 'archive', language);
    await tx.query(`CREATE INDEX archive_tsv ON archive USING gin ${await fulltextKey(tx, (await readKeyMode(tx)) === 'keyed')}`);
  });
}
