// Compliance capture and export on the admin layer: the configuration, what waits and what ran, and a
// run now. Admins only. A change goes through changeComplianceConfig, so every node uses it.
import { rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { ComplianceConfig, ComplianceRun } from '../../storage/types.js';
import { changeComplianceConfig } from '../compliance/state.js';
import { complianceExporter, LeaseHeld, makeDirectory, type RunReport } from '../compliance/exporter.js';
import { AdminError, isAdminActor, type AdminCommand, type AdminContext, type AnyAdminCommand, type Rendered } from './command.js';
import { boolField, boolInput, onOff, optionalInput, table } from './chat-context.js';

export const MIN_INTERVAL_SECONDS = 60;
export const MAX_INTERVAL_SECONDS = 30 * 86_400;
const FORMATS = ['xml', 'actiance', 'jsonl'] as const;

/**
 * A run interval in seconds from what an administrator types: the original's TimeSpan (d.hh:mm:ss or
 * hh:mm:ss), plain seconds, or a number with a unit (90s, 15m, 1h, 30d). null when it is none of these.
 */
export function parseInterval(text: string): number | null {
  const t = text.trim().toLowerCase();
  const span = /^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})$/.exec(t);
  if (span) {
    const [, d, h, m, s] = span;
    if (Number(m) > 59 || Number(s) > 59 || Number(h) > 23) return null;
    return Number(d ?? 0) * 86_400 + Number(h) * 3600 + Number(m) * 60 + Number(s);
  }
  const unit = /^(\d+)\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?|d|days?)?$/.exec(t);
  if (!unit) return null;
  const n = Number(unit[1]);
  const u = unit[2]?.[0] ?? 's';
  return n * ({ s: 1, m: 60, h: 3600, d: 86_400 } as Record<string, number>)[u]!;
}

/** Seconds as the original's TimeSpan, d.hh:mm:ss. */
export function formatInterval(seconds: number): string {
  const d = Math.floor(seconds / 86_400);
  const two = (n: number): string => String(n).padStart(2, '0');
  const hms = `${two(Math.floor((seconds % 86_400) / 3600))}:${two(Math.floor((seconds % 3600) / 60))}:${two(seconds % 60)}`;
  return d > 0 ? `${d}.${hms}` : hms;
}

/** The directory files go to, as the exporter resolves it ('' is <dataDir>/compliance). */
function resolvedDirectory(ctx: AdminContext, dir: string): string {
  return dir === '' ? path.join(ctx.config.dataDir, 'compliance') : dir;
}

/** Refuses a directory that is not absolute, or where a file cannot be created (checked with a probe file). */
async function checkDirectory(ctx: AdminContext, dir: string): Promise<void> {
  if (dir !== '' && !path.isAbsolute(dir)) throw new AdminError(`the output directory must be an absolute path (or '' for <dataDir>/compliance), not ${dir}`);
  const target = resolvedDirectory(ctx, dir);
  const probe = path.join(target, `.perch-probe-${randomBytes(4).toString('hex')}`);
  try {
    await makeDirectory(target);
    await writeFile(probe, '');
    await rm(probe);
  } catch (e) {
    throw new AdminError(`the output directory ${target} is not writable: ${(e as Error).message}`);
  }
}

export interface ComplianceStatus {
  config: ComplianceConfig;
  /** Where files go, resolved ('' shown as the data directory's). */
  directory: string;
  waiting: number;
  lastRunAt: string | null;
  lease: { holder: string; expires: string } | null;
  runs: (Omit<ComplianceRun, 'startedAt' | 'finishedAt' | 'present'> & { startedAt: string; finishedAt: string | null })[];
}

async function status(ctx: AdminContext): Promise<ComplianceStatus> {
  const store = ctx.stores.compliance;
  const [config, waiting, lastRunAt, lease, runs] = await Promise.all([store.getConfig(), store.count(), store.lastRunAt(), store.leaseHolder(), store.runs(10)]);
  return {
    config, directory: resolvedDirectory(ctx, config.outputDirectory), waiting, lastRunAt: lastRunAt?.toISOString() ?? null,
    lease: lease ? { holder: lease.holder, expires: lease.expires.toISOString() } : null,
    runs: runs.map(({ present: _present, ...r }) => ({ ...r, startedAt: r.startedAt.toISOString(), finishedAt: r.finishedAt?.toISOString() ?? null })),
  };
}

function configLines(s: ComplianceStatus): string[] {
  const c = s.config;
  return [
    `enabled:              ${onOff(c.enabled)}`,
    `format:               ${c.format}`,
    `output-directory:     ${c.outputDirectory === '' ? `'' (${s.directory})` : c.outputDirectory}`,
    `run-interval:         ${formatInterval(c.runIntervalSeconds)} (${c.runIntervalSeconds} s)`,
    `one-room-per-file:    ${onOff(c.oneRoomPerFile)}`,
    `add-room-details:     ${onOff(c.addRoomDetails)}`,
    `add-user-details:     ${onOff(c.addUserDetails)}`,
    `attachments-manifest: ${onOff(c.attachmentsManifest)}`,
  ];
}

function statusShown(s: ComplianceStatus): Rendered {
  const runs = table(['RUN', 'NODE', 'EVENTS', 'STARTED', 'FINISHED', 'FILES'],
    s.runs.map((r) => [String(r.id), r.node, String(r.events), r.startedAt, r.finishedAt ?? '(unfinished)', r.files.join(' ')]));
  const lines = [
    ...configLines(s),
    `events waiting:       ${s.waiting}`,
    `last run:             ${s.lastRunAt ?? 'never'}`,
    `exporting now:        ${s.lease ? `${s.lease.holder} (lease until ${s.lease.expires})` : 'no'}`,
    '',
    ...(s.runs.length ? runs : ['no runs yet']),
  ];
  const c = s.config;
  return {
    notes: [],
    fields: [
      { var: 'enabled', type: 'boolean', label: 'Capture and export on', values: [c.enabled ? '1' : '0'] },
      { var: 'format', type: 'text-single', label: 'Format', values: [c.format] },
      { var: 'output-directory', type: 'text-single', label: 'Output directory', values: [s.directory] },
      { var: 'run-interval', type: 'text-single', label: 'Run interval (d.hh:mm:ss)', values: [formatInterval(c.runIntervalSeconds)] },
      { var: 'one-room-per-file', type: 'boolean', label: 'One file per room', values: [c.oneRoomPerFile ? '1' : '0'] },
      { var: 'add-room-details', type: 'boolean', label: 'Room details', values: [c.addRoomDetails ? '1' : '0'] },
      { var: 'add-user-details', type: 'boolean', label: 'User details', values: [c.addUserDetails ? '1' : '0'] },
      { var: 'attachments-manifest', type: 'boolean', label: 'Attachment manifest', values: [c.attachmentsManifest ? '1' : '0'] },
      { var: 'waiting', type: 'text-single', label: 'Events waiting', values: [String(s.waiting)] },
      { var: 'last-run', type: 'text-single', label: 'Last run', values: [s.lastRunAt ?? ''] },
      { var: 'runs', type: 'text-multi', label: 'Recent runs', values: s.runs.length ? runs : [] },
    ],
    lines,
  };
}

export const complianceGetCommand: AdminCommand<ComplianceStatus> = {
  id: 'compliance-get', title: 'Show the Compliance Settings',
  instructions: 'The capture and export configuration, events waiting for export, and the recent export runs.',
  fields: [],
  allowed: isAdminActor,
  run: (ctx) => status(ctx),
  render: statusShown,
};

export const complianceSetCommand: AdminCommand<ComplianceStatus & { changed: string[]; nodes: 'all' | 'database' }> = {
  id: 'compliance-set', title: 'Change the Compliance Settings',
  instructions: 'Changes only the settings given; an invalid value changes nothing.',
  fields: [
    boolField('enabled', 'Capture and export'),
    { name: 'format', type: 'list-single', label: 'Output format', options: FORMATS.map((value) => ({ value })) },
    { name: 'output-directory', type: 'text-multi', label: "Output directory (absolute; '' for <dataDir>/compliance)" },
    { name: 'run-interval', type: 'text-single', label: 'Time between runs, 1 minute to 30 days (d.hh:mm:ss, seconds, or 15m, 1h, 30d)' },
    boolField('one-room-per-file', 'One file per room'),
    boolField('add-room-details', 'Room details in the output'),
    boolField('add-user-details', 'User details in the output'),
    boolField('attachments-manifest', 'A manifest of file transfers beside each file'),
  ],
  allowed: isAdminActor,
  async run(ctx, input) {
    const store = ctx.stores.compliance;
    const config: ComplianceConfig = { ...(await store.getConfig()) };
    const changed: string[] = [];
    // Every value is checked before anything is stored.
    const enabled = boolInput(input, 'enabled');
    if (enabled !== undefined) { config.enabled = enabled; changed.push('enabled'); }
    const format = optionalInput(input, 'format')?.trim().toLowerCase();
    if (format !== undefined && format !== '') {
      if (!(FORMATS as readonly string[]).includes(format)) throw new AdminError(`the format is xml, actiance or jsonl, not ${format}`);
      config.format = format as ComplianceConfig['format'];
      changed.push('format');
    }
    const interval = optionalInput(input, 'run-interval');
    if (interval !== undefined && interval.trim() !== '') {
      const seconds = parseInterval(interval);
      if (seconds === null) throw new AdminError(`the run interval is d.hh:mm:ss, seconds, or a number with s, m, h or d, not ${interval}`);
      if (seconds < MIN_INTERVAL_SECONDS || seconds > MAX_INTERVAL_SECONDS) {
        throw new AdminError(`the run interval is 1 minute to 30 days (60 to 2592000 seconds), not ${seconds} seconds`);
      }
      config.runIntervalSeconds = seconds;
      changed.push('run-interval');
    }
    const dir = input['output-directory'];
    if (dir && dir.length > 0) {
      const value = dir.join('').trim();
      await checkDirectory(ctx, value);
      config.outputDirectory = value;
      changed.push('output-directory');
    }
    const flags: [string, 'oneRoomPerFile' | 'addRoomDetails' | 'addUserDetails' | 'attachmentsManifest'][] = [
      ['one-room-per-file', 'oneRoomPerFile'], ['add-room-details', 'addRoomDetails'], ['add-user-details', 'addUserDetails'], ['attachments-manifest', 'attachmentsManifest'],
    ];
    for (const [name, key] of flags) {
      const v = boolInput(input, name);
      if (v !== undefined) { config[key] = v; changed.push(name); }
    }
    // Turning export on checks the directory it will write to, even when that is not changing.
    if (enabled === true && !changed.includes('output-directory')) await checkDirectory(ctx, config.outputDirectory);
    if (changed.length === 0) throw new AdminError('nothing to change: give at least one setting (perch compliance set --help lists them)');
    // With a server: stored and broadcast to every node. Without one: stored; nodes read it when they start.
    if (ctx.server) await changeComplianceConfig(ctx.server, config);
    else await store.setConfig(config);
    return { ...(await status(ctx)), changed, nodes: ctx.server ? 'all' : 'database' };
  },
  render(out) {
    const shown = statusShown(out);
    return {
      ...shown,
      lines: configLines(out),
      notes: [{ type: 'info', text: `changed ${out.changed.join(', ')}${out.nodes === 'database' ? ' (in the database; servers started later use it)' : ''}` }],
    };
  },
};

export const complianceRunCommand: AdminCommand<{ runs: RunReport[] }> = {
  id: 'compliance-run', title: 'Run the Compliance Export Now',
  instructions: 'Exports every event captured so far, whatever the interval. When another node is exporting, waits for it (up to the time given).',
  fields: [{ name: 'wait', type: 'text-single', label: 'Seconds to wait for another node exporting now (default 30)' }],
  needsServer: true,
  allowed: isAdminActor,
  async run(ctx, input) {
    const raw = optionalInput(input, 'wait')?.trim();
    const wait = raw === undefined || raw === '' ? 30 : Number(raw);
    if (!Number.isFinite(wait) || wait < 0 || wait > 3600) throw new AdminError(`--wait is 0 to 3600 seconds, not ${raw}`);
    try {
      return { runs: await complianceExporter(ctx.server!).runNow(wait * 1000) };
    } catch (e) {
      if (e instanceof LeaseHeld) throw new AdminError(`${e.message}; try again when it is done`, 'conflict');
      throw new AdminError(`the export run failed: ${(e as Error).message}; its events stay for the next run`, 'service-unavailable');
    }
  },
  render(out) {
    if (out.runs.length === 0) return { notes: [{ type: 'info', text: 'nothing to export: no events waiting' }] };
    const lines = table(['RUN', 'EVENTS', 'FILES', 'MS'], out.runs.map((r) => [
      `${r.runId}${r.recovered ? ' (recovered)' : ''}`, String(r.events), r.files.join(' '), String(r.ms),
    ]));
    const events = out.runs.reduce((n, r) => n + r.events, 0);
    return {
      notes: [{ type: 'info', text: `exported ${events} events in ${out.runs.length} run${out.runs.length === 1 ? '' : 's'} (${out.runs.map((r) => r.runId).join(', ')})` }],
      fields: [
        { var: 'runs', type: 'text-single', label: 'Runs', values: [out.runs.map((r) => r.runId).join(' ')] },
        { var: 'events', type: 'text-single', label: 'Events exported', values: [String(events)] },
        { var: 'files', type: 'text-multi', label: 'Files', values: out.runs.flatMap((r) => r.files) },
      ],
      lines,
    };
  },
};

export const complianceCommands: AnyAdminCommand[] = [complianceGetCommand, complianceSetCommand, complianceRunCommand];
