// docker-compose.yml cannot run here (no Docker engine), so it is checked instead: valid against the
// Compose Specification's JSON schema, the production topology all there, secrets as files, and
// Cordon's services set only variables Cordon knows.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import draft07 from 'ajv/dist/refs/json-schema-draft-07.json' with { type: 'json' };
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { KNOWN_ENV_VARS, PROJECT_ROOT } from '../../config/config.js';

interface Service {
  image?: string;
  build?: unknown;
  command?: string[];
  entrypoint?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  secrets?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  deploy?: { replicas?: number };
  stop_grace_period?: string;
}
interface Compose {
  services: Record<string, Service>;
  secrets: Record<string, { file?: string }>;
}

const read = (path: string) => readFile(join(PROJECT_ROOT, path), 'utf8');
// Merge keys resolved, as Compose resolves them before it validates.
const compose = parse(await read('docker-compose.yml'), { merge: true }) as Compose;
const services = compose.services;
const CORDON_SERVICES = ['cordon-worker', 'cordon-api'] as const;
const SCHEMA_PATH = 'deploy/compose-spec/compose-spec.json';

/** The schema declares draft-07 by its https address; Ajv knows that draft by its http one. */
function composeValidator() {
  return read(SCHEMA_PATH).then((text) => {
    const ajv = new Ajv({ allErrors: true });
    ajv.addMetaSchema({ ...draft07, $id: 'https://json-schema.org/draft-07/schema' });
    return ajv.compile(JSON.parse(text) as object);
  });
}

/** A Compose duration such as `30s` or `1m30s`, in milliseconds. */
function durationMs(value: string): number {
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  const parts = [...value.matchAll(/(\d+)(ms|s|m|h)/g)];
  expect(parts.map((p) => p[0]).join('')).toBe(value);
  return parts.reduce((sum, [, n, unit]) => sum + Number(n) * units[unit!]!, 0);
}

describe('docker-compose.yml', () => {
  it('is valid against the Compose Specification schema', async () => {
    const validate = await composeValidator();
    const valid = validate(compose);
    expect(validate.errors ?? []).toEqual([]);
    expect(valid).toBe(true);
  });

  it('validates with a schema that refuses what Compose refuses', async () => {
    const validate = await composeValidator();
    expect(validate({ services: { api: { image: 'x', restart: ['always'] } } })).toBe(false);
    expect(validate({ services: { api: { image: 'x', depends_on: { db: { condition: 'service_ready' } } } } })).toBe(false);
    expect(validate({ services: { api: { image: 'x', helthcheck: {} } } })).toBe(false);
  });

  it('uses the Compose schema file as published, with its license note', async () => {
    const notice = await read('deploy/compose-spec/NOTICE');
    const digest = createHash('sha256').update(await readFile(join(PROJECT_ROOT, SCHEMA_PATH))).digest('hex');
    expect(notice).toContain(digest);
    expect(notice).toMatch(/Apache License, Version 2\.0/);
  });

  it('describes Temporal on PostgreSQL with its UI, and Cordon workers and API servers', () => {
    expect(Object.keys(services)).toEqual(expect.arrayContaining(['postgresql', 'temporal-admin-tools', 'temporal', 'temporal-create-namespace', 'temporal-ui', 'cordon-worker', 'cordon-api']));
    expect(services.temporal?.image).toMatch(/^temporalio\/server:/);
    expect(Object.values(services).map((s) => s.image ?? '')).not.toContainEqual(expect.stringContaining('auto-setup'));
    expect(services.temporal?.environment?.DB).toBe('postgres12');
    expect(services.temporal?.environment?.POSTGRES_SEEDS).toBe('postgresql');
    expect(services.temporal?.depends_on?.['temporal-admin-tools']?.condition).toBe('service_completed_successfully');
    expect(services['temporal-admin-tools']?.image).toMatch(/^temporalio\/admin-tools:/);
    expect(services['temporal-ui']?.environment?.TEMPORAL_ADDRESS).toBe('temporal:7233');
    expect(services['cordon-worker']?.command).toEqual(['node', '--import', 'tsx', 'workers/main.ts']);
    expect(services['cordon-api']?.command).toEqual(['node', '--import', 'tsx', 'server/main.ts']);
    for (const name of CORDON_SERVICES) {
      expect(services[name]?.depends_on?.temporal?.condition).toBe('service_healthy');
      expect(services[name]?.depends_on?.postgresql?.condition).toBe('service_healthy');
      expect(services[name]?.deploy?.replicas).toBeGreaterThanOrEqual(2);
    }
  });

  it('mounts only files and scripts that exist in the repository', () => {
    const binds = Object.values(services).flatMap((s) => s.volumes ?? []).filter((v) => v.startsWith('./'));
    expect(binds.length).toBeGreaterThan(0);
    for (const bind of binds) expect(existsSync(join(PROJECT_ROOT, bind.split(':')[0]!)), bind).toBe(true);
    for (const name of ['temporal-admin-tools', 'temporal-create-namespace']) {
      const script = services[name]?.command?.[0];
      expect(script).toMatch(/^\/scripts\//);
      expect(existsSync(join(PROJECT_ROOT, 'deploy/temporal', script!))).toBe(true);
    }
  });

  it('checks the API by /readyz and the worker by its pollers', () => {
    expect(services['cordon-api']?.healthcheck?.test.join(' ')).toContain('/readyz');
    const worker = services['cordon-worker']?.healthcheck?.test ?? [];
    expect(worker).toEqual(['CMD', 'node', '--import', 'tsx', 'workers/healthcheck.ts']);
    expect(existsSync(join(PROJECT_ROOT, 'workers/healthcheck.ts'))).toBe(true);
    for (const name of ['postgresql', 'temporal']) expect(services[name]?.healthcheck).toBeDefined();
  });

  it('stores the ledger in PostgreSQL and leaves the Cordon services stateless', () => {
    for (const name of CORDON_SERVICES) {
      expect(services[name]?.environment?.CORDON_STORE).toBe('postgres');
      expect(services[name]?.environment?.CORDON_POSTGRES_URL).toMatch(/^postgres:\/\/[^:@]+@postgresql:5432\//);
      expect(services[name]?.volumes ?? []).toEqual([]);
    }
  });

  it('passes secrets as files: each *_FILE variable names a secret mounted on that service', () => {
    for (const name of CORDON_SERVICES) {
      const service = services[name]!;
      const files = Object.entries(service.environment ?? {}).filter(([variable]) => variable.endsWith('_FILE'));
      expect(files.length).toBeGreaterThan(1);
      for (const [variable, path] of files) {
        const secret = /^\/run\/secrets\/([a-z0-9-]+)$/.exec(path)?.[1];
        expect(secret, `${name} ${variable}`).toBeDefined();
        expect(service.secrets, `${name} ${variable}`).toContain(secret);
      }
      for (const secret of service.secrets ?? []) expect(compose.secrets[secret]?.file).toMatch(/^\.\/secrets\//);
      expect(Object.keys(service.environment ?? {}).filter((v) => /PASSWORD$|TOKEN$|SECRET$/.test(v))).toEqual([]);
    }
  });

  it('stops each Cordon service only after its drain can finish', () => {
    for (const name of CORDON_SERVICES) {
      const grace = Number(services[name]?.environment?.CORDON_SHUTDOWN_GRACE_MS);
      expect(grace).toBeGreaterThan(0);
      expect(durationMs(services[name]?.stop_grace_period ?? '10s')).toBeGreaterThan(grace);
    }
  });

  it('sets only environment variables that Cordon knows on its own services', () => {
    for (const name of CORDON_SERVICES) {
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
});

describe('Dockerfile', () => {
  it('builds Cordon from a glibc-based Node 20 image, as a user other than root', async () => {
    const dockerfile = await read('Dockerfile');
    expect(dockerfile).toMatch(/^FROM node:20-bookworm/m);
    expect(dockerfile).not.toMatch(/alpine/);
    const users = [...dockerfile.matchAll(/^USER\s+(\S+)/gm)].map((m) => m[1]);
    expect(users.at(-1)).toBeDefined();
    expect(users.at(-1)).not.toMatch(/^(root|0)$/);
    expect(services['cordon-worker']?.build).toBe('.');
    expect(services['cordon-api']?.image).toBe(services['cordon-worker']?.image);
  });

  it('installs runtime dependencies only, which include what runs the TypeScript sources', async () => {
    const dockerfile = await read('Dockerfile');
    expect(dockerfile).toMatch(/npm ci --omit=dev/);
    const pkg = JSON.parse(await read('package.json')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };
    for (const runtime of ['tsx', '@temporalio/worker', '@temporalio/proto']) expect(Object.keys(pkg.dependencies)).toContain(runtime);
  });
});
