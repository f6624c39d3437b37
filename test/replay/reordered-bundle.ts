// A workflow bundle built from a deliberately broken copy of the workflow code: two activity calls
// swapped. Replaying real histories against it must fail with a nondeterminism error; the replay
// suite and the `cordon replay` tests use it to show that they would catch such a change.
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { PROJECT_ROOT } from '../../config/config.js';

/** The folders the workflow code is bundled from: workflows/ and what it imports at run time. */
const WORKFLOW_SOURCES = ['workflows', 'domain'];

/**
 * The change: right after observing, plan before recording the `planning` status (a local activity
 * `recordEvents`), instead of after it. Every run that gets as far as planning is affected.
 */
const RECORD_THEN_PLAN = /^([ \t]*)await setStatus\('planning'\);\n([ \t]*)(plan = await local\.planRemediation\([^\n]*\);)$/m;

/** Swaps the two calls in the workflow's source; throws when the source no longer has them, so a test cannot pass without the change. */
export function reorderActivities(source: string): string {
  const matches = source.match(new RegExp(RECORD_THEN_PLAN.source, 'gm')) ?? [];
  if (matches.length !== 1) {
    throw new Error(
      `workflows/remediation.ts should call setStatus('planning') then local.planRemediation(...) on consecutive lines exactly once, found ${matches.length}: update RECORD_THEN_PLAN in test/replay/reordered-bundle.ts to swap two other activity calls`,
    );
  }
  const changed = source.replace(RECORD_THEN_PLAN, "$1$3\n$2await setStatus('planning');");
  if (changed === source) throw new Error('reordering the activity calls left workflows/remediation.ts unchanged');
  return changed;
}

/** Bundles a copy of the workflow code with `reorderActivities` applied to workflows/remediation.ts. */
export async function bundleReorderedWorkflows(): Promise<{ code: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'cordon-reordered-'));
  try {
    for (const folder of WORKFLOW_SOURCES) await cp(join(PROJECT_ROOT, folder), join(dir, folder), { recursive: true });
    const file = join(dir, 'workflows', 'remediation.ts');
    await writeFile(file, reorderActivities(await readFile(file, 'utf8')));
    const quiet = () => undefined;
    return await bundleWorkflowCode({
      workflowsPath: join(dir, 'workflows', 'index.ts'),
      logger: { trace: quiet, debug: quiet, info: quiet, warn: quiet, error: (message: string) => process.stderr.write(`${message}\n`), log: quiet },
      // The copy lives outside the project: its packages still come from the project's node_modules.
      webpackConfigHook: (config) => ({ ...config, resolve: { ...config.resolve, modules: [...(config.resolve?.modules ?? ['node_modules']), join(PROJECT_ROOT, 'node_modules')] } }),
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
