// Runs one suite against every store back-end (SQLite and PostgreSQL), the way
// Kysely runs one conformance suite against each dialect.
//
// PostgreSQL comes from NUCLEON_TEST_PG_URL (scripts/run-tests.mjs sets it, starting
// a throw-away cluster when none is reachable) or 127.0.0.1:5432. Each store gets
// a database of its own, dropped when the suite ends.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import pg from 'pg';
import { after } from 'node:test';
import { openStore, type Store } from '../../src/store/database.ts';

export type BackendName = 'sqlite' | 'postgres';
export interface Backend {
  name: BackendName;
  /** A fresh, migrated, empty store; closed and removed when the test file ends. */
  openStore(): Promise<Store>;
}

export const PG_ADMIN_URL = process.env.NUCLEON_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

export async function freshDatabaseUrl(kind: BackendName): Promise<{ url: string; drop: () => Promise<void> }> {
  if (kind === 'sqlite') {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nucleon-t-'));
    return { url: `sqlite:${path.join(dir, 'nucleon.db')}`, drop: async () => fs.rmSync(dir, { recursive: true, force: true }) };
  }
  const name = `nucleon_t_${crypto.randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const u = new URL(PG_ADMIN_URL);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: PG_ADMIN_URL });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

function backend(name: BackendName): Backend {
  return {
    name,
    async openStore() {
      const { url, drop } = await freshDatabaseUrl(name);
      const store = await openStore({ url });
      cleanups.push(async () => { await store.close(); await drop(); });
      return store;
    },
  };
}

export const BACKENDS: Backend[] = [backend('sqlite'), backend('postgres')];

/** Declares the suite once per back-end; fn typically wraps a `describe`. */
export function forEachBackend(fn: (backend: Backend) => void): void {
  for (const b of BACKENDS) fn(b);
}
