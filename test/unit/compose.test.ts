// docker-compose.yml cannot run here (no Docker engine), so its shape is checked instead: the
// production topology is all there, and Cordon's services set only variables Cordon knows.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { KNOWN_ENV_VARS, PROJECT_ROOT } from '../../config/config.js';

interface Service {
  image?: string;
  build?: unknown;
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: unknown;
}

const compose = parse(await readFile(join(PROJECT_ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as { services: Record<string, Service> };
const services = compose.services;

describe('docker-compose.yml', () => {
  it('describes Temporal on PostgreSQL with its UI, and Cordon workers and API servers', () => {
    expect(Object.keys(services)).toEqual(expect.arrayContaining(['postgresql', 'temporal', 'temporal-ui', 'cordon-worker', 'cordon-api']));
    expect(services.temporal?.image).toMatch(/^temporalio\/server:/);
    expect(services.temporal?.environment?.DB).toBe('postgres12');
    expect(services.temporal?.environment?.POSTGRES_SEEDS).toBe('postgresql');
    expect(services['temporal-ui']?.environment?.TEMPORAL_ADDRESS).toBe('temporal:7233');
    expect(services['cordon-worker']?.command).toEqual(['node', '--import', 'tsx', 'workers/main.ts']);
    expect(services['cordon-api']?.command).toEqual(['node', '--import', 'tsx', 'server/main.ts']);
    expect(services['cordon-worker']?.depends_on?.temporal?.condition).toBe('service_healthy');
    expect(services['cordon-api']?.healthcheck).toBeDefined();
  });

  it('sets only environment variables that Cordon knows on its own services', () => {
    for (const name of ['cordon-worker', 'cordon-api']) {
      const variables = Object.keys(services[name]?.environment ?? {});
      expect(variables.length).toBeGreaterThan(5);
      expect(variables.filter((v) => !KNOWN_ENV_VARS.includes(v))).toEqual([]);
    }
  });

  it('publishes ports on the loopback interface only', () => {
    const published = Object.values(services).flatMap((s) => s.ports ?? []);
    expect(published.length).toBeGreaterThan(0);
    for (const port of published) expect(port).toMatch(/^127\.0\.0\.1:/);
  });

  it('builds Cordon from a glibc-based Node 20 image', async () => {
    const dockerfile = await readFile(join(PROJECT_ROOT, 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^FROM node:20-bookworm/m);
    expect(dockerfile).not.toMatch(/alpine/);
    expect(services['cordon-worker']?.build).toBe('.');
  });
});
