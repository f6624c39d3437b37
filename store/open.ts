import type { Config } from '../config/config.js';
import { readSecretFile } from '../config/secrets.js';
import { openSqliteGuardrailState, type GuardrailState } from './guardrail-state.js';
import { openSqliteLedger, type Ledger } from './ledger.js';
import { openPostgresGuardrailState } from './postgres-guardrail-state.js';
import { openPostgresLedger } from './postgres-ledger.js';

/** The ledger and guardrail state a process uses, closed together. */
export interface Stores {
  ledger: Ledger;
  guardrailState: GuardrailState;
  close(): Promise<void>;
}

/**
 * Opens the ledger and guardrail state that config names: the SQLite file (`CORDON_STORE=sqlite`,
 * the default) or PostgreSQL (`CORDON_STORE=postgres`), creating their tables when missing. Throws
 * when the password file cannot be read or the database cannot be reached.
 */
export async function openStores(config: Pick<Config, 'ledger'>): Promise<Stores> {
  const { ledger: settings } = config;
  if (settings.store === 'sqlite') {
    const ledger = openSqliteLedger({ path: settings.path });
    const guardrailState = openSqliteGuardrailState({ path: settings.path });
    return { ledger, guardrailState, close: closeBoth(ledger, guardrailState) };
  }
  if (!settings.postgres) throw new Error('CORDON_POSTGRES_URL: required when CORDON_STORE is postgres');
  const { url, passwordFile } = settings.postgres;
  const password = passwordFile ? await readSecretFile(passwordFile, 'CORDON_POSTGRES_PASSWORD_FILE') : undefined;
  const ledger = await openPostgresLedger({ url, password });
  const guardrailState = await openPostgresGuardrailState({ url, password }).catch(async (error: unknown) => {
    await ledger.close();
    throw error;
  });
  return { ledger, guardrailState, close: closeBoth(ledger, guardrailState) };
}

function closeBoth(ledger: Ledger, guardrailState: GuardrailState): () => Promise<void> {
  return async () => {
    await Promise.allSettled([ledger.close(), guardrailState.close()]).then((results) => {
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
    });
  };
}
