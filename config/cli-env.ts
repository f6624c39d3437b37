import { resolve } from 'node:path';

/** What the CLI takes from its environment (flags override each). */
export interface CliEnv {
  api: string;
  token: string | undefined;
  dataDir: string;
}

/** Reads CORDON_API, CORDON_TOKEN and CORDON_DATA_DIR. */
export function loadCliEnv(env: Record<string, string | undefined> = process.env, cwd = process.cwd()): CliEnv {
  return {
    api: env.CORDON_API || 'http://127.0.0.1:8080',
    token: env.CORDON_TOKEN || undefined,
    dataDir: resolve(cwd, env.CORDON_DATA_DIR || '.data'),
  };
}
