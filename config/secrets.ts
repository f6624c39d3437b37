import { readFile } from 'node:fs/promises';

/** Reads a secret from a file, trimmed; throws naming the file and the setting. */
export async function readSecretFile(path: string, setting: string): Promise<string> {
  let value: string;
  try {
    value = (await readFile(path, 'utf8')).trim();
  } catch (error) {
    throw new Error(`${setting}: cannot read ${path}: ${(error as Error).message}`, { cause: error });
  }
  if (value.length === 0) throw new Error(`${setting}: ${path} is empty`);
  return value;
}
