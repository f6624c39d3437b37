import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import type {} from 'vitest';
import type { TestProject } from 'vitest/node';
import { PROJECT_ROOT } from '../../config/config.js';
import { freePort } from '../../dev/processes.js';
import { ensureMotoServer, ensureScimServer } from '../../dev/python-tools.js';
import { provisionTemporalCli } from '../../dev/temporal-cli.js';
import { startTemporalDevServer } from '../../dev/temporal-server.js';
import { WORKFLOWS_PATH } from '../../workers/build.js';

declare module 'vitest' {
  export interface ProvidedContext {
    temporalAddress: string;
    temporalCliPath: string;
    workflowBundlePath: string;
    scim2ServerPath: string;
    toolsPython: string;
    motoServerPath: string;
    /** Debian's slapd (apt-get install slapd ldap-utils); the LDAP tests need it. */
    slapdPath: string;
  }
}

/**
 * Starts the real servers the whole test run shares: one Temporal dev server (in memory, headless)
 * and the workflow bundle, built once. Each test file starts its own scim2-server and ledger.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const log = (line: string) => process.stderr.write(`[setup] ${line}\n`);
  const cli = await provisionTemporalCli({ projectRoot: PROJECT_ROOT, log });
  const tools = await ensureScimServer(PROJECT_ROOT, 'python3', log);
  const moto = await ensureMotoServer(PROJECT_ROOT, 'python3', log);
  const slapd = ['/usr/sbin/slapd', '/usr/local/sbin/slapd'].find((p) => existsSync(p));
  if (!slapd) throw new Error('slapd is not installed: apt-get install -y slapd ldap-utils (the LDAP connector tests run a private slapd)');
  const dir = await mkdtemp(join(tmpdir(), 'cordon-test-'));
  const server = await startTemporalDevServer({ cliPath: cli.path, port: await freePort(), logFile: join(dir, 'temporal.log') });
  log(`Temporal dev server at ${server.address} (pid ${server.process.pid})`);
  const bundle = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: { trace() {}, debug() {}, info() {}, warn: log, error: log, log() {} } as never });
  const bundlePath = join(dir, 'workflow-bundle.js');
  await writeFile(bundlePath, bundle.code);

  project.provide('temporalAddress', server.address);
  project.provide('temporalCliPath', cli.path);
  project.provide('workflowBundlePath', bundlePath);
  project.provide('scim2ServerPath', tools.scim2Server);
  project.provide('toolsPython', tools.python);
  project.provide('motoServerPath', moto);
  project.provide('slapdPath', slapd);

  return async () => {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  };
}
