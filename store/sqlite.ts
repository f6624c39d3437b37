import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';

/**
 * Opens (creating its directory) the SQLite file the embedded stores share, in WAL mode so that the
 * worker and the API can use it at once, with full syncs, a 10 s wait for a busy writer, and `schema`
 * applied.
 */
export function openSqliteFile(path: string, schema: string): Database.Database {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 10000');
  db.exec(schema);
  return db;
}
