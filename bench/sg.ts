// Security-group benchmark: rule creation over real HTTP (1 client, then 8),
// then 1,000 ports spread over the groups, then the time an agent needs to read
// the full effective rule set of all ports (loadSecurityPolicy, in-process, the
// read the agent makes on every full resync). See bench/README.md.
//
//   npm run bench:sg                       # SQLite, then PostgreSQL
//   npm run bench:sg -- --backend sqlite --groups 20
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { loadSecurityPolicy } from '../src/services/security-policy.ts';
import { forBackends, lpad, median, ms, pad, percentile, printMachine, printTargets, withBenchCloud, type Client } from './lib.ts';

const { values: args } = parseArgs({
  options: {
    backend: { type: 'string', default: 'all' },
    groups: { type: 'string', default: '100' },
    rules: { type: 'string', default: '50' },
    ports: { type: 'string', default: '1000' },
    clients: { type: 'string', default: '8' },
    reads: { type: 'string', default: '5' },
  },
});
const GROUPS = Number(args.groups);
const RULES = Number(args.rules);
const PORTS = Number(args.ports);
const CLIENTS = Number(args.clients);
const READS = Number(args.reads);

const TARGETS = { rulesPerSecond: 1000, readMs: 1000 };

interface Phase { label: string; rules: number; seconds: number; perSecond: number; p50: number; p99: number }

/**
 * The i-th rule of a group: distinct by port, alternating CIDR and remote-group
 * sources, so the read model has remote-group member sets to resolve.
 */
function ruleBody(groupId: string, i: number, remoteGroup: string) {
  const base = { security_group_id: groupId, direction: 'ingress', protocol: 'tcp', port_range_min: 1000 + i, port_range_max: 1000 + i };
  return { security_group_rule: i % 5 === 0 ? { ...base, remote_group_id: remoteGroup } : { ...base, remote_ip_prefix: `10.${i % 250}.0.0/16` } };
}

/** Creates RULES rules in each of the groups, from `clients` concurrent loops over one shared work list. */
async function createRules(api: Client, groups: string[], clients: number, label: string): Promise<Phase> {
  const work = groups.flatMap((g, gi) => Array.from({ length: RULES }, (_, i) => ruleBody(g, i, groups[(gi + 1) % groups.length])));
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: clients }, async () => {
    while (next < work.length) {
      const body = work[next++];
      const t0 = performance.now();
      await api.expect(201, 'POST', '/v2.0/security-group-rules', body);
      latencies.push(performance.now() - t0);
    }
  }));
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { label, rules: work.length, seconds, perSecond: work.length / seconds, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

async function benchOne(backend: 'sqlite' | 'postgres', databaseUrl: string | undefined): Promise<void> {
  await withBenchCloud(databaseUrl, CLIENTS, async ({ nucleon, api, admin }) => {
    await api.expect(200, 'PUT', `/v2.0/quotas/${admin.projectId}`, {
      quota: { security_group: -1, security_group_rule: -1, port: -1, network: -1, subnet: -1 },
    });
    const groups: string[] = [];
    for (let g = 0; g < GROUPS; g++) {
      groups.push((await api.expect(201, 'POST', '/v2.0/security-groups', { security_group: { name: `sg${g}` } })).security_group.id);
    }
    const half = Math.floor(GROUPS / 2);
    const sequential = await createRules(api, groups.slice(0, half), 1, 'create, 1 client');
    const concurrent = await createRules(api, groups.slice(half), CLIENTS, `create, ${CLIENTS} clients`);

    const net = (await api.expect(201, 'POST', '/v2.0/networks', { network: { name: 'sg-bench' } })).network.id;
    await api.expect(201, 'POST', '/v2.0/subnets', { subnet: { network_id: net, ip_version: 4, cidr: '10.200.0.0/16' } });
    let next = 0;
    await Promise.all(Array.from({ length: CLIENTS }, async () => {
      while (next < PORTS) {
        const i = next++;
        await api.expect(201, 'POST', '/v2.0/ports', { port: { network_id: net, security_groups: [groups[i % groups.length]] } });
      }
    }));

    const reads: number[] = [];
    let summary = '';
    for (let i = 0; i < READS; i++) {
      const t0 = performance.now();
      const policy = await loadSecurityPolicy(nucleon.store.db);
      reads.push(performance.now() - t0);
      const rules = [...policy.groups.values()].reduce((n, g) => n + g.rules.length, 0);
      const members = [...policy.remoteGroupMembers.values()].reduce((n, m) => n + m.length, 0);
      summary = `${policy.ports.length} ports, ${policy.groups.size} groups, ${rules} rules, ${policy.remoteGroupMembers.size} remote groups with ${members} member addresses`;
    }
    const readMs = median(reads);

    console.log(`\n${backend}`);
    console.log(`  ${pad('phase', 22)}${lpad('rules', 7)}${lpad('time', 10)}${lpad('rules/s', 10)}${lpad('p50', 11)}${lpad('p99', 11)}`);
    for (const p of [sequential, concurrent]) {
      console.log(`  ${pad(p.label, 22)}${lpad(String(p.rules), 7)}${lpad(`${p.seconds.toFixed(2)} s`, 10)}${lpad(p.perSecond.toFixed(0), 10)}${lpad(ms(p.p50), 11)}${lpad(ms(p.p99), 11)}`);
    }
    console.log(`  effective rule set of all ports (${summary}): median ${ms(readMs)} of ${reads.length} [${reads.map((x) => x.toFixed(0)).join(', ')} ms]`);
    printTargets(backend === 'sqlite' ? '  targets:' : '  targets (shown for reference on PostgreSQL):', [
      [`>= ${TARGETS.rulesPerSecond} rule creates/s with ${CLIENTS} clients`, `${concurrent.perSecond.toFixed(0)}/s`, concurrent.perSecond >= TARGETS.rulesPerSecond],
      [`full effective rule set read < ${TARGETS.readMs} ms`, ms(readMs), readMs < TARGETS.readMs],
    ]);
  });
}

printMachine(`Nucleon security-group benchmark: ${GROUPS} groups x ${RULES} rules, ${PORTS} ports, ${CLIENTS} concurrent clients`);
console.log('for scale, real Neutron: 12.9 rule creates/s from one client, 29/s from 8');
await forBackends(args.backend!, benchOne);
