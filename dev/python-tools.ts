import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The SCIM 2.0 server the demo directory and the tests use. */
export const SCIM2_SERVER_PACKAGE = 'scim2-server==0.8.3';

/** Paths of the Python tools in the project's `.tools` virtualenv. */
export interface PythonTools {
  python: string;
  scim2Server: string;
}

async function executable(path: string): Promise<boolean> {
  return access(path, constants.X_OK).then(
    () => true,
    () => false,
  );
}

/**
 * Installs `pkg` from PyPI into the `tools` virtualenv, creating the virtualenv with `python` first
 * when it has no pip. Throws with pip's last lines and the commands to run by hand.
 */
async function pipInstall(tools: string, python: string, pkg: string, timeoutMs: number, log: (m: string) => void): Promise<void> {
  try {
    log(`Installing ${pkg} into ${tools} …`);
    if (!(await executable(join(tools, 'bin', 'pip')))) await run(python, ['-m', 'venv', tools], { timeout: 120_000 });
    await run(join(tools, 'bin', 'pip'), ['install', '--quiet', '--disable-pip-version-check', pkg], { timeout: timeoutMs });
  } catch (error) {
    const detail = (error as { stderr?: string }).stderr?.trim().split('\n').slice(-3).join('\n') || (error as Error).message;
    throw new Error(`could not install ${pkg} into ${tools}:\n${detail}\nInstall it by hand: python3 -m venv .tools && .tools/bin/pip install '${pkg}'`, { cause: error });
  }
}

/**
 * Makes sure `.tools` is a virtualenv with scim2-server installed (the demo directory imports it as a
 * library as well as running its CLI). Installs from PyPI when missing; throws with the pip error
 * and the command to run by hand otherwise.
 */
export async function ensureScimServer(projectRoot: string, python = 'python3', log: (m: string) => void = () => undefined): Promise<PythonTools> {
  const tools = resolve(projectRoot, '.tools');
  const venvPython = join(tools, 'bin', 'python');
  const scim2Server = join(tools, 'bin', 'scim2-server');
  const importable = async () =>
    (await executable(venvPython)) &&
    (await run(venvPython, ['-c', 'import scim2_server.testserver.cli'], { timeout: 60_000 }).then(
      () => true,
      () => false,
    ));
  if ((await executable(scim2Server)) && (await importable())) return { python: venvPython, scim2Server };
  await pipInstall(tools, python, SCIM2_SERVER_PACKAGE, 600_000, log);
  if (!(await importable())) throw new Error(`${SCIM2_SERVER_PACKAGE} was installed into ${tools} but does not import`);
  return { python: venvPython, scim2Server };
}

/** The AWS IAM endpoint the AWS playbooks are tested and demonstrated against. */
export const MOTO_PACKAGE = 'moto[server]==5.2.5';

/**
 * Makes sure `.tools` has moto's server (an AWS API on 127.0.0.1) and returns its path. Unlike
 * scim2-server it is optional for the embedded default: callers decide what a failure means.
 */
export async function ensureMotoServer(projectRoot: string, python = 'python3', log: (m: string) => void = () => undefined): Promise<string> {
  const tools = resolve(projectRoot, '.tools');
  const moto = join(tools, 'bin', 'moto_server');
  if (await executable(moto)) return moto;
  await pipInstall(tools, python, MOTO_PACKAGE, 900_000, log);
  if (!(await executable(moto))) throw new Error(`${MOTO_PACKAGE} was installed into ${tools} but ${moto} is missing`);
  return moto;
}
