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
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import {
  forBackends, lpad, median, ms, pad, percentile, printMachine, printTargets, withBenchCloud, type Client,
} from './lib.ts';

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

/** What the benchmark must show on SQLite on a 2-core machine. */
const TARGETS = { createsPerSecond: 500, p99Ms: 50, listMs: 200 };

// ------------------------------------------------------------------ phases

interface CreatePhase { label: string; ports: number; seconds: number; perSecond: number; p50: number; p99: number }
interface Result { backend: string; phases: CreatePhase[]; listMs: number; listRuns: number[]; listed: number }

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
  return withBenchCloud(databaseUrl, CLIENTS, async ({ api, admin }) => {
    // Room for both phases and the warm-up (Neutron's default is 500 ports).
    await api.expect(200, 'PUT', `/v2.0/quotas/${admin.projectId}`, { quota: { port: -1, network: -1, subnet: -1 } });

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
  });
}

// ------------------------------------------------------------------ report

function printResult(r: Result): void {
  console.log(`\n${r.backend}`);
  console.log(`  ${pad('phase', 22)}${lpad('ports', 7)}${lpad('time', 10)}${lpad('ports/s', 10)}${lpad('p50', 11)}${lpad('p99', 11)}`);
  for (const p of r.phases) {
    console.log(`  ${pad(p.label, 22)}${lpad(String(p.ports), 7)}${lpad(`${p.seconds.toFixed(2)} s`, 10)}${lpad(p.perSecond.toFixed(0), 10)}${lpad(ms(p.p50), 11)}${lpad(ms(p.p99), 11)}`);
  }
  console.log(`  list ${r.listed} ports (GET /v2.0/ports?network_id=...): median ${ms(r.listMs)} of ${r.listRuns.length} [${r.listRuns.map((x) => x.toFixed(0)).join(', ')} ms]`);
}

function printApiTargets(r: Result, binding: boolean): void {
  const conc = r.phases[1];
  printTargets(binding ? '  targets:' : '  targets (set for SQLite; shown for reference):', [
    [`>= ${TARGETS.createsPerSecond} port creates/s with ${CLIENTS} clients`, `${conc.perSecond.toFixed(0)}/s`, conc.perSecond >= TARGETS.createsPerSecond],
    [`p99 create latency < ${TARGETS.p99Ms} ms with ${CLIENTS} clients`, ms(conc.p99), conc.p99 < TARGETS.p99Ms],
    [`list ${r.listed} ports < ${TARGETS.listMs} ms`, ms(r.listMs), r.listMs < TARGETS.listMs],
  ]);
}

async function main(): Promise<void> {
  printMachine(`Nucleon API benchmark: ${PORTS} ports per phase, ${CLIENTS} concurrent clients, keep-alive HTTP`);
  console.log('for scale, real Neutron: 4.1 creates/s (1 client), 5.3/s (8 clients), 506 ports listed in 0.7 s');
  await forBackends(args.backend!, async (backend, url) => {
    const r = await benchOne(backend, url);
    printResult(r);
    printApiTargets(r, backend === 'sqlite');
  });
}

await main();
