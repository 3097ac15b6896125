// The step bench/pchat-governed-hook.mjs adds after each room the load generator creates: the room's
// members become group:bench-users, through the Perch CLI on the running server (PERCH_GOVERNED_CLI).
import { execFile } from 'node:child_process';

const [node, ...cli] = JSON.parse(process.env.PERCH_GOVERNED_CLI ?? 'null') ?? [];

export function governRoom(roomJid) {
  if (!node) return Promise.reject(new Error('PERCH_GOVERNED_CLI is not set'));
  const local = roomJid.split('@')[0];
  return new Promise((resolve, reject) => {
    execFile(node, [...cli, 'room', 'set', local, '--members', 'group:bench-users'], { encoding: 'utf8' }, (err, _out, stderr) => {
      if (err) reject(new Error(`perch room set ${local} --members group:bench-users: ${(stderr || err.message).trim()}`));
      else resolve();
    });
  });
}
