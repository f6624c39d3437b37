// Entry point of `npx cordon`.
import { runCli } from './main.js';

// `cordon runs show … | head`: the reader went away; stop quietly, as other command-line tools do.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw error;
  });
}

/** Colours for a terminal only: never into a pipe or file, never with NO_COLOR; FORCE_COLOR asks for them anyway. */
function wantsColour(env: NodeJS.ProcessEnv): boolean {
  if (env.NO_COLOR) return false;
  if (env.FORCE_COLOR !== undefined) return env.FORCE_COLOR !== '0' && env.FORCE_COLOR !== 'false';
  return process.stdout.isTTY && env.TERM !== 'dumb';
}

const code = await runCli(process.argv.slice(2), {
  write: (line) => process.stdout.write(`${line}\n`),
  writeError: (line) => process.stderr.write(`${line}\n`),
  colour: wantsColour(process.env),
});
process.exitCode = code;
