// Finds a PostgreSQL for the tests: the one on 127.0.0.1:5432 when it answers,
// otherwise a throw-away cluster (Debian's postgresql binaries) on a private
// port and socket directory, removed again by stop().
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';

async function reachable(url) {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  try {
    await c.connect();
    await c.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => {});
  }
}

function pgBinDir() {
  const base = '/usr/lib/postgresql';
  if (!fs.existsSync(base)) return null;
  const versions = fs.readdirSync(base).filter((v) => fs.existsSync(path.join(base, v, 'bin', 'initdb')));
  versions.sort((a, b) => Number(b) - Number(a));
  return versions.length ? path.join(base, versions[0], 'bin') : null;
}

function run(cmd, args, asUser) {
  const full = asUser ? ['runuser', ['-u', asUser, '--', cmd, ...args]] : [cmd, args];
  const r = spawnSync(full[0], full[1], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} failed: ${r.stderr || r.stdout}`);
}

export async function ensurePostgres() {
  const given = process.env.NUCLEON_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  if (await reachable(given)) return { url: given, stop: async () => {} };

  const bin = pgBinDir();
  if (!bin) throw new Error('No PostgreSQL reachable and no Debian postgresql binaries to start one (apt-get install postgresql)');
  const asUser = process.getuid?.() === 0 ? 'postgres' : undefined; // initdb refuses to run as root
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nucleon-pg-'));
  if (asUser) spawnSync('chown', [asUser, dir]);
  const port = 55000 + Math.floor(Math.random() * 1000);
  run(path.join(bin, 'initdb'), ['-D', path.join(dir, 'data'), '-A', 'trust', '-U', 'postgres', '--no-sync'], asUser);
  run(path.join(bin, 'pg_ctl'), ['-D', path.join(dir, 'data'), '-w', '-l', path.join(dir, 'log'),
    '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300`, 'start'], asUser);
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  console.log(`# started a throw-away PostgreSQL on 127.0.0.1:${port}`);
  return {
    url,
    stop: async () => {
      try { run(path.join(bin, 'pg_ctl'), ['-D', path.join(dir, 'data'), '-m', 'fast', 'stop'], asUser); } catch {}
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
