// Placeholder until the module is written.
import type { Module } from '../context.js';

export const registerModule: Module = { name: 'register', init() {} };
