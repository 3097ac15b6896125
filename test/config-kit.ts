// Loading a config file written by a test: the configuration it gives, or the error it raises.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadConfig, type Config } from '../src/config.js';

export async function withConfig(yaml: string, env: NodeJS.ProcessEnv = {}): Promise<Config> {
  const dir = await mkdtemp(path.join(tmpdir(), 'perch-config-'));
  try {
    const file = path.join(dir, 'perch.yaml');
    await writeFile(file, yaml);
    return loadConfig(file, env);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The message of the error the file raises, or 'no error'. */
export async function errorOf(yaml: string): Promise<string> {
  try {
    await withConfig(yaml);
  } catch (e) {
    return (e as Error).message;
  }
  return 'no error';
}
