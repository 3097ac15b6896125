// Placeholder until the module is written.
import type { Module } from '../context.js';

export const privateModule: Module = { name: 'private', init() {} };
