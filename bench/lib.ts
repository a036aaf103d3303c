// Shared by the benchmarks: a keep-alive JSON client, percentiles, a whole
// Nucleon started in-process on a back-end, a throw-away PostgreSQL database,
// and the machine header every report starts with.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startNucleon, type Nucleon } from '../src/server.ts';
import type { AuthContext } from '../src/identity/context.ts';

export const PG_URL = process.env.NUCLEON_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';


/**
 * A JSON client on node:http with keep-alive: each of the concurrent clients
 * keeps its connection, as a real API consumer (nova, terraform) would.
 */
export class Client {
  private readonly agent: http.Agent;
  constructor(private readonly baseUrl: URL, private readonly token: string, sockets: number) {
    this.agent = new http.Agent({ keepAlive: true, maxSockets: sockets });
  }

  request(method: string, p: string, body?: unknown): Promise<{ status: number; body: any }> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = http.request({
        host: this.baseUrl.hostname, port: this.baseUrl.port, method, path: p, agent: this.agent,
        headers: {
          'X-Auth-Token': this.token, Accept: 'application/json',
          ...(payload ? { 'Content-Type': 'application/json', 'Content-Length': payload.length } : {}),
        },
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          try {
            resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : null });
          } catch (e) {
            reject(e);
          }
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(payload);
    });
  }

  async expect(status: number, method: string, p: string, body?: unknown): Promise<any> {
    const r = await this.request(method, p, body);
    if (r.status !== status) throw new Error(`${method} ${p}: expected ${status}, got ${r.status}: ${JSON.stringify(r.body)}`);
    return r.body;
  }

  close(): void {
    this.agent.destroy();
  }
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

export const median = (xs: number[]) => percentile([...xs].sort((a, b) => a - b), 50);

/** A throw-away database on the PostgreSQL server, or null (with the reason) when none answers. */
export async function pgDatabase(): Promise<{ url: string; drop: () => Promise<void> } | { skip: string }> {
  const admin = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 3000 });
  const name = `nucleon_bench_${crypto.randomBytes(6).toString('hex')}`;
  try {
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
  } catch (e) {
    return { skip: `PostgreSQL not reachable at ${PG_URL.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@')} (${(e as Error).message})` };
  } finally {
    await admin.end().catch(() => {});
  }
  const u = new URL(PG_URL);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: PG_URL });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

export const ms = (x: number) => `${x < 10 ? x.toFixed(2) : x.toFixed(1)} ms`;
export const pad = (s: string, n: number) => s.padEnd(n);
export const lpad = (s: string, n: number) => s.padStart(n);


export interface BenchCloud { nucleon: Nucleon; api: Client; admin: AuthContext; token: string }

/** A whole Nucleon in this process (SQLite in a temp dir, or the given database), with an admin client. */
export async function withBenchCloud<T>(databaseUrl: string | undefined, clients: number, fn: (cloud: BenchCloud) => Promise<T>): Promise<T> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'nucleon-bench-'));
  const adminPassword = crypto.randomBytes(12).toString('hex');
  let nucleon: Nucleon | undefined;
  let api: Client | undefined;
  try {
    nucleon = await startNucleon({
      dataDir, databaseUrl, host: '127.0.0.1', networkPort: 0, identityPort: 0,
      adminPassword, logger: false, writeClouds: false,
    });
    const token = await nucleon.identity.issueToken('admin', adminPassword, 'admin');
    const admin = await nucleon.identity.validateToken(token);
    if (!admin) throw new Error('the admin token does not validate');
    api = new Client(new URL(nucleon.endpoints.networkUrl), token, clients);
    return await fn({ nucleon, api, admin, token });
  } finally {
    api?.close();
    await nucleon?.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

/** Runs fn once per requested back-end: SQLite, then PostgreSQL on a throw-away database. */
export async function forBackends(which: string, fn: (backend: 'sqlite' | 'postgres', url: string | undefined) => Promise<void>): Promise<void> {
  for (const b of which === 'all' ? ['sqlite', 'postgres'] : [which]) {
    if (b === 'sqlite') {
      await fn('sqlite', undefined);
    } else if (b === 'postgres') {
      const db = await pgDatabase();
      if ('skip' in db) {
        console.log(`\npostgres\n  skipped: ${db.skip}`);
        continue;
      }
      try {
        await fn('postgres', db.url);
      } finally {
        await db.drop().catch((e) => console.error(`could not drop the bench database: ${(e as Error).message}`));
      }
    } else {
      throw new Error(`unknown back-end ${b} (sqlite, postgres or all)`);
    }
  }
}

/** What every report starts with: the machine, and how busy it was (other work moves every figure). */
export function printMachine(title: string): void {
  console.log(title);
  console.log(`node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model.trim()}), ${os.platform()} ${os.release()}`);
  console.log(`load average at start: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
}

/** A PASS/MISS line per target. */
export function printTargets(heading: string, rows: Array<[string, string, boolean]>): void {
  console.log(heading);
  for (const [what, got, ok] of rows) console.log(`    ${pad(what, 50)}${lpad(got, 10)}  ${ok ? 'PASS' : 'MISS'}`);
}
