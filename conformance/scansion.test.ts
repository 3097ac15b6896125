// Prosody's scansion scripts for the core IM features, replayed against a fresh server by the
// shared runner (one run, in order, as Prosody's own suite does); one test per script.
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer, REPO_ROOT, IN_CI, type RunningServer } from './harness.js';

const PYTHON = '/usr/bin/python3';
const RUNNER = path.resolve(REPO_ROOT, '..', 'shared', 'scansion', 'run.py');
const SCRIPTS = [
  'basic', 'basic_message', 'basic_roster', 'blocking', 'issue1121', 'keep_full_sub_req', 'mam_prefs_prep', 'presence_preapproval', 'vcard_temp',
  // Multi-user chat (XEP-0045); muc_nickname_robotface pins Prosody's nick policy and its stringprep mapping.
  'issue1224', 'issue505', 'issue978', 'issue978-multi', 'muc_affiliation_notify', 'muc_members_only_change',
  'muc_members_only_deregister', 'muc_nickname_change', 'muc_password', 'muc_subject_issue_667', 'muc_presence_probe',
  'muc_register', 'muc_show_offline', 'muc_whois_anyone_member', 'muc_mediated_invite',
  // Personal eventing (XEP-0163), the pubsub service (XEP-0060) and bookmarks on them.
  'empty_bookmarks', 'pep_nickname', 'pep_pubsub_max', 'pubsub_basic', 'pubsub_advanced',
  'pubsub_config', 'pubsub_createdelete', 'pubsub_max_items', 'pubsub_multi_items', 'pubsub_resend_on_sub',
  'pep_publish_subscribe', 'pubsub_preconditions',
];
// Scripts run from a copy with one thing relaxed: a value the standards leave to the server, which the
// script pins to Prosody's. Every other step runs as written. Each rewrite must match, so a changed
// script cannot pass by no longer saying what is relaxed.
const RELAXED: Record<string, { why: string; rewrites: [RegExp, string][] }> = {
  // RFC 6121 §2.6: a roster version is an opaque string the client must not interpret. Prosody's say
  // '1' for an empty roster and '1' again after the first change, which a caching client would
  // take for "nothing changed"; Perch's change with every change. Only received versions (digits) are relaxed.
  pep_publish_subscribe: { why: 'roster versions are opaque', rewrites: [[/ver='\d+'/g, "ver='{scansion:any}'"]] },
  // On prosody-wording.skip for its error text; the condition (precondition-not-met) is still checked.
  pubsub_preconditions: {
    why: 'error text is free',
    rewrites: [[/\s*<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Field does not match: access_model<\/text>/g, '']],
  },
};
// Every [Client] account of those scripts, with the scripts' password.
const ACCOUNTS = [
  'admin', 'user', 'juliet', 'romeo', 'blocker', 'blockee', 'pars-a', 'pars-b', 'preappove-a', 'preapprove-b',
  'user2', 'user3', '4e2pm7er', 'qnjm5253', 'iqizbcus',
  'pep-test-maxitems', 'pep-test-tqvqu_pv', 'pep-test-wjebo4kg', 'jqpcrbq', 'jqpcrbq2',
];

interface ScriptResult { name: string; status: 'PASS' | 'FAIL' | 'ERROR' | 'SKIP'; message: string; seconds: number }

describe('conformance: scansion scripts', function () {
  this.timeout(30000);
  let server: RunningServer | undefined;
  let results: ScriptResult[] = [];
  let runFailure: string | null = null;

  before(async function () {
    this.timeout(SCRIPTS.length * 60000 + 60000);
    for (const file of [PYTHON, RUNNER]) {
      if (!existsSync(file)) {
        const msg = `scansion: ${file} is missing`;
        if (IN_CI) throw new Error(msg);
        runFailure = msg;
        return;
      }
    }
    server = await startServer({
      users: Object.fromEntries(ACCOUNTS.map((u) => [u, 'password'])),
      admins: ['admin@localhost'],
      requireStartTls: true,
    });
    const dir = await mkdtemp(path.join(tmpdir(), 'perch-scansion-'));
    const jsonFile = path.join(dir, 'results.json');
    const scriptsDir = path.resolve(path.dirname(RUNNER), 'scripts');
    const scriptFiles: string[] = [];
    for (const name of SCRIPTS) {
      const original = path.join(scriptsDir, `${name}.scs`);
      const relaxed = RELAXED[name];
      if (!relaxed) { scriptFiles.push(original); continue; }
      let text = await readFile(original, 'utf8');
      for (const [pattern, replacement] of relaxed.rewrites) {
        const next = text.replace(pattern, replacement);
        if (next === text) throw new Error(`scansion: ${name} no longer contains ${pattern} (${relaxed.why})`);
        text = next;
      }
      const copy = path.join(dir, `${name}.scs`);
      await writeFile(copy, text);
      scriptFiles.push(copy);
    }
    try {
      const output = await new Promise<string>((resolve) => {
        execFile(PYTHON, [
          RUNNER, '--host', '127.0.0.1', '--port', String(server!.ports.c2s), '--tls', 'require',
          '--provision', 'adhoc', '--admin-jid', 'admin@localhost', '--admin-password', 'password',
          '--script-timeout', '60', '--json', jsonFile,
          // XEP-0045 fixes no order among the children of <x xmlns='…muc#user'/>.
          '--any-child-order', ...scriptFiles,
        ], { cwd: REPO_ROOT, timeout: SCRIPTS.length * 60000 + 30000, maxBuffer: 16 * 1024 * 1024 },
        // Exit status 1 only means some script failed; the JSON says which.
        (_err, stdout, stderr) => resolve(stdout + stderr));
      });
      try {
        results = JSON.parse(await readFile(jsonFile, 'utf8')) as ScriptResult[];
      } catch {
        runFailure = `the scansion runner produced no results:\n${output}`;
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  after(async () => {
    await server?.stop();
  });

  for (const script of SCRIPTS) {
    it(script, () => {
      if (runFailure) throw new Error(runFailure);
      const r = results.find((x) => x.name === script);
      expect(r, `no result for ${script}`).to.not.equal(undefined);
      if (r!.status !== 'PASS') throw new Error(`${r!.status} ${script}: ${r!.message}`);
    });
  }
});
