// What an operator sees when a worker or the API cannot start: the file, line and reason of a broken
// policy, or the misspelt setting, and a non-zero exit, before anything runs.
import { execFile } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { PROJECT_ROOT } from '../../config/config.js';
import { copyDefaultPolicies } from '../support/policy-files.js';

function run(entry: string, env: Record<string, string>): Promise<{ code: number; stderr: string }> {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('CORDON_')));
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, entry)], { cwd: PROJECT_ROOT, env: { ...inherited, ...env }, timeout: 60_000 }, (error, _stdout, stderr) =>
      resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stderr }),
    );
  });
}

describe('startup', () => {
  it('stops the worker on a broken policy file, naming the file, line and reason', async () => {
    const dir = await copyDefaultPolicies();
    await writeFile(join(dir, 'broken.cedar'), '// a team policy\n@id("typo")\npermit (principal, action, resource) when { resource.sponsor == "x" };\n');
    const data = await mkdtemp(join(tmpdir(), 'cordon-data-'));
    const { code, stderr } = await run('workers/main.ts', { CORDON_POLICY_DIR: dir, CORDON_DATA_DIR: data, TEMPORAL_ADDRESS: inject('temporalAddress') });
    expect(code).toBe(1);
    expect(stderr).toMatch(/broken\.cedar:3:\d+: .*sponsor/);
    expect(stderr).not.toMatch(/\n\s+at /); // a message for a person, not a stack trace
  });

  it('stops the worker on a broken guardrails file, naming the line and the reason', async () => {
    const dir = await copyDefaultPolicies();
    await writeFile(join(dir, 'guardrails.yaml'), 'version: 1\nbudgets:\n  - name: disables\n    limit: 10\n    window: 1 hour\n');
    const data = await mkdtemp(join(tmpdir(), 'cordon-data-'));
    const { code, stderr } = await run('workers/main.ts', { CORDON_POLICY_DIR: dir, CORDON_DATA_DIR: data, TEMPORAL_ADDRESS: inject('temporalAddress') });
    expect(code).toBe(1);
    expect(stderr).toMatch(/guardrails\.yaml:5:\d+: budgets\.0\.window: must be a duration/);
  });

  it('stops the API on a misspelt setting, naming it', async () => {
    const { code, stderr } = await run('server/main.ts', { CORDON_API_PROT: '8081' });
    expect(code).toBe(1);
    expect(stderr).toContain('CORDON_API_PROT: not a Cordon setting');
  });

  it('stops the API when the identities file is missing, naming it', async () => {
    const data = await mkdtemp(join(tmpdir(), 'cordon-data-'));
    const { code, stderr } = await run('server/main.ts', { CORDON_DATA_DIR: data });
    expect(code).toBe(1);
    expect(stderr).toContain(join(data, 'dev-credentials.json'));
  });
});
