// The CLI's behaviour that needs no running Cordon: identities, usage errors and exit codes.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EXIT, runCli } from '../../cli/main.js';
import { freePort } from '../../dev/processes.js';

async function cli(args: string[], env: Record<string, string> = {}, colour?: boolean) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(args, { write: (l) => out.push(l), writeError: (l) => err.push(l), env, ...(colour === undefined ? {} : { colour }) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('cordon CLI', () => {
  it('prints help and exits 0', async () => {
    const { code, out } = await cli(['--help']);
    expect(code).toBe(EXIT.ok);
    expect(out).toContain('alert');
    expect(out).toContain('approve');
  });

  it('exits 2 on an unknown command', async () => {
    expect((await cli(['deprovision-everyone'])).code).toBe(EXIT.usage);
  });

  it('exits 2 naming the known identities when --as names an unknown one', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'cordon-cli-'));
    await writeFile(join(dataDir, 'dev-credentials.json'), JSON.stringify({ bob: { token: 'b'.repeat(30), roles: ['approver'] } }));
    const { code, err } = await cli(['--as', 'mallory', 'runs', 'list'], { CORDON_DATA_DIR: dataDir });
    expect(code).toBe(EXIT.usage);
    expect(err).toContain('no identity "mallory"');
    expect(err).toContain('known: bob');
  });

  it('exits 2 when --as is used without the embedded default credentials', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'cordon-cli-'));
    const { code, err } = await cli(['--as', 'bob', 'runs', 'list'], { CORDON_DATA_DIR: dataDir });
    expect(code).toBe(EXIT.usage);
    expect(err).toContain(join(dataDir, 'dev-credentials.json'));
  });

  it('exits 2 when the alert file cannot be read', async () => {
    const { code, err } = await cli(['--token', 't', 'alert', 'send', '/nonexistent/alert.json']);
    expect(code).toBe(EXIT.usage);
    expect(err).toContain('cannot read /nonexistent/alert.json');
  });

  it('exits 7 when Cordon cannot be reached, and says so in JSON with --json', async () => {
    const api = `http://127.0.0.1:${await freePort()}`;
    const human = await cli(['--api', api, '--token', 't', 'runs', 'list']);
    expect(human.code).toBe(EXIT.unavailable);
    expect(human.err).toContain(`cannot reach the Cordon API at ${api}`);
    const json = await cli(['--api', api, '--token', 't', '--json', 'runs', 'list']);
    expect(json.code).toBe(EXIT.unavailable);
    expect(JSON.parse(json.out)).toMatchObject({ error: { status: 0, type: 'Unreachable' } });
  });

  it('writes ANSI colours only when told the output takes them', async () => {
    const state = { engaged: true, switches: [{ scope: { kind: 'global' }, engaged: true, actor: 'admin', at: '2026-11-28T00:00:00.000Z', reason: 'drill' }] };
    const server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(state)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const api = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const ansi = '\u001b[';
      const plain = await cli(['--api', api, '--token', 't', 'kill-switch', 'status'], { CI: 'true', FORCE_COLOR: '1' });
      expect(plain.code).toBe(EXIT.ok);
      expect(plain.out).toContain('global');
      expect(plain.out).toContain('ENGAGED');
      expect(plain.out).not.toContain(ansi);
      const coloured = await cli(['--api', api, '--token', 't', 'kill-switch', 'status'], {}, true);
      expect(coloured.code).toBe(EXIT.ok);
      expect(coloured.out).toContain(ansi);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
