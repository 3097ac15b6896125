// Placeholder until the module is written.
import type { Module } from '../context.js';

export const rosterModule: Module = { name: 'roster', init() {} };
