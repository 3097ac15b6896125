// Placeholder until the module is written.
import type { Module } from '../context.js';

export const pingModule: Module = { name: 'ping', init() {} };
