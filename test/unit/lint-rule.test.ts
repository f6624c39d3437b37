import { fileURLToPath } from 'node:url';
import { ESLint, type Linter } from 'eslint';
import { describe, it, expect } from 'vitest';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const eslint = new ESLint({ cwd: repoRoot });
const RULE = '@typescript-eslint/no-restricted-imports';

/** Lints `code` as if it lived at `relativePath` in the repository. */
async function lint(code: string, relativePath: string): Promise<Linter.LintMessage[]> {
  const [result] = await eslint.lintText(code, { filePath: `${repoRoot}${relativePath}` });
  const messages = result?.messages ?? [];
  // A parse error would hide every rule; make sure the snippet was actually linted.
  expect(messages.filter((m) => m.fatal === true)).toEqual([]);
  return messages;
}

const restricted = (messages: Linter.LintMessage[]) => messages.filter((m) => m.ruleId === RULE);

describe('the workflow import rule', () => {
  it.each([
    ['a Node built-in with the node: prefix', "import { readFile } from 'node:fs';\nexport const f = readFile;\n"],
    ['a Node built-in without the prefix', "import fs from 'fs';\nexport const f = fs;\n"],
    ['the Temporal client', "import { Client } from '@temporalio/client';\nexport const c = Client;\n"],
    ['better-sqlite3', "import Database from 'better-sqlite3';\nexport const d = Database;\n"],
    ['a value from an activity module', "import { createRemediationActivities } from '../activities/remediation.js';\nexport const a = createRemediationActivities;\n"],
  ])('refuses %s in workflow code', async (_name, code) => {
    const errors = restricted(await lint(code, 'workflows/bad-example.ts'));
    expect(errors).toHaveLength(1);
    expect(errors[0]?.severity).toBe(2);
  });

  it('refuses a value import from an activity module in a nested workflow folder', async () => {
    const code = "import { createRemediationActivities } from '../../activities/remediation.js';\nexport const a = createRemediationActivities;\n";
    expect(restricted(await lint(code, 'workflows/nested/bad-example.ts'))).toHaveLength(1);
  });

  it('refuses a deep import into an I/O package', async () => {
    const code = "import { Connection } from '@temporalio/client/lib/connection.js';\nexport const c = Connection;\n";
    expect(restricted(await lint(code, 'workflows/bad-example.ts'))).toHaveLength(1);
  });

  it('refuses a namespace import and a re-export of a Node built-in', async () => {
    expect(restricted(await lint("import * as fs from 'node:fs';\nexport const f = fs;\n", 'workflows/bad-example.ts'))).toHaveLength(1);
    expect(restricted(await lint("export { readFile } from 'node:fs';\n", 'workflows/bad-example.ts'))).toHaveLength(1);
  });

  it('refuses a dynamic import in workflow code', async () => {
    const messages = await lint("export const load = () => import('node:fs');\n", 'workflows/bad-example.ts');
    expect(messages.filter((m) => m.ruleId === 'no-restricted-syntax')).toHaveLength(1);
  });

  it('allows an inline type-only import of an I/O module', async () => {
    const code = "import { type Client } from '@temporalio/client';\nexport type C = Client;\n";
    expect(restricted(await lint(code, 'workflows/bad-example.ts'))).toEqual([]);
  });

  it('explains why an I/O import is refused', async () => {
    const [error] = restricted(await lint("import { Client } from '@temporalio/client';\nexport const c = Client;\n", 'workflows/bad-example.ts'));
    expect(error?.message).toMatch(/deterministic/);
  });

  it('allows activity types imported with import type', async () => {
    const code = "import type { RemediationActivities } from '../activities/remediation.js';\nexport type A = RemediationActivities;\n";
    expect(restricted(await lint(code, 'workflows/bad-example.ts'))).toEqual([]);
  });

  it('allows the workflow SDK', async () => {
    const code = "import { proxyActivities } from '@temporalio/workflow';\nexport const p = proxyActivities;\n";
    expect(restricted(await lint(code, 'workflows/bad-example.ts'))).toEqual([]);
  });

  it('does not apply outside workflow code', async () => {
    const code = "import { readFile } from 'node:fs';\nexport const f = readFile;\n";
    expect(restricted(await lint(code, 'activities/bad-example.ts'))).toEqual([]);
  });
});
