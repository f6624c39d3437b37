// `cordon policy check`: validates a policy directory and its guardrails file locally, the way the
// worker does at startup, for the CI of a team's own policy repository.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadPolicyEngine, PolicyLoadError } from '../policies/engine.js';
import { loadGuardrails } from '../policies/guardrails.js';

/** What the check found. */
export type PolicyCheckReport =
  | { ok: true; policies: readonly string[]; policySetHash: string; guardrailsFile: string | null; guardrailsHash: string | null }
  | { ok: false; error: string; file: string | null; line: number | null };

/** Loads the policies of `dir` and the guardrails file (default `<dir>/guardrails.yaml`, if present). */
export async function checkPolicyFiles(dir: string, guardrailsFile?: string): Promise<PolicyCheckReport> {
  try {
    const engine = await loadPolicyEngine(resolve(dir));
    const file = guardrailsFile ?? join(dir, 'guardrails.yaml');
    const present = guardrailsFile !== undefined || existsSync(file);
    const guardrails = present ? await loadGuardrails(resolve(file)) : undefined;
    return { ok: true, policies: engine.policyIds, policySetHash: engine.policySetHash, guardrailsFile: present ? file : null, guardrailsHash: guardrails?.hash ?? null };
  } catch (error) {
    if (error instanceof PolicyLoadError) return { ok: false, error: error.message, file: error.file, line: error.line };
    return { ok: false, error: (error as Error).message, file: null, line: null };
  }
}
