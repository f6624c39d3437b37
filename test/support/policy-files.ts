// Policy and guardrail files for workers that need other settings than the defaults.
import { cp, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_POLICY_DIR } from '../../policies/engine.js';
import { loadGuardrails, type Guardrails } from '../../policies/guardrails.js';

/** A copy of the default policy directory (policy files, schema, guardrails) with `default.cedar` rewritten by `edit`. */
export async function copyDefaultPolicies(edit: (cedar: string) => string = (cedar) => cedar): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cordon-policies-'));
  await cp(DEFAULT_POLICY_DIR, dir, { recursive: true, filter: (src) => !src.endsWith('.ts') });
  const file = join(dir, 'default.cedar');
  await writeFile(file, edit(await readFile(file, 'utf8')));
  return dir;
}

/** Guardrails loaded from `yaml`, written to a file of its own as a deployment would. */
export async function guardrailsFrom(yaml: string): Promise<Guardrails> {
  const file = join(await mkdtemp(join(tmpdir(), 'cordon-guardrails-')), 'guardrails.yaml');
  await writeFile(file, yaml);
  return loadGuardrails(file);
}
