// Logs are pino JSON lines with secrets redacted, and Temporal's own logs (SDK and native core) go
// through the same logger.
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { NativeConnection, Worker } from '@temporalio/worker';
import { describe, expect, inject, it } from 'vitest';
import { createLogger } from '../../config/logger.js';
import { installTemporalRuntime } from '../../workers/runtime.js';

function capture(): { lines: () => Record<string, unknown>[]; stream: Writable } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(String(chunk));
      done();
    },
  });
  return { stream, lines: () => chunks.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe('logging', () => {
  it('redacts tokens, secrets, passwords and authorization headers', () => {
    const { stream, lines } = capture();
    const log = createLogger({ log: { level: 'info' } }, 'test', stream);
    log.info({ token: 'tok-1', identity: { token: 'tok-2', name: 'bob' }, secret: 's', password: 'p', req: { headers: { authorization: 'Bearer tok-3', 'x-cordon-signature': 't=1,v1=ab' } } }, 'hello');
    const text = JSON.stringify(lines());
    for (const leaked of ['tok-1', 'tok-2', 'tok-3', '"s"', '"p"', 'v1=ab']) expect(text).not.toContain(leaked);
    expect(lines()[0]).toMatchObject({ msg: 'hello', service: 'test', identity: { name: 'bob', token: '[redacted]' } });
  });

  it("sends Temporal's runtime and worker logs to pino", async () => {
    const { stream, lines } = capture();
    installTemporalRuntime(createLogger({ log: { level: 'info' } }, 'worker-test', stream));
    const connection = await NativeConnection.connect({ address: inject('temporalAddress') });
    const worker = await Worker.create({
      connection,
      taskQueue: `log-${randomBytes(4).toString('hex')}`,
      workflowBundle: { codePath: inject('workflowBundlePath') },
    });
    await worker.runUntil(new Promise((r) => setTimeout(r, 500)));
    await connection.close();
    const temporal = lines().filter((l) => l.component === 'temporal');
    expect(temporal.length).toBeGreaterThan(0);
    expect(temporal.some((l) => typeof l.msg === 'string' && /worker/i.test(l.msg))).toBe(true);
    expect(temporal.every((l) => l.service === 'worker-test')).toBe(true);
  });
});
