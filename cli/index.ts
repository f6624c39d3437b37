// Entry point of `npx cordon`.
import { runCli } from './main.js';

const code = await runCli(process.argv.slice(2), {
  write: (line) => process.stdout.write(`${line}\n`),
  writeError: (line) => process.stderr.write(`${line}\n`),
});
process.exitCode = code;
