// Placeholder until the module is written.
import type { Module } from '../context.js';

export const adhocModule: Module = { name: 'adhoc', init() {} };
