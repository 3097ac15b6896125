// The directory (groups, org units) and the persistent-chat model (categories, room settings,
// add-ins, service settings, policies, invitations) in SQL that runs unchanged on PostgreSQL and PGlite.
import {
  DEFAULT_CHAT_SETTINGS,
  NameTaken,
  type AddinRecord,
  type CategoryRecord,
  type ChatPolicyRecord,
  type ChatRoomRecord,
  type ChatServiceSettings,
  type ChatStore,
  type Db,
  type DbTx,
  type DirectoryStore,
  type GroupRecord,
  type GroupSummary,
  type InvitationRecord,
  type OrgUnitRecord,
  type RoomKind,
  type RoomPrivacy,
} from './types.js';

// int8 arrives as string (pg) or number/bigint (PGlite); every value here fits a double.
const num = (v: unknown): number => Number(v);
/** Display names are unique case-insensitively; folded here, not by lower() (ASCII only under "C"). */
const fold = (name: string): string => name.toLowerCase();
/** A LIKE pattern matching text that starts with prefix. */
const likePrefix = (prefix: string): string => prefix.replace(/[\\%_]/g, (c) => `\\${c}`) + '%';

/** Keys of users, as opposed to groups, org units and domains. */
const USER_KEY = (col: string) => `${col} NOT LIKE 'group:%' AND ${col} NOT LIKE 'ou:%' AND ${col} NOT LIKE 'domain:%'`;

/**
 * Name checks across rooms, categories and add-ins of one service run under this per-service lock,
 * so two writers cannot both find a name free.
 */
const NAME_LOCK = 7_065_726;
async function lockNames(tx: DbTx, service: string): Promise<void> {
  await tx.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [NAME_LOCK, service]);
}

/**
 * The stored name of the entry being written (found by its previous name when renamed; undefined when
 * new), after checking that no other entry of the table holds the new name case-insensitively.
 */
async function claimName(tx: DbTx, table: 'chat_categories' | 'chat_addins', by: 'category' | 'addin', service: string, name: string, previousName?: string): Promise<string | undefined> {
  const existing = (await tx.query<{ name: string }>(
    `SELECT name FROM ${table} WHERE service = $1 AND lname = $2`, [service, fold(previousName ?? name)],
  ))[0]?.name;
  const clash = await tx.query(`SELECT 1 FROM ${table} WHERE service = $1 AND lname = $2 AND name IS DISTINCT FROM $3::text`, [service, fold(name), existing ?? null]);
  if (clash.length > 0) throw new NameTaken(name, by);
  return existing;
}

type AclObject = 'category' | 'room';

/**
 * Makes an object's access lists equal to lists (only the lists named there are touched): deletes
 * the rows no longer listed and inserts the new ones, so an edit of a long list writes only the change.
 */
async function writeAcl(tx: DbTx, service: string, kind: AclObject, object: string, lists: Record<string, readonly string[]>): Promise<void> {
  const names: string[] = [];
  const principals: string[] = [];
  for (const [list, entries] of Object.entries(lists)) {
    for (const p of new Set(entries)) {
      names.push(list);
      principals.push(p);
    }
  }
  await tx.query(
    `DELETE FROM chat_acl a WHERE a.service = $1 AND a.object_kind = $2 AND a.object_name = $3 AND a.list = ANY($4::text[])
       AND NOT EXISTS (SELECT 1 FROM unnest($5::text[], $6::text[]) AS n(list, principal) WHERE n.list = a.list AND n.principal = a.principal)`,
    [service, kind, object, Object.keys(lists), names, principals],
  );
  if (names.length > 0) {
    await tx.query(
      `INSERT INTO chat_acl (service, object_kind, object_name, list, principal)
       SELECT $1, $2, $3, n.list, n.principal FROM unnest($4::text[], $5::text[]) AS n(list, principal)
       ON CONFLICT DO NOTHING`,
      [service, kind, object, names, principals],
    );
  }
}

interface AclRow { object_name: string; list: string; principals: string[] }

/** Every access list of one kind of object in a service, in one statement: object → list → principals (sorted). */
async function readAcls(q: Pick<DbTx, 'query'>, service: string, kind: AclObject, object?: string): Promise<Map<string, Map<string, string[]>>> {
  const rows = await q.query<AclRow>(
    `SELECT object_name, list, array_agg(principal ORDER BY principal) AS principals FROM chat_acl
      WHERE service = $1 AND object_kind = $2 ${object === undefined ? '' : 'AND object_name = $3'}
      GROUP BY object_name, list`,
    object === undefined ? [service, kind] : [service, kind, object],
  );
  const out = new Map<string, Map<string, string[]>>();
  for (const r of rows) {
    let lists = out.get(r.object_name);
    if (!lists) out.set(r.object_name, (lists = new Map()));
    lists.set(r.list, r.principals);
  }
  return out;
}

// --- Directory ------------------------------------------------------------------------------------

export function createDirectoryStore(db: Db): DirectoryStore {
  /** Inserts the row or updates its description; true when inserted. */
  const upsertDescribed = (table: 'directory_groups' | 'org_units', key: 'name' | 'path') =>
    (id: string, description: string): Promise<boolean> =>
      db.transaction(async (tx) => {
        const inserted = await tx.query(`INSERT INTO ${table} (${key}, description) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING 1`, [id, description]);
        if (inserted.length > 0) return true;
        await tx.query(`UPDATE ${table} SET description = $2 WHERE ${key} = $1`, [id, description]);
        return false;
      });

  return {
    putGroup: upsertDescribed('directory_groups', 'name'),

    async getGroup(name: string): Promise<GroupRecord | null> {
      const rows = await db.query<{ description: string; members: string[] | null }>(
        `SELECT g.description, (SELECT array_agg(m.member ORDER BY m.member) FROM directory_group_members m WHERE m.group_name = g.name) AS members
           FROM directory_groups g WHERE g.name = $1`,
        [name],
      );
      const r = rows[0];
      return r ? { name, description: r.description, members: r.members ?? [] } : null;
    },

    async listGroups(): Promise<GroupSummary[]> {
      const rows = await db.query<{ name: string; description: string; members: unknown }>(
        `SELECT g.name, g.description, count(m.member) AS members
           FROM directory_groups g LEFT JOIN directory_group_members m ON m.group_name = g.name
          GROUP BY g.name, g.description ORDER BY g.name`,
      );
      return rows.map((r) => ({ name: r.name, description: r.description, members: num(r.members) }));
    },

    deleteGroup(name: string): Promise<boolean> {
      return db.transaction(async (tx) => {
        await tx.query('DELETE FROM directory_group_members WHERE member = $1', [`group:${name}`]);
        // Its own member rows go with it (ON DELETE CASCADE).
        return (await tx.query('DELETE FROM directory_groups WHERE name = $1 RETURNING 1', [name])).length > 0;
      });
    },

    editGroupMembers(name, edit): Promise<boolean> {
      return db.transaction(async (tx) => {
        if ((await tx.query('SELECT 1 FROM directory_groups WHERE name = $1 FOR UPDATE', [name])).length === 0) return false;
        if (edit.clear) await tx.query('DELETE FROM directory_group_members WHERE group_name = $1', [name]);
        if (edit.add.length > 0) {
          await tx.query(
            `INSERT INTO directory_group_members (group_name, member) SELECT $1, m FROM unnest($2::text[]) AS m ON CONFLICT DO NOTHING`,
            [name, edit.add],
          );
        }
        if (edit.remove.length > 0) {
          await tx.query('DELETE FROM directory_group_members WHERE group_name = $1 AND member = ANY($2::text[])', [name, edit.remove]);
        }
        return true;
      });
    },

    async groupEdges() {
      const rows = await db.query<{ grp: string; parent: string }>(
        `SELECT substr(member, 7) AS grp, group_name AS parent FROM directory_group_members
          WHERE member LIKE 'group:%' ORDER BY group_name, member`,
      );
      return rows.map((r) => ({ group: r.grp, parent: r.parent }));
    },

    async userEntries(users: string[]) {
      const out = new Map<string, { groups: string[]; ou: string | null }>();
      if (users.length === 0) return out;
      // One statement for any number of users: direct groups and the org unit, by the user's position.
      const rows = await db.query<{ i: unknown; grp: string | null; ou: string | null }>(
        `SELECT k.i, m.group_name AS grp, NULL::text AS ou
           FROM unnest($1::text[]) WITH ORDINALITY AS k(u, i) JOIN directory_group_members m ON m.member = k.u
         UNION ALL
         SELECT k.i, NULL::text, o.path
           FROM unnest($1::text[]) WITH ORDINALITY AS k(u, i) JOIN user_org_units o ON o.user_jid = k.u
         ORDER BY 1, 2`,
        [users],
      );
      for (const r of rows) {
        const user = users[num(r.i) - 1] as string;
        let entry = out.get(user);
        if (!entry) out.set(user, (entry = { groups: [], ou: null }));
        if (r.grp !== null) entry.groups.push(r.grp);
        if (r.ou !== null) entry.ou = r.ou;
      }
      return out;
    },

    putOrgUnit: upsertDescribed('org_units', 'path'),

    async listOrgUnits(): Promise<OrgUnitRecord[]> {
      const rows = await db.query<{ path: string; description: string; users: unknown }>(
        `SELECT o.path, o.description, (SELECT count(*) FROM user_org_units u WHERE u.path = o.path) AS users
           FROM org_units o ORDER BY o.path`,
      );
      return rows.map((r) => ({ path: r.path, description: r.description, users: num(r.users) }));
    },

    deleteOrgUnit(path: string): Promise<boolean | 'not-empty'> {
      return db.transaction(async (tx) => {
        if ((await tx.query('SELECT 1 FROM org_units WHERE path = $1 FOR UPDATE', [path])).length === 0) return false;
        const occupied = await tx.query(
          `SELECT 1 FROM user_org_units WHERE path = $1 OR path LIKE $2 ESCAPE '\\' LIMIT 1`,
          [path, likePrefix(`${path}/`)],
        );
        if (occupied.length > 0) return 'not-empty';
        await tx.query('DELETE FROM org_units WHERE path = $1', [path]);
        return true;
      });
    },

    async setUserOrgUnit(user: string, path: string | null): Promise<boolean> {
      if (path === null) {
        await db.query('DELETE FROM user_org_units WHERE user_jid = $1', [user]);
        return true;
      }
      // The unit's existence is checked by the insert itself: no row comes out when it is absent.
      const rows = await db.query(
        `INSERT INTO user_org_units (user_jid, path) SELECT $1, path FROM org_units WHERE path = $2
         ON CONFLICT (user_jid) DO UPDATE SET path = EXCLUDED.path RETURNING 1`,
        [user, path],
      );
      return rows.length > 0;
    },

    async expandUsers(principal: string, serverDomain: string, limit: number): Promise<string[]> {
      if (limit <= 0) return [];
      let rows: { u: string }[];
      if (principal.startsWith('group:')) {
        // UNION (not UNION ALL) visits each group once, so a membership cycle ends.
        rows = await db.query<{ u: string }>(
          `WITH RECURSIVE g(name) AS (
             SELECT $1::text COLLATE "C"
             UNION
             SELECT substr(m.member, 7) FROM directory_group_members m JOIN g ON m.group_name = g.name WHERE m.member LIKE 'group:%'
           )
           SELECT DISTINCT m.member AS u FROM directory_group_members m JOIN g ON m.group_name = g.name
            WHERE ${USER_KEY('m.member')} ORDER BY 1 LIMIT $2`,
          [principal.slice(6), limit],
        );
      } else if (principal.startsWith('ou:')) {
        const path = principal.slice(3);
        rows = await db.query<{ u: string }>(
          `SELECT user_jid AS u FROM user_org_units WHERE path = $1 OR path LIKE $2 ESCAPE '\\' ORDER BY 1 LIMIT $3`,
          [path, likePrefix(`${path}/`), limit],
        );
      } else if (principal.startsWith('domain:')) {
        const domain = principal.slice(7);
        const suffix = `@${domain}`;
        const accounts = fold(domain) === fold(serverDomain)
          ? `SELECT username || $1 COLLATE "C" AS u FROM users UNION `
          : '';
        const bare = (col: string) => `right(${col}, char_length($1)) = $1 AND ${USER_KEY(col)}`;
        rows = await db.query<{ u: string }>(
          `SELECT u FROM (
             ${accounts}
             SELECT member FROM directory_group_members WHERE ${bare('member')}
             UNION SELECT user_jid FROM user_org_units WHERE ${bare('user_jid')}
             UNION SELECT principal FROM chat_acl WHERE ${bare('principal')}
           ) AS known(u) ORDER BY 1 LIMIT $2`,
          [suffix, limit],
        );
      } else {
        return [principal];
      }
      return rows.map((r) => r.u);
    },
  };
}

// --- Persistent chat ------------------------------------------------------------------------------

interface CategoryRow {
  service: string;
  name: string;
  description: string;
  invitations: boolean;
  file_upload: boolean;
  chat_history: boolean;
  editing: boolean;
}
interface RoomRow {
  service: string;
  room: string;
  category: string;
  name: string;
  description: string;
  privacy: RoomPrivacy;
  type: RoomKind;
  invitations: 'inherit' | 'off';
  disabled: boolean;
  addin: string | null;
  members_inherit: boolean;
  created_at: Date;
}
interface InvitationRow { id: unknown; user_jid: string; service: string; room: string; inviter: string; at: Date }

const CATEGORY_COLUMNS = 'service, name, description, invitations, file_upload, chat_history, editing';
const ROOM_COLUMNS = 'service, room, category, name, description, privacy, type, invitations, disabled, addin, members_inherit, created_at';

function toCategory(r: CategoryRow, lists: Map<string, string[]> | undefined): CategoryRecord {
  return {
    service: r.service,
    name: r.name,
    description: r.description,
    allowed: lists?.get('allowed') ?? [],
    denied: lists?.get('denied') ?? [],
    creators: lists?.get('creators') ?? [],
    invitations: r.invitations,
    fileUpload: r.file_upload,
    chatHistory: r.chat_history,
    editing: r.editing,
  };
}

function toRoom(r: RoomRow, lists: Map<string, string[]> | undefined): ChatRoomRecord {
  return {
    service: r.service,
    room: r.room,
    category: r.category,
    name: r.name,
    description: r.description,
    privacy: r.privacy,
    type: r.type,
    invitations: r.invitations,
    disabled: r.disabled,
    addin: r.addin,
    members: r.members_inherit ? null : lists?.get('members') ?? [],
    managers: lists?.get('managers') ?? [],
    presenters: lists?.get('presenters') ?? [],
    createdAt: new Date(r.created_at),
  };
}

const toInvitation = (r: InvitationRow): InvitationRecord =>
  ({ id: num(r.id), user: r.user_jid, service: r.service, room: r.room, inviter: r.inviter, at: new Date(r.at) });

export function createChatStore(db: Db): ChatStore {
  return {
    async categories(service: string): Promise<CategoryRecord[]> {
      const rows = await db.query<CategoryRow>(`SELECT ${CATEGORY_COLUMNS} FROM chat_categories WHERE service = $1 ORDER BY lname, name`, [service]);
      if (rows.length === 0) return [];
      const acls = await readAcls(db, service, 'category');
      return rows.map((r) => toCategory(r, acls.get(r.name)));
    },

    putCategory(rec: CategoryRecord, previousName?: string): Promise<void> {
      return db.transaction(async (tx) => {
        await lockNames(tx, rec.service);
        const lname = fold(rec.name);
        const existing = await claimName(tx, 'chat_categories', 'category', rec.service, rec.name, previousName);
        if ((await tx.query('SELECT 1 FROM chat_rooms WHERE service = $1 AND lname = $2', [rec.service, lname])).length > 0) {
          throw new NameTaken(rec.name, 'room');
        }
        const values = [rec.service, rec.name, lname, rec.description, rec.invitations, rec.fileUpload, rec.chatHistory, rec.editing];
        if (existing === undefined) {
          await tx.query(
            `INSERT INTO chat_categories (service, name, lname, description, invitations, file_upload, chat_history, editing) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
            values,
          );
        } else {
          // A new name reaches the rooms through the foreign key (ON UPDATE CASCADE).
          await tx.query(
            `UPDATE chat_categories SET name = $2, lname = $3, description = $4, invitations = $5, file_upload = $6, chat_history = $7, editing = $8
              WHERE service = $1 AND name = $9`,
            [...values, existing],
          );
          if (existing !== rec.name) {
            await tx.query(
              `UPDATE chat_acl SET object_name = $3 WHERE service = $1 AND object_kind = 'category' AND object_name = $2`,
              [rec.service, existing, rec.name],
            );
          }
        }
        await writeAcl(tx, rec.service, 'category', rec.name, { allowed: rec.allowed, denied: rec.denied, creators: rec.creators });
      });
    },

    deleteCategory(service: string, name: string): Promise<boolean | 'not-empty'> {
      return db.transaction(async (tx) => {
        const existing = (await tx.query<{ name: string }>(
          'SELECT name FROM chat_categories WHERE service = $1 AND lname = $2 FOR UPDATE',
          [service, fold(name)],
        ))[0]?.name;
        if (existing === undefined) return false;
        if ((await tx.query('SELECT 1 FROM chat_rooms WHERE service = $1 AND category = $2 LIMIT 1', [service, existing])).length > 0) {
          return 'not-empty';
        }
        await tx.query(`DELETE FROM chat_acl WHERE service = $1 AND object_kind = 'category' AND object_name = $2`, [service, existing]);
        await tx.query('DELETE FROM chat_categories WHERE service = $1 AND name = $2', [service, existing]);
        return true;
      });
    },

    async rooms(service: string): Promise<ChatRoomRecord[]> {
      const rows = await db.query<RoomRow>(`SELECT ${ROOM_COLUMNS} FROM chat_rooms WHERE service = $1 ORDER BY room`, [service]);
      if (rows.length === 0) return [];
      const acls = await readAcls(db, service, 'room');
      return rows.map((r) => toRoom(r, acls.get(r.room)));
    },

    async room(service: string, room: string): Promise<ChatRoomRecord | null> {
      const rows = await db.query<RoomRow>(`SELECT ${ROOM_COLUMNS} FROM chat_rooms WHERE service = $1 AND room = $2`, [service, room]);
      const r = rows[0];
      if (!r) return null;
      return toRoom(r, (await readAcls(db, service, 'room', room)).get(room));
    },

    putRoom(rec: ChatRoomRecord): Promise<void> {
      return db.transaction(async (tx) => {
        await lockNames(tx, rec.service);
        const lname = fold(rec.name);
        if ((await tx.query('SELECT 1 FROM chat_categories WHERE service = $1 AND lname = $2', [rec.service, lname])).length > 0) {
          throw new NameTaken(rec.name, 'category');
        }
        if ((await tx.query('SELECT 1 FROM chat_rooms WHERE service = $1 AND lname = $2 AND room <> $3', [rec.service, lname, rec.room])).length > 0) {
          throw new NameTaken(rec.name, 'room');
        }
        await tx.query(
          `INSERT INTO chat_rooms (service, room, category, name, lname, description, privacy, type, invitations, disabled, addin, members_inherit, created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
           ON CONFLICT (service, room) DO UPDATE SET category = EXCLUDED.category, name = EXCLUDED.name, lname = EXCLUDED.lname,
             description = EXCLUDED.description, privacy = EXCLUDED.privacy, type = EXCLUDED.type, invitations = EXCLUDED.invitations,
             disabled = EXCLUDED.disabled, addin = EXCLUDED.addin, members_inherit = EXCLUDED.members_inherit, created_at = EXCLUDED.created_at`,
          [rec.service, rec.room, rec.category, rec.name, lname, rec.description, rec.privacy, rec.type, rec.invitations,
            rec.disabled, rec.addin, rec.members === null, rec.createdAt],
        );
        await writeAcl(tx, rec.service, 'room', rec.room, { members: rec.members ?? [], managers: rec.managers, presenters: rec.presenters });
      });
    },

    deleteRoom(service: string, room: string): Promise<boolean> {
      return db.transaction(async (tx) => {
        await tx.query(`DELETE FROM chat_acl WHERE service = $1 AND object_kind = 'room' AND object_name = $2`, [service, room]);
        return (await tx.query('DELETE FROM chat_rooms WHERE service = $1 AND room = $2 RETURNING 1', [service, room])).length > 0;
      });
    },

    async addins(service: string): Promise<AddinRecord[]> {
      return db.query<AddinRecord>('SELECT service, name, url FROM chat_addins WHERE service = $1 ORDER BY lname, name', [service]);
    },

    putAddin(rec: AddinRecord, previousName?: string): Promise<void> {
      return db.transaction(async (tx) => {
        await lockNames(tx, rec.service);
        const lname = fold(rec.name);
        const existing = await claimName(tx, 'chat_addins', 'addin', rec.service, rec.name, previousName);
        if (existing === undefined) {
          await tx.query('INSERT INTO chat_addins (service, name, lname, url) VALUES ($1, $2, $3, $4)', [rec.service, rec.name, lname, rec.url]);
          return;
        }
        await tx.query('UPDATE chat_addins SET name = $2, lname = $3, url = $4 WHERE service = $1 AND name = $5', [rec.service, rec.name, lname, rec.url, existing]);
        // Rooms name their add-in: a rename follows them.
        if (existing !== rec.name) {
          await tx.query('UPDATE chat_rooms SET addin = $3 WHERE service = $1 AND addin = $2', [rec.service, existing, rec.name]);
        }
      });
    },

    async deleteAddin(service: string, name: string): Promise<boolean> {
      const rows = await db.query('DELETE FROM chat_addins WHERE service = $1 AND lname = $2 RETURNING 1', [service, fold(name)]);
      return rows.length > 0;
    },

    async settings(service: string): Promise<ChatServiceSettings> {
      const rows = await db.query<{ default_history: number; max_file_size_kb: number; participant_update_limit: number; room_management_url: string }>(
        'SELECT default_history, max_file_size_kb, participant_update_limit, room_management_url FROM chat_service_settings WHERE service = $1',
        [service],
      );
      const r = rows[0];
      if (!r) return { ...DEFAULT_CHAT_SETTINGS };
      return {
        defaultHistory: num(r.default_history),
        maxFileSizeKb: num(r.max_file_size_kb),
        participantUpdateLimit: num(r.participant_update_limit),
        roomManagementUrl: r.room_management_url,
      };
    },

    async putSettings(service: string, s: ChatServiceSettings): Promise<void> {
      await db.query(
        `INSERT INTO chat_service_settings (service, default_history, max_file_size_kb, participant_update_limit, room_management_url)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (service) DO UPDATE SET default_history = EXCLUDED.default_history, max_file_size_kb = EXCLUDED.max_file_size_kb,
           participant_update_limit = EXCLUDED.participant_update_limit, room_management_url = EXCLUDED.room_management_url`,
        [service, s.defaultHistory, s.maxFileSizeKb, s.participantUpdateLimit, s.roomManagementUrl],
      );
    },

    async policies(): Promise<ChatPolicyRecord[]> {
      return db.query<ChatPolicyRecord>('SELECT scope, subject, enabled FROM chat_policies ORDER BY scope, subject');
    },

    async setPolicy(scope, subject, enabled): Promise<void> {
      if (enabled === null) {
        await db.query('DELETE FROM chat_policies WHERE scope = $1 AND subject = $2', [scope, subject]);
        return;
      }
      await db.query(
        `INSERT INTO chat_policies (scope, subject, enabled) VALUES ($1, $2, $3)
         ON CONFLICT (scope, subject) DO UPDATE SET enabled = EXCLUDED.enabled`,
        [scope, subject, enabled],
      );
    },

    async addInvitations(items): Promise<InvitationRecord[]> {
      if (items.length === 0) return [];
      const rows = await db.query<InvitationRow>(
        `INSERT INTO chat_invitations (user_jid, service, room, inviter)
         SELECT u, s, r, f FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS n(u, s, r, f, i) ORDER BY i
         RETURNING id, user_jid, service, room, inviter, at`,
        [items.map((x) => x.user), items.map((x) => x.service), items.map((x) => x.room), items.map((x) => x.inviter)],
      );
      return rows.map(toInvitation).sort((a, b) => a.id - b.id);
    },

    async invitations(user: string, afterId: number, limit: number): Promise<InvitationRecord[]> {
      const rows = await db.query<InvitationRow>(
        'SELECT id, user_jid, service, room, inviter, at FROM chat_invitations WHERE user_jid = $1 AND id > $2 ORDER BY id LIMIT $3',
        [user, afterId, limit],
      );
      return rows.map(toInvitation);
    },
  };
}
