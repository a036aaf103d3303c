// API benchmark: port creates and port listing over real HTTP, against a whole
// Nucleon (identity + Networking API) started in this process by the same
// startNucleon that `nucleon serve` runs. See bench/README.md.
//
//   npm run bench:api                      # SQLite, then PostgreSQL
//   npm run bench:api -- --backend sqlite  # one back-end
//   npm run bench:api -- --ports 500       # a quicker run
//
// PostgreSQL: NUCLEON_BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432/postgres)
// names a server on which a throw-away database is created and dropped.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { startNucleon, type Nucleon } from '../src/server.ts';

const { values: args } = parseArgs({
  options: {
    backend: { type: 'string', default: 'all' },
    ports: { type: 'string', default: '2000' },
    clients: { type: 'string', default: '8' },
    lists: { type: 'string', default: '5' },
  },
});
const PORTS = Number(args.ports);
const CLIENTS = Number(args.clients);
const LISTS = Number(args.lists);
const PG_URL = process.env.NUCLEON_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** What the benchmark must show on SQLite on a 2-core machine. */
const TARGETS = { createsPerSecond: 500, p99Ms: 50, listMs: 200 };

// ------------------------------------------------------------------ client

/**
 * A JSON client on node:http with keep-alive: each of the concurrent clients
 * keeps its connection, as a real API consumer (nova, terraform) would.
 */
class Client {
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

// ------------------------------------------------------------------ phases

interface CreatePhase { label: string; ports: number; seconds: number; perSecond: number; p50: number; p99: number }
interface Result { backend: string; phases: CreatePhase[]; listMs: number; listRuns: number[]; listed: number }

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

const median = (xs: number[]) => percentile([...xs].sort((a, b) => a - b), 50);

async function networkWithSubnet(api: Client, name: string, cidr: string): Promise<string> {
  const net = await api.expect(201, 'POST', '/v2.0/networks', { network: { name } });
  await api.expect(201, 'POST', '/v2.0/subnets', { subnet: { network_id: net.network.id, cidr, ip_version: 4, name } });
  return net.network.id;
}

/** Creates `count` ports on the network from `clients` concurrent loops; every request's latency is kept. */
async function createPorts(api: Client, networkId: string, count: number, clients: number, label: string): Promise<CreatePhase> {
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const t0 = performance.now();
      await api.expect(201, 'POST', '/v2.0/ports', { port: { network_id: networkId, name: `p${i}` } });
      latencies.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: clients }, worker));
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { label, ports: count, seconds, perSecond: count / seconds, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

async function benchOne(backend: 'sqlite' | 'postgres', databaseUrl: string | undefined): Promise<Result> {
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
    const ctx = await nucleon.identity.validateToken(token);
    if (!ctx) throw new Error('the admin token does not validate');
    api = new Client(new URL(nucleon.endpoints.networkUrl), token, CLIENTS);

    // Room for both phases and the warm-up (Neutron's default is 500 ports).
    await api.expect(200, 'PUT', `/v2.0/quotas/${ctx.projectId}`, { quota: { port: -1, network: -1, subnet: -1 } });

    // Warm-up: JIT, statement caches and connection pools, not measured.
    const warm = await networkWithSubnet(api, 'bench-warmup', '10.0.0.0/16');
    await createPorts(api, warm, 100, CLIENTS, 'warm-up');

    const net1 = await networkWithSubnet(api, 'bench-sequential', '10.1.0.0/16');
    const sequential = await createPorts(api, net1, PORTS, 1, 'create, 1 client');
    const net2 = await networkWithSubnet(api, 'bench-concurrent', '10.2.0.0/16');
    const concurrent = await createPorts(api, net2, PORTS, CLIENTS, `create, ${CLIENTS} clients`);

    const listRuns: number[] = [];
    let listed = 0;
    for (let i = 0; i < LISTS; i++) {
      const t0 = performance.now();
      const body = await api.expect(200, 'GET', `/v2.0/ports?network_id=${net1}`);
      listRuns.push(performance.now() - t0);
      listed = body.ports.length;
    }
    if (listed !== PORTS) throw new Error(`listing returned ${listed} ports, expected ${PORTS}`);
    return { backend, phases: [sequential, concurrent], listMs: median(listRuns), listRuns, listed };
  } finally {
    api?.close();
    await nucleon?.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

/** A throw-away database on the PostgreSQL server, or null (with the reason) when none answers. */
async function pgDatabase(): Promise<{ url: string; drop: () => Promise<void> } | { skip: string }> {
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

// ------------------------------------------------------------------ report

const ms = (x: number) => `${x < 10 ? x.toFixed(2) : x.toFixed(1)} ms`;
const pad = (s: string, n: number) => s.padEnd(n);
const lpad = (s: string, n: number) => s.padStart(n);

function printResult(r: Result): void {
  console.log(`\n${r.backend}`);
  console.log(`  ${pad('phase', 22)}${lpad('ports', 7)}${lpad('time', 10)}${lpad('ports/s', 10)}${lpad('p50', 11)}${lpad('p99', 11)}`);
  for (const p of r.phases) {
    console.log(`  ${pad(p.label, 22)}${lpad(String(p.ports), 7)}${lpad(`${p.seconds.toFixed(2)} s`, 10)}${lpad(p.perSecond.toFixed(0), 10)}${lpad(ms(p.p50), 11)}${lpad(ms(p.p99), 11)}`);
  }
  console.log(`  list ${r.listed} ports (GET /v2.0/ports?network_id=...): median ${ms(r.listMs)} of ${r.listRuns.length} [${r.listRuns.map((x) => x.toFixed(0)).join(', ')} ms]`);
}

function printTargets(r: Result, binding: boolean): void {
  const conc = r.phases[1];
  const rows: Array<[string, string, boolean]> = [
    [`>= ${TARGETS.createsPerSecond} port creates/s with ${CLIENTS} clients`, `${conc.perSecond.toFixed(0)}/s`, conc.perSecond >= TARGETS.createsPerSecond],
    [`p99 create latency < ${TARGETS.p99Ms} ms with ${CLIENTS} clients`, ms(conc.p99), conc.p99 < TARGETS.p99Ms],
    [`list ${r.listed} ports < ${TARGETS.listMs} ms`, ms(r.listMs), r.listMs < TARGETS.listMs],
  ];
  console.log(binding ? '  targets:' : '  targets (set for SQLite; shown for reference):');
  for (const [what, got, ok] of rows) console.log(`    ${pad(what, 46)}${lpad(got, 10)}  ${ok ? 'PASS' : 'MISS'}`);
}

async function main(): Promise<void> {
  const which = args.backend === 'all' ? ['sqlite', 'postgres'] : [args.backend];
  console.log(`Nucleon API benchmark: ${PORTS} ports per phase, ${CLIENTS} concurrent clients, keep-alive HTTP`);
  console.log(`node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model.trim()}), ${os.platform()} ${os.release()}`);
  // Other work on the machine moves every figure; say how busy it was.
  console.log(`load average at start: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  console.log('for scale, real Neutron: 4.1 creates/s (1 client), 5.3/s (8 clients), 506 ports listed in 0.7 s');
  for (const b of which) {
    if (b === 'sqlite') {
      const r = await benchOne('sqlite', undefined);
      printResult(r);
      printTargets(r, true);
    } else if (b === 'postgres') {
      const db = await pgDatabase();
      if ('skip' in db) {
        console.log(`\npostgres\n  skipped: ${db.skip}`);
        continue;
      }
      try {
        const r = await benchOne('postgres', db.url);
        printResult(r);
        printTargets(r, false);
      } finally {
        await db.drop().catch((e) => console.error(`could not drop the bench database: ${(e as Error).message}`));
      }
    } else {
      throw new Error(`unknown back-end ${b} (sqlite, postgres or all)`);
    }
  }
}

await main();
