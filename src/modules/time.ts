// Placeholder until the module is written.
import type { Module } from '../context.js';

export const timeModule: Module = { name: 'time', init() {} };
