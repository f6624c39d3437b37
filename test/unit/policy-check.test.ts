import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EXIT, runCli } from '../../cli/main.js';
import { checkPolicyFiles } from '../../cli/policy-check.js';
import { DEFAULT_POLICY_DIR } from '../../policies/engine.js';
import { loadGuardrails } from '../../policies/guardrails.js';

const tempDirs: string[] = [];

afterAll(async () => {
  await Promise.all(tempDirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

/** A copy of the shipped policy directory; `files` replaces or adds files, `omit` leaves some out. */
async function policyCopy(files: Record<string, string> = {}, omit: string[] = []): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cordon-policy-check-'));
  tempDirs.push(dir);
  for (const name of ['schema.cedarschema', 'default.cedar', 'guardrails.yaml']) {
    if (!omit.includes(name)) await copyFile(join(DEFAULT_POLICY_DIR, name), join(dir, name));
  }
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  return dir;
}

async function cli(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(args, { write: (l) => out.push(l), writeError: (l) => err.push(l), env: {} });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

const POLICY_IDS = [
  'deny-break-glass',
  'privileged-needs-two-approvers',
  'operator-rolls-back',
  'privileged-rollback-needs-approval',
  'auto-deprovision-on-high-severity',
  'approve-deprovision-on-lower-severity',
  'auto-deactivate-credential',
  'auto-quarantine-on-high-severity',
  'approve-quarantine-on-lower-severity',
  'auto-detach-policy-on-high-severity',
  'approve-detach-policy-on-lower-severity',
  'privileged-entitlement-needs-approval',
];
const BROKEN_GUARDRAILS = 'version: 1\nbudgets:\n  - name: disables\n    limit: 3\n    window: 1 hour\n';

describe('checking policy files', () => {
  it('accepts the shipped policy directory with its policies and its guardrails file', async () => {
    const report = await checkPolicyFiles(DEFAULT_POLICY_DIR);
    const shipped = await loadGuardrails(join(DEFAULT_POLICY_DIR, 'guardrails.yaml'));
    expect(report.ok).toBe(true);
    if (!report.ok) return;
    expect(report.policies).toEqual(POLICY_IDS);
    expect(report.policySetHash).toMatch(/^[0-9a-f]{64}$/);
    expect(report.guardrailsFile).toBe(join(DEFAULT_POLICY_DIR, 'guardrails.yaml'));
    expect(report.guardrailsHash).toBe(shipped.hash);
  });

  it('refuses a broken guardrails file, naming its file and line', async () => {
    const dir = await policyCopy({ 'guardrails.yaml': BROKEN_GUARDRAILS });
    const report = await checkPolicyFiles(dir);
    expect(report.ok).toBe(false);
    if (report.ok) return;
    expect(report.line).toBe(5);
    expect(report.file).toMatch(/guardrails\.yaml$/);
    expect(report.error).toContain(`${report.file}:5:`);
    expect(report.error).toContain('budgets.0.window');
  });

  it('refuses a broken policy file, naming its file and line', async () => {
    const dir = await policyCopy({ 'default.cedar': '@id("half")\npermit (principal, action, resource\n' });
    const report = await checkPolicyFiles(dir);
    expect(report.ok).toBe(false);
    if (report.ok) return;
    expect(report.file).toMatch(/default\.cedar$/);
    expect(report.line).toBeGreaterThanOrEqual(1);
    expect(report.error.startsWith(`${report.file}:${report.line}:`)).toBe(true);
  });

  it('accepts a directory without a guardrails file and says there is none', async () => {
    const dir = await policyCopy({}, ['guardrails.yaml']);
    const report = await checkPolicyFiles(dir);
    expect(report).toMatchObject({ ok: true, policies: POLICY_IDS, guardrailsFile: null, guardrailsHash: null });
  });

  it('checks an explicitly named guardrails file, and refuses one that does not exist', async () => {
    const dir = await policyCopy({ 'strict.yaml': 'version: 1\nplaybooks:\n  deprovision-account:\n    autonomy: dry-run\n' }, ['guardrails.yaml']);
    const strict = await checkPolicyFiles(dir, join(dir, 'strict.yaml'));
    expect(strict).toMatchObject({ ok: true, guardrailsFile: join(dir, 'strict.yaml') });
    expect(strict.ok && strict.guardrailsHash).toMatch(/^[0-9a-f]{64}$/);

    const missing = await checkPolicyFiles(dir, join(dir, 'missing.yaml'));
    expect(missing.ok).toBe(false);
    expect(!missing.ok && missing.error).toContain('cannot read the guardrails file');
  });
});

describe('cordon policy check', () => {
  it('prints ok with the policy count and the guardrails file, and exits 0', async () => {
    const { code, out, err } = await cli(['policy', 'check', '--dir', DEFAULT_POLICY_DIR]);
    expect(code).toBe(EXIT.ok);
    expect(out).toContain(`ok: ${POLICY_IDS.length} policies`);
    expect(out).toContain('guardrails.yaml');
    expect(err).toBe('');
  });

  it('exits 6 and writes the file and line of a broken guardrails file to standard error', async () => {
    const dir = await policyCopy({ 'guardrails.yaml': BROKEN_GUARDRAILS });
    const { code, out, err } = await cli(['policy', 'check', '--dir', dir]);
    expect(code).toBe(EXIT.invalid);
    expect(EXIT.invalid).toBe(6);
    expect(err).toMatch(/^cordon: .*guardrails\.yaml:5:\d+: budgets\.0\.window: /);
    expect(out).toBe('');
  });

  it('exits 6 on a broken policy file', async () => {
    const dir = await policyCopy({ 'default.cedar': 'permit (principal, action, resource) when { context.nope };\n' });
    const { code, err } = await cli(['policy', 'check', '--dir', dir]);
    expect(code).toBe(EXIT.invalid);
    expect(err).toMatch(/^cordon: .*default\.cedar:\d+:\d+: /);
  });

  it('prints the report as JSON with --json', async () => {
    const ok = await cli(['--json', 'policy', 'check', '--dir', DEFAULT_POLICY_DIR]);
    expect(ok.code).toBe(EXIT.ok);
    expect(JSON.parse(ok.out)).toEqual(await checkPolicyFiles(DEFAULT_POLICY_DIR));

    const dir = await policyCopy({ 'guardrails.yaml': BROKEN_GUARDRAILS });
    const broken = await cli(['--json', 'policy', 'check', '--dir', dir]);
    expect(broken.code).toBe(EXIT.invalid);
    expect(JSON.parse(broken.out)).toMatchObject({ ok: false, line: 5 });
  });
});
