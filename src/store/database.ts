// Opens the store: Kysely over better-sqlite3 (the embedded default) or over
// PostgreSQL (scale-out). Both back-ends see the same schema: booleans are
// integers 0/1, lists and dicts are JSON text, timestamps are ISO-8601 text, so
// row types and service code are identical on either.
import fs from 'node:fs';
import path from 'node:path';
import { Kysely, PostgresAdapter, PostgresDialect, SqliteDialect, sql, type Transaction } from 'kysely';
import SqliteDatabase from 'better-sqlite3';
import pg from 'pg';
import type { Database } from './schema.ts';
import { migrateToLatest } from './migrate.ts';

export type Dialect = 'sqlite' | 'postgres';
export type Db = Kysely<Database>;
export type Tx = Transaction<Database>;

export interface Store {
  db: Db;
  dialect: Dialect;
  /** Runs fn in one transaction, retrying when PostgreSQL reports a serialization failure or deadlock. */
  transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export interface OpenOptions {
  /** `postgres://...` or `sqlite:PATH`, or a bare file path; default is `DATA_DIR/nucleon.db`. */
  url?: string;
  dataDir?: string;
  /** Apply migrations on open (default true). */
  migrate?: boolean;
}

export function describeUrl(url: string): string {
  // Never print a password that might be in a connection URL.
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
}

export async function openStore(opts: OpenOptions = {}): Promise<Store> {
  const dataDir = opts.dataDir ?? './data';
  const url = opts.url ?? `sqlite:${path.join(dataDir, 'nucleon.db')}`;
  const store = url.startsWith('postgres://') || url.startsWith('postgresql://')
    ? openPostgres(url)
    : openSqlite(url.replace(/^sqlite:/, ''));
  if (opts.migrate !== false) {
    try {
      await migrateToLatest(store.db);
    } catch (e) {
      await store.close();
      throw e;
    }
  }
  return store;
}

function openSqlite(file: string): Store {
  if (file !== ':memory:') fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true, mode: 0o700 });
  const conn = new SqliteDatabase(file);
  if (file !== ':memory:') fs.chmodSync(file, 0o600);
  conn.pragma('journal_mode = WAL');
  // NORMAL in WAL mode: a committed transaction survives a crash of the process;
  // only an OS crash or power loss can roll back the last few commits.
  conn.pragma('synchronous = NORMAL');
  conn.pragma('foreign_keys = ON');
  conn.pragma('busy_timeout = 5000');
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: withStatementCache(conn) }) });
  return {
    db,
    dialect: 'sqlite',
    // Kysely's SQLite driver runs one connection behind a mutex, so transactions
    // are serial and there is nothing to retry.
    transaction: (fn) => db.transaction().execute((tx) => runWithHooks(tx, fn)),
    close: () => db.destroy(),
  };
}

/** Distinct SQL texts kept prepared; IN lists of every length make the set open-ended. */
const STATEMENT_CACHE_SIZE = 500;

/**
 * Kysely's SQLite driver prepares every query it runs, and preparing costs
 * about as much as running a typical primary-key lookup. Queries come from a
 * small set of builders, so the same SQL text recurs: keep the prepared
 * statements (least recently used out). A statement still being iterated
 * (streamQuery) is busy and cannot be re-run, so that case gets a fresh one.
 */
function withStatementCache(conn: SqliteDatabase.Database): { close(): void; prepare(sql: string): SqliteDatabase.Statement } {
  const cache = new Map<string, SqliteDatabase.Statement>();
  return {
    close: () => conn.close(),
    prepare(sql: string) {
      const hit = cache.get(sql);
      if (hit && !hit.busy) {
        // Re-insert: Map order is the recency order.
        cache.delete(sql);
        cache.set(sql, hit);
        return hit;
      }
      const stmt = conn.prepare(sql);
      cache.set(sql, stmt);
      if (cache.size > STATEMENT_CACHE_SIZE) cache.delete(cache.keys().next().value!);
      return stmt;
    },
  };
}

const RETRYABLE_PG_CODES = new Set(['40001', '40P01']);

function openPostgres(url: string): Store {
  const pool = new pg.Pool({ connectionString: url, max: Number(process.env.NUCLEON_PG_POOL ?? 10) });
  // A dropped connection must not crash the server; the next query reconnects.
  pool.on('error', () => {});
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  return {
    db,
    dialect: 'postgres',
    async transaction(fn) {
      for (let attempt = 1; ; attempt++) {
        try {
          return await db.transaction().execute((tx) => runWithHooks(tx, fn));
        } catch (e) {
          const code = (e as { code?: string }).code;
          if (!code || !RETRYABLE_PG_CODES.has(code) || attempt >= 5) throw e;
          await new Promise((r) => setTimeout(r, 5 * attempt * Math.random()));
        }
      }
    },
    close: () => db.destroy(),
  };
}

// ---- before-commit hooks

const beforeCommit = new WeakMap<Tx, Array<() => Promise<void>>>();

async function runWithHooks<T>(tx: Tx, fn: (tx: Tx) => Promise<T>): Promise<T> {
  const hooks: Array<() => Promise<void>> = [];
  beforeCommit.set(tx, hooks);
  const result = await fn(tx);
  // Hooks may add hooks (rarely); run until none are left.
  while (hooks.length) await hooks.shift()!();
  return result;
}

/**
 * Runs work as the last statements of the transaction, just before COMMIT. Used
 * for anything that takes a short-lived global lock (the change feed counter),
 * so the lock is held for as little time as possible.
 */
export function onBeforeCommit(tx: Tx, hook: () => Promise<void>): void {
  const hooks = beforeCommit.get(tx);
  if (!hooks) throw new Error('onBeforeCommit outside Store.transaction');
  hooks.push(hook);
}

/** True when err is a unique-constraint violation on either back-end. */
export function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: string };
  return e?.code === '23505' || e?.code === 'SQLITE_CONSTRAINT_UNIQUE' || e?.code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}

/** Which back-end a connection or transaction talks to. */
export function dialectOf(db: Db | Tx): Dialect {
  return db.getExecutor().adapter instanceof PostgresAdapter ? 'postgres' : 'sqlite';
}

/**
 * Serializes transactions that take the same key, until they end (PostgreSQL
 * advisory lock; SQLite transactions are serial already). For invariants no row
 * can carry, such as "at most N ports in this project".
 */
export async function lockKey(tx: Tx, key: string): Promise<void> {
  if (dialectOf(tx) !== 'postgres') return;
  await sql`SELECT pg_advisory_xact_lock(hashtext(${key}))`.execute(tx);
}

/** Locks a row for the rest of the transaction on PostgreSQL; SQLite transactions are already serial. */
export async function lockRow(tx: Tx, dialect: Dialect, table: string, id: string): Promise<void> {
  if (dialect !== 'postgres') return;
  await sql`SELECT 1 FROM ${sql.table(table)} WHERE id = ${id} FOR UPDATE`.execute(tx);
}
