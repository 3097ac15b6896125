// The step bench/pchat-governed-hook.mjs adds after each room the load generator creates: the room's
// members become group:bench-users, through the Perch CLI on the running server (PERCH_GOVERNED_CLI).
import { execFileSync } from 'node:child_process';

const [node, ...cli] = JSON.parse(process.env.PERCH_GOVERNED_CLI ?? 'null') ?? [];

export async function governRoom(roomJid) {
  if (!node) throw new Error('PERCH_GOVERNED_CLI is not set');
  const local = roomJid.split('@')[0];
  try {
    execFileSync(node, [...cli, 'room', 'set', local, '--members', 'group:bench-users'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    throw new Error(`perch room set ${local} --members group:bench-users: ${(e.stderr || e.message).trim()}`);
  }
}
