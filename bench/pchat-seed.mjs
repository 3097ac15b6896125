// The data bench/pchat-scale.mjs measures on: a company directory and persistent-chat model at the size of
// the original (150,000 users, 10,000 groups nested 5 deep, 100 categories, 33,000 rooms, ≈ 2,000,000
// access entries), written straight into Perch's tables with INSERT … SELECT over generate_series.
// Choices are derived from PostgreSQL's hashint4 of the row numbers: the same data on every run.

const REGIONS = ['emea', 'amer', 'apac', 'latam', 'anz'];
const DEPTS = 10;
const TEAMS = 20; // per department: 5 × 10 × 20 = 1,000 teams
const LEVELS = [10, 40, 200, 1750, 8000]; // groups per nesting level, 10,000 in all

/** The sizes, scaled for smoke tests (scale 1 = the original's). */
export function SHAPE(scale = 1) {
  const domain = 'bench.local';
  return {
    scale, domain, service: `conference.${domain}`,
    users: Math.max(1000, Math.round(150_000 * scale)),
    levels: LEVELS.map((n, i) => Math.max(i === 0 ? 2 : 4, Math.round(n * scale))),
    categories: 100,
    rooms: Math.max(200, Math.round(33_000 * scale)),
    leafGroupsPerUser: 3,
    memberGroups: [5, 10, 30], // per room: level-3, level-4 and level-5 groups in the member list
    memberUsers: 14,
    targetRooms: Math.round(10_000 * scale),
    targetGroup: 'wide-group',
    probeUser: `probe0@${domain}`,
    adminUser: `admin@${domain}`,
  };
}

export function describeShape(s) {
  const [l1, l2, l3, l4, l5] = s.levels;
  return `users u<i>@${s.domain}, each in one org unit /corp/<region>/<dept>/<team> (${REGIONS.length} regions × ${DEPTS} departments × ${TEAMS} teams, users spread evenly) and in ${s.leafGroupsPerUser} leaf groups drawn at random; `
    + `groups nested 5 deep (${l1} / ${l2} / ${l3} / ${l4} / ${l5} per level, each in one parent group of the level above, 1 in 20 in a second parent); `
    + `${s.categories} categories on ${s.service}: allowed the domain (3 in 10), a region OU (4 in 10) or a department OU (3 in 10), denied one level-3 group, creators one level-2 group; `
    + `${s.rooms.toLocaleString('en-US')} rooms, ${Math.round(s.rooms / s.categories)} per category: 30 % open, 50 % closed, 20 % secret, 8 % auditoriums; every room's member list holds ${s.memberGroups.reduce((a, b) => a + b, 0)} groups (levels 3–5) and ${s.memberUsers} users `
    + `(1 in 10 open rooms inherits the category scope instead), managers 2 users + 1 group, auditoriums 3 users + 1 group as presenters; `
    + `the group ${s.targetGroup} (no parent) is in the member lists of ${s.targetRooms.toLocaleString('en-US')} rooms drawn at random among those with a list; `
    + `policies: global on, ${Math.min(50, s.levels[2])} level-3 groups (1 in 10 off), every 150th user (1 in 7 off)`;
}

/** [label, SQL] in order. */
export function seedSql(s) {
  const H = (x) => `(hashint4((${x})::int)::bigint + 2147483648)`;
  const grp = (lvl, idx) => `'l${lvl}-' || lpad((${idx})::text, 4, '0')`;
  const user = (idx) => `'u' || (${idx}) || '@${s.domain}'`;
  const regions = `ARRAY[${REGIONS.map((r) => `'${r}'`).join(',')}]`;
  const teams = REGIONS.length * DEPTS * TEAMS;
  const regionOf = (t) => `(${regions})[(${t}) / ${DEPTS * TEAMS} + 1]`;
  const deptOf = (t) => `'dept' || lpad((((${t}) / ${TEAMS}) % ${DEPTS})::text, 2, '0')`;
  const teamOf = (t) => `'team' || lpad(((${t}) % ${TEAMS})::text, 2, '0')`;
  const [L1, L2, L3, L4, L5] = s.levels;
  const out = [];
  out.push(['org units', `INSERT INTO org_units (path)
    SELECT '/corp' UNION ALL
    SELECT '/corp/' || r FROM unnest(${regions}) r UNION ALL
    SELECT '/corp/' || r || '/dept' || lpad(d::text, 2, '0') FROM unnest(${regions}) r, generate_series(0, ${DEPTS - 1}) d UNION ALL
    SELECT '/corp/' || ${regionOf('t')} || '/' || ${deptOf('t')} || '/' || ${teamOf('t')} FROM generate_series(0, ${teams - 1}) t`]);
  out.push(['users in org units', `INSERT INTO user_org_units (user_jid, path)
    SELECT ${user('i')}, '/corp/' || ${regionOf('i % 1000')} || '/' || ${deptOf('i % 1000')} || '/' || ${teamOf('i % 1000')}
      FROM generate_series(0, ${s.users - 1}) i`]);
  out.push(['groups', `INSERT INTO directory_groups (name)
    ${s.levels.map((n, i) => `SELECT ${grp(i + 1, 'j')} FROM generate_series(0, ${n - 1}) j`).join(' UNION ALL ')}
    UNION ALL SELECT '${s.targetGroup}'`]);
  out.push(['group nesting', `INSERT INTO directory_group_members (group_name, member)
    ${[2, 3, 4, 5].map((lvl) => {
      const above = s.levels[lvl - 2], here = s.levels[lvl - 1];
      return `SELECT ${grp(lvl - 1, `j % ${above}`)}, 'group:' || ${grp(lvl, 'j')} FROM generate_series(0, ${here - 1}) j
        UNION ALL SELECT ${grp(lvl - 1, `${H(`j * 7 + 3 + ${lvl} * 100000`)} % ${above}`)}, 'group:' || ${grp(lvl, 'j')} FROM generate_series(0, ${here - 1}) j WHERE j % 20 = 7`;
    }).join(' UNION ALL ')}
    ON CONFLICT DO NOTHING`]);
  out.push(['users in leaf groups', `INSERT INTO directory_group_members (group_name, member)
    SELECT ${grp(5, `${H('i * 3 + k')} % ${L5}`)}, ${user('i')} FROM generate_series(0, ${s.users - 1}) i, generate_series(0, ${s.leafGroupsPerUser - 1}) k
    ON CONFLICT DO NOTHING`]);
  out.push(['probe users', `INSERT INTO user_org_units (user_jid, path) VALUES ('${s.probeUser}', '/corp/emea/dept00/team00'), ('${s.adminUser}', '/corp/emea/dept00/team00')`]);
  out.push(['probe in the wide group', `INSERT INTO directory_group_members (group_name, member) VALUES ('${s.targetGroup}', '${s.probeUser}')`]);
  const cat = (c) => `'cat-' || lpad((${c})::text, 3, '0')`;
  out.push(['categories', `INSERT INTO chat_categories (service, name, lname, description, invitations, file_upload, chat_history)
    SELECT '${s.service}', ${cat('c')}, ${cat('c')}, 'Category ' || c, c % 2 = 0, c % 3 <> 0, c % 10 <> 9 FROM generate_series(0, ${s.categories - 1}) c`]);
  const catAcl = (list, expr, where = 'true') => `SELECT '${s.service}', 'category', ${cat('c')}, '${list}', ${expr} FROM generate_series(0, ${s.categories - 1}) c WHERE ${where}`;
  out.push(['acl: categories', `INSERT INTO chat_acl (service, object_kind, object_name, list, principal)
    ${catAcl('allowed', `'domain:${s.domain}'`, 'c % 10 < 3')}
    UNION ALL ${catAcl('allowed', `'ou:/corp/' || (${regions})[c % ${REGIONS.length} + 1]`, 'c % 10 BETWEEN 3 AND 6')}
    UNION ALL ${catAcl('allowed', `'ou:/corp/' || (${regions})[c % ${REGIONS.length} + 1] || '/dept' || lpad(((c / 10) % ${DEPTS})::text, 2, '0')`, 'c % 10 >= 7')}
    UNION ALL ${catAcl('denied', `'group:' || ${grp(3, `(c * 13) % ${L3}`)}`)}
    UNION ALL ${catAcl('creators', `'group:' || ${grp(2, `c % ${L2}`)}`)}`]);
  const perCat = Math.ceil(s.rooms / s.categories);
  const room = (r) => `'room-' || lpad((${r})::text, 5, '0')`;
  const privacy = (r) => `CASE WHEN ${H(`${r} * 7 + 1`)} % 100 < 30 THEN 'open' WHEN ${H(`${r} * 7 + 1`)} % 100 < 80 THEN 'closed' ELSE 'secret' END`;
  out.push(['rooms', `INSERT INTO chat_rooms (service, room, category, name, lname, description, privacy, type, members_inherit)
    SELECT '${s.service}', ${room('r')}, ${cat(`(r / ${perCat}) % ${s.categories}`)}, 'Room ' || lpad(r::text, 5, '0'), 'room ' || lpad(r::text, 5, '0'), '',
      ${privacy('r')}, CASE WHEN ${H('r * 7 + 2')} % 100 < 8 THEN 'auditorium' ELSE 'normal' END,
      ${H('r * 7 + 1')} % 100 < 30 AND ${H('r * 7 + 3')} % 10 = 0
      FROM generate_series(0, ${s.rooms - 1}) r`]);
  const [g3, g4, g5] = s.memberGroups;
  const memberEntry = `CASE WHEN k < ${g3} THEN 'group:' || ${grp(3, `${H('r * 64 + k')} % ${L3}`)}
      WHEN k < ${g3 + g4} THEN 'group:' || ${grp(4, `${H('r * 64 + k')} % ${L4}`)}
      WHEN k < ${g3 + g4 + g5} THEN 'group:' || ${grp(5, `${H('r * 64 + k')} % ${L5}`)}
      ELSE ${user(`${H('r * 64 + k')} % ${s.users}`)} END`;
  out.push(['acl: room members', `INSERT INTO chat_acl (service, object_kind, object_name, list, principal)
    SELECT '${s.service}', 'room', ${room('r')}, 'members', ${memberEntry}
      FROM generate_series(0, ${s.rooms - 1}) r, generate_series(0, ${g3 + g4 + g5 + s.memberUsers - 1}) k
     WHERE NOT (${H('r * 7 + 1')} % 100 < 30 AND ${H('r * 7 + 3')} % 10 = 0)
    ON CONFLICT DO NOTHING`]);
  out.push(['acl: the wide group in member lists', `INSERT INTO chat_acl (service, object_kind, object_name, list, principal)
    SELECT service, 'room', room, 'members', 'group:${s.targetGroup}' FROM chat_rooms
     WHERE service = '${s.service}' AND NOT members_inherit ORDER BY ${H("substr(room, 6)::int * 7 + 5")} LIMIT ${s.targetRooms}`]);
  out.push(['acl: room managers and presenters', `INSERT INTO chat_acl (service, object_kind, object_name, list, principal)
    SELECT '${s.service}', 'room', ${room('r')}, 'managers', CASE WHEN k < 2 THEN ${user(`${H('r * 64 + 50 + k')} % ${s.users}`)} ELSE 'group:' || ${grp(4, `${H('r * 64 + 52')} % ${L4}`)} END
      FROM generate_series(0, ${s.rooms - 1}) r, generate_series(0, 2) k
    UNION ALL
    SELECT '${s.service}', 'room', ${room('r')}, 'presenters', CASE WHEN k < 3 THEN ${user(`${H('r * 64 + 55 + k')} % ${s.users}`)} ELSE 'group:' || ${grp(4, `${H('r * 64 + 58')} % ${L4}`)} END
      FROM generate_series(0, ${s.rooms - 1}) r, generate_series(0, 3) k WHERE ${H('r * 7 + 2')} % 100 < 8
    ON CONFLICT DO NOTHING`]);
  out.push(['policies', `INSERT INTO chat_policies (scope, subject, enabled)
    SELECT 'global', '', true
    UNION ALL SELECT 'group', ${grp(3, 'j')}, j % 10 <> 0 FROM generate_series(0, ${Math.min(50, L3) - 1}) j
    UNION ALL SELECT 'user', ${user('i')}, (i / 150) % 7 <> 0 FROM generate_series(0, ${s.users - 1}, 150) i`]);
  return out;
}

/**
 * The room the propagation phase uses: closed, normal, in a category allowing the whole domain, with the
 * wide group in its member list; the probe user gets in through that group only.
 */
export async function pickProbeRoom(pg, s) {
  const r = await pg.query(
    `SELECT r.room, r.category FROM chat_rooms r
       JOIN chat_acl a ON a.service = r.service AND a.object_kind = 'room' AND a.object_name = r.room AND a.list = 'members' AND a.principal = $2
       JOIN chat_acl c ON c.service = r.service AND c.object_kind = 'category' AND c.object_name = r.category AND c.list = 'allowed' AND c.principal = $3
      WHERE r.service = $1 AND r.privacy = 'closed' AND r.type = 'normal' AND NOT r.disabled
      ORDER BY r.room LIMIT 1`,
    [s.service, `group:${s.targetGroup}`, `domain:${s.domain}`],
  );
  if (!r.rows[0]) throw new Error('no probe room in the seeded data');
  return { room: r.rows[0].room, category: r.rows[0].category, user: s.probeUser, group: s.targetGroup };
}
