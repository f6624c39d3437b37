// `cordon audit …`: verify the live ledger, export it as JSON Lines, verify an exported file.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import { createExportVerifier, type ExportVerification } from '../domain/index.js';
import type { CordonApi } from './api-client.js';
import { instantArg } from './option-parsers.js';
import type { CliIo, EXIT } from './main.js';

/** What the audit commands need from the program that holds them. */
export interface AuditCommandContext {
  io: CliIo;
  /** Where a command sets its exit code. */
  result: { code: number };
  exit: typeof EXIT;
  client: () => Promise<{ api: CordonApi; json: boolean }>;
  /** Whether `--json` was given (for commands that need no API). */
  json: () => boolean;
  /** An error that the CLI reports as a usage error (exit 2). */
  usageError: (message: string) => Error;
}

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

function parseSeq(value: string): number {
  if (!/^\d{1,15}$/.test(value)) throw new InvalidArgumentError('must be a sequence number (a whole number, 0 or more).');
  return Number(value);
}

function describeVerdict(verdict: ExportVerification): string {
  if (!verdict.ok) {
    const { kind, line, seq, reason } = verdict.firstBad;
    return `export BROKEN at line ${line}${seq !== null ? ` (entry ${seq})` : ''}: ${kind}: ${reason}`;
  }
  const t = verdict.trailer;
  if (t.count === 0) return 'export intact: no entries';
  return `export intact: ${t.count} entries (${t.firstSeq}–${t.lastSeq}), chained from ${t.prevHash}, last hash ${t.lastHash}`;
}

/** Verifies an exported file as it is read; stops reading at the first problem. */
async function verifyFile(path: string, usageError: (message: string) => Error): Promise<ExportVerification> {
  const verifier = createExportVerifier({ sha256 });
  const stream = path === '-' ? process.stdin.setEncoding('utf8') : createReadStream(path, { encoding: 'utf8' });
  try {
    for await (const chunk of stream) {
      verifier.write(chunk as string);
      if (verifier.settled) break;
    }
  } catch (error) {
    throw usageError(`cannot read ${path}: ${(error as Error).message}`);
  } finally {
    if (path !== '-') stream.destroy();
  }
  return verifier.end();
}

/**
 * Streams the export into `out` through a temporary file next to it, renamed into place only once
 * the export's trailer has arrived; a broken-off export leaves no file. Throws what the API throws.
 */
async function exportToFile(pieces: AsyncIterable<string>, out: string): Promise<ExportVerification> {
  const temporary = join(dirname(out), `.${basename(out)}.${randomBytes(6).toString('hex')}.partial`);
  const verifier = createExportVerifier({ sha256 });
  const file = await open(temporary, 'wx', 0o600);
  let renamed = false;
  try {
    for await (const piece of pieces) {
      await file.write(piece);
      verifier.write(piece);
    }
    const verdict = verifier.end();
    if (!verdict.ok && verdict.firstBad.kind === 'truncated') {
      throw new Error(`the export is incomplete (${verdict.firstBad.reason}); nothing was written to ${out}`);
    }
    await file.sync();
    await file.close();
    await rename(temporary, out);
    renamed = true;
    return verdict;
  } finally {
    if (!renamed) {
      await file.close().catch(() => undefined);
      await rm(temporary, { force: true });
    }
  }
}

/** Registers `audit verify` and `audit export` on `program`. */
export function registerAuditCommands(program: Command, context: AuditCommandContext): void {
  const { io, result, exit } = context;
  const audit = program.command('audit').description('the audit ledger');

  audit
    .command('verify')
    .description("check the ledger's hash chain, or an exported file's; names the first tampered, missing or reordered entry")
    .option('--file <file>', 'verify this exported file (- for standard input) instead of the live ledger')
    .action(async (options: { file?: string }) => {
      if (options.file !== undefined) {
        const verdict = await verifyFile(options.file, context.usageError);
        if (context.json()) io.write(JSON.stringify(verdict, null, 2));
        else io.write(describeVerdict(verdict));
        if (!verdict.ok) result.code = exit.auditFailed;
        return;
      }
      const { api, json } = await context.client();
      const answer = await api.verifyAudit();
      if (json) io.write(JSON.stringify(answer, null, 2));
      else io.write(answer.ok ? `ledger intact: ${answer.entries} entries, head ${answer.headHash}` : `ledger BROKEN at entry ${answer.firstBad.seq}: ${answer.firstBad.reason}`);
      if (!answer.ok) result.code = exit.auditFailed;
    });

  audit
    .command('export')
    .description('write the ledger as JSON Lines, oldest first, ending with an export.end trailer (role operator or admin)')
    .option('--out <file>', 'write to this file, complete or not at all (default: standard output)')
    .option('--since <time>', 'from the first entry at or after this time: an ISO timestamp, or a duration ago (30m, 7d)', instantArg())
    .option('--until <time>', 'to the last entry before this time: an ISO timestamp, or a duration ago', instantArg())
    .option('--after <seq>', 'resume after this sequence number (the last seq of the previous export)', parseSeq)
    .action(async (options: { out?: string; since?: string; until?: string; after?: number }) => {
      const { api, json } = await context.client();
      const pieces = api.exportAudit({ since: options.since, until: options.until, after: options.after });
      if (options.out === undefined) {
        let partial = '';
        for await (const piece of pieces) {
          const lines = (partial + piece).split('\n');
          partial = lines.pop() ?? '';
          for (const line of lines) io.write(line);
        }
        if (partial !== '') io.write(partial);
        return;
      }
      const verdict = await exportToFile(pieces, options.out);
      if (json) io.write(JSON.stringify({ file: options.out, ...verdict }, null, 2));
      else if (verdict.ok) io.write(`wrote ${options.out}: ${describeVerdict(verdict).replace(/^export intact: /, '')}`);
      // The file is a faithful copy of what the ledger holds; that the ledger itself is broken is the news.
      else io.writeError(`wrote ${options.out}, but the ledger it copies is ${describeVerdict(verdict).replace(/^export /, '')}`);
      if (!verdict.ok) result.code = exit.auditFailed;
    });
}
