// Placeholder until the module is written.
import type { Module } from '../context.js';

export const vcardModule: Module = { name: 'vcard', init() {} };
