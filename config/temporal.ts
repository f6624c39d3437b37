import { Client, Connection } from '@temporalio/client';
import { cordonSearchAttributes } from '../workflows/search-attributes.js';
import type { Config } from './config.js';

/** Connects a Temporal client for the configured namespace. */
export async function connectTemporalClient(config: Pick<Config, 'temporal'>): Promise<Client> {
  const connection = await Connection.connect({ address: config.temporal.address });
  return new Client({ connection, namespace: config.temporal.namespace });
}

const KIND_TO_PROTO = {
  KEYWORD: 2,
  KEYWORD_LIST: 7,
} as const;

/**
 * Registers Cordon's search attributes on the namespace; attributes that already exist are left
 * alone. Run at worker start, so a fresh cluster needs no manual step.
 */
export async function ensureSearchAttributes(connection: Connection, namespace: string): Promise<void> {
  const existing = await connection.operatorService.listSearchAttributes({ namespace });
  const known = new Set(Object.keys(existing.customAttributes ?? {}));
  const missing = cordonSearchAttributes.filter((key) => !known.has(key.name));
  if (missing.length === 0) return;
  await connection.operatorService.addSearchAttributes({
    namespace,
    searchAttributes: Object.fromEntries(missing.map((key) => [key.name, KIND_TO_PROTO[key.type as keyof typeof KIND_TO_PROTO]])),
  });
}
