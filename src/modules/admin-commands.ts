// Placeholder until the module is written.
import type { Module } from '../context.js';

export const adminCommandsModule: Module = { name: 'admin-commands', init() {} };
