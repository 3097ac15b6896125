// Every admin operation the faces offer. Adding an operation means adding a descriptor here.
import type { AnyAdminCommand } from './command.js';
import { userCommands } from './users.js';
import { roomCommands } from './rooms.js';

export const adminCommands: readonly AnyAdminCommand[] = [...userCommands, ...roomCommands];

export function findAdminCommand(id: string): AnyAdminCommand | undefined {
  return adminCommands.find((c) => c.id === id);
}
