// The Node flags every Perch process runs with (src/node-flags.ts) are written out in two places Node
// reads them from, npm start and the executable's #! line; these must say the same as the list.
import { execFileSync } from 'node:child_process';
import { chmodSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { NODE_FLAGS, withNodeFlags } from '../src/node-flags.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

describe('node flags', () => {
  it('npm start and npm run perch pass them to node', () => {
    const scripts = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
    for (const name of ['start', 'perch']) {
      expect(scripts[name], name).to.include(`node ${NODE_FLAGS.join(' ')} dist/src/cli.js`);
    }
  });

  it('the perch executable starts node with them (its #! line), and runs', () => {
    const cli = path.join(ROOT, 'dist', 'src', 'cli.js');
    expect(readFileSync(cli, 'utf8').split('\n')[0]).to.equal(`#!/usr/bin/env -S node ${NODE_FLAGS.join(' ')}`);
    // Through the #! line, as an installed `perch` runs (npm makes a bin executable): env splits the
    // flags off and node takes them.
    chmodSync(cli, 0o755);
    expect(execFileSync(cli, ['--help'], { encoding: 'utf8' })).to.match(/^Usage: perch /m);
  });

  it('withNodeFlags adds the missing ones and leaves an operator\'s own, given on the command line or in NODE_OPTIONS', () => {
    expect(withNodeFlags([], '')).to.deep.equal([...NODE_FLAGS]);
    expect(withNodeFlags(['--inspect'], '')).to.deep.equal(['--inspect', ...NODE_FLAGS]);
    expect(withNodeFlags(['--v8-pool-size=4'], '')).to.deep.equal(['--v8-pool-size=4']);
    expect(withNodeFlags(NODE_FLAGS, '')).to.deep.equal([...NODE_FLAGS]);
    // Set in NODE_OPTIONS, which the workers inherit: a command-line flag would override it.
    expect(withNodeFlags([], '--max-old-space-size=4096 --v8-pool-size=4')).to.deep.equal([]);
  });
});
