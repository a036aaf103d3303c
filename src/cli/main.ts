// The `nucleon` command.
import { Command, InvalidArgumentError } from 'commander';
import { createRequire } from 'node:module';
import { describeUrl, openStore } from '../store/database.ts';
import { migrateToLatest } from '../store/migrate.ts';

const pkg = createRequire(import.meta.url)('../../package.json') as { version: string };

const port = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('not a TCP port');
  return n;
};

const collect = (v: string, prev: string[] = []) => [...prev, v];
const seconds = (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('not a positive number of seconds');
  return n;
};

/** The agent's flags, shared by `nucleon agent` and `nucleon serve` (in-process agent). */
function agentFlags(cmd: Command, hostFlag: '--host' | '--agent-host'): Command {
  return cmd
    .option(`${hostFlag} <name>`, 'this host, as in binding:host_id and /v2.0/agents (default: the machine\'s hostname)')
    .option('--host-namespace <ns>', 'a network namespace that acts as this host (several hosts on one machine)')
    .option('--bridge-mapping <physnet:bridge>', 'flat networks on physnet use this existing bridge (repeatable)', collect)
    .option('--vlan-interface <physnet:if>', 'VLAN networks on physnet go through this uplink (repeatable)', collect)
    .option('--underlay-ip <ip>', 'address VXLAN tunnels leave from (none: VXLAN networks stay on this host)')
    .option('--underlay-interface <if>', 'interface that holds the underlay address')
    .option('--network-node', 'host routers and DHCP servers (the default)')
    .option('--no-network-node', 'a compute node: VM ports only')
    .option('--namespace-prefix <p>', 'prepended to every namespace the agent creates', '')
    .option('--ipsec-backend <kind>', 'kernel (XFRM, kernels with ESP) or libipsec (userspace ESP over TUN)', 'libipsec')
    .option('--state-dir <dir>', 'per-instance state (dnsmasq files; default DATA_DIR/agent)')
    .option('--resync-interval <s>', 'full resync period in seconds', seconds, 30)
    .option('--report-interval <s>', 'heartbeat period in seconds (alive for twice that)', seconds, 5);
}

/** Commander's options → the agent's flags. */
function agentFlagsFrom(o: Record<string, any>, host: string | undefined) {
  return {
    host, hostNamespace: o.hostNamespace, bridgeMapping: o.bridgeMapping, vlanInterface: o.vlanInterface,
    underlayIp: o.underlayIp, underlayInterface: o.underlayInterface, networkNode: o.networkNode,
    namespacePrefix: o.namespacePrefix, ipsecBackend: o.ipsecBackend, stateDir: o.stateDir, resyncInterval: o.resyncInterval, reportInterval: o.reportInterval,
  };
}

/** SIGTERM/SIGINT run stop once, then exit. */
function onSignals(stop: (signal: string) => Promise<void>): void {
  let stopping = false;
  const handler = (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`${signal}: shutting down`);
    stop(signal).then(() => process.exit(0), (e) => {
      console.error(`nucleon: ${e instanceof Error ? e.message : String(e)}`);
      process.exit(1);
    });
  };
  process.on('SIGTERM', () => handler('SIGTERM'));
  process.on('SIGINT', () => handler('SIGINT'));
}

const program = new Command('nucleon')
  .description('Nucleon: OpenStack Networking (Neutron) API v2.0 on a Linux data plane')
  .version(pkg.version, '-V, --version');

program.command('version').description('print the version').action(() => {
  console.log(`nucleon ${pkg.version}`);
});

agentFlags(program.command('serve')
  .description('run the identity (Keystone v3 subset) and Networking API servers, and the agent (as root)'), '--agent-host')
  .option('--no-agent', 'do not run the agent in this process (API only)')
  .option('--data-dir <dir>', 'state directory (database, clouds.yaml, keys)', './data')
  .option('--database <url>', 'postgres://... for PostgreSQL, or sqlite:PATH (default: DATA_DIR/nucleon.db)')
  .option('--host <addr>', 'address to listen on', '127.0.0.1')
  .option('--network-port <n>', 'Networking API port', port, 9696)
  .option('--identity-port <n>', 'identity API port', port, 5000)
  .option('--admin-password <pw>', 'admin password (first start: generated and printed once if not given)')
  .option('--public-host <name>', 'host name written into the service catalog and clouds.yaml')
  .option('--token-ttl <seconds>', 'token lifetime in seconds', Number, 3600)
  .option('--log-level <level>', 'pino log level', 'info')
  .action(async (o) => {
    // Loaded here so that `nucleon version` and `db migrate` stay light.
    const { startNucleon } = await import('../server.ts');
    const { isRoot } = await import('../agent/agent.ts');
    // The data plane needs root; without it serve is the API alone, and says so.
    const withAgent = o.agent !== false && isRoot();
    let agent = undefined;
    if (withAgent) {
      const { hostConfigFrom, runtimeOptionsFrom } = await import('../agent/index.ts');
      const flags = agentFlagsFrom(o, o.agentHost);
      agent = { config: hostConfigFrom(flags, o.dataDir), ...runtimeOptionsFrom(flags), dataPlane: true };
    }
    const nucleon = await startNucleon({
      dataDir: o.dataDir,
      databaseUrl: o.database,
      host: o.host,
      networkPort: o.networkPort,
      identityPort: o.identityPort,
      adminPassword: o.adminPassword ?? process.env.NUCLEON_ADMIN_PASSWORD,
      publicHost: o.publicHost,
      tokenTtlSeconds: o.tokenTtl,
      logger: { level: o.logLevel, redact: ['req.headers["x-auth-token"]', 'req.headers["x-subject-token"]'] },
      agent,
    });
    const db = o.database ? describeUrl(o.database) : `sqlite (${o.dataDir}/nucleon.db)`;
    console.log(`nucleon ${pkg.version} serving on ${db}`);
    console.log(`  identity: ${nucleon.endpoints.identityUrl}/v3`);
    console.log(`  network:  ${nucleon.endpoints.networkUrl}`);
    if (nucleon.cloudsYaml) {
      console.log(`  clouds.yaml: ${nucleon.cloudsYaml}  (OS_CLIENT_CONFIG_FILE=${nucleon.cloudsYaml} openstack --os-cloud nucleon ...)`);
    }
    if (nucleon.generatedPassword) console.log(`  admin password (shown once): ${nucleon.generatedPassword}`);
    if (nucleon.agent) console.log(`  agent: host ${nucleon.agent.config.host}, in this process`);
    else if (o.agent === false) console.log('  agent: off (--no-agent)');
    else console.log('  agent: data plane off (not root); run `nucleon agent` as root to wire hosts');
    onSignals(() => nucleon.close());
  });

agentFlags(program.command('agent')
  .description('run the agent: register this host and keep its data plane converged with the model'), '--host')
  .option('--data-dir <dir>', 'state directory (database)', './data')
  .option('--database <url>', 'postgres://... or sqlite:PATH (default: DATA_DIR/nucleon.db)')
  .option('--print-plan', 'print the host plan as JSON and exit (changes nothing)')
  .option('--once', 'run one pass and exit (non-zero when it failed)')
  .option('--log-level <level>', 'pino log level', 'info')
  .action(async (o) => {
    const { default: pino } = await import('pino');
    const { createAgent, hostConfigFrom, runtimeOptionsFrom } = await import('../agent/index.ts');
    const flags = agentFlagsFrom(o, o.host);
    const config = hostConfigFrom(flags, o.dataDir);
    const logger = pino({ level: o.logLevel });
    const store = await openStore({ url: o.database, dataDir: o.dataDir });
    const agent = createAgent({ store, config, ...runtimeOptionsFrom(flags), logger });
    if (o.printPlan) {
      try {
        console.log(JSON.stringify((await agent.computePlan()).plan, null, 2));
      } finally {
        await store.close();
      }
      return;
    }
    if (!agent.dataPlane) console.log('plan-only mode: the data plane is off (not root); plans are compiled and logged, nothing is changed');
    if (o.once) {
      try {
        await agent.register();
        if ((await agent.runOnce('once')).error) process.exitCode = 1;
      } finally {
        await store.close();
      }
      return;
    }
    onSignals(async () => {
      await agent.stop();
      await store.close();
    });
    await agent.start();
    console.log(`nucleon agent ${pkg.version}: host ${config.host}${agent.dataPlane ? '' : ' (plan-only)'}`);
  });

const sandbox = program.command('sandbox').description('stand-ins for real machines on this host (tests, demos)');
const sandboxVm = sandbox.command('vm').description('sandbox VMs: a network namespace plugged into a port like a VM');
sandboxVm.command('create')
  .description('create a VM namespace on a port: its tap appears on the host, the agent plugs it, DHCP gives it its address')
  .requiredOption('--port <id>', 'the port (from the API) the VM plugs into')
  .option('--name <ns>', 'namespace name (default vm-<first 8 chars of the port id>)')
  .option('--host-namespace <ns>', 'where the tap goes: the namespace acting as the host (as the agent\'s --host-namespace)')
  .option('--no-dhcp', 'do not ask for an address')
  .option('--data-dir <dir>', 'state directory (database)', './data')
  .option('--database <url>', 'postgres://... or sqlite:PATH (default: DATA_DIR/nucleon.db)')
  .action(async (o) => {
    const { isRoot } = await import('../agent/agent.ts');
    if (!isRoot()) throw new Error('sandbox VMs need root (network namespaces)');
    const { createSandboxVm, sandboxDhcp } = await import('../agent/sandbox.ts');
    const store = await openStore({ url: o.database, dataDir: o.dataDir });
    let port;
    try {
      port = await store.db.selectFrom('ports').innerJoin('networks', 'networks.id', 'ports.network_id')
        .select(['ports.id', 'ports.mac_address', 'networks.mtu']).where('ports.id', '=', String(o.port).toLowerCase())
        .executeTakeFirst();
    } finally {
      await store.close();
    }
    if (!port) throw new Error(`port ${o.port} not found`);
    const vm = await createSandboxVm({ port: { id: port.id, mac_address: port.mac_address, mtu: port.mtu }, name: o.name, hostNamespace: o.hostNamespace });
    console.log(`sandbox VM ${vm.name}: tap ${vm.tap}${o.hostNamespace ? ` in ${o.hostNamespace}` : ''}`);
    if (o.dhcp === false) return;
    // The agent plugs the tap on its next pass (it watches for taps); udhcpc retries meanwhile.
    try {
      console.log(`  address: ${await sandboxDhcp(vm.name, 10) ?? '(none)'}`);
    } catch (e) {
      console.error(`nucleon: ${e instanceof Error ? e.message : String(e)} (the VM exists; is an agent running for this host?)`);
      process.exitCode = 1;
    }
  });
sandboxVm.command('delete')
  .description('delete a sandbox VM (its namespace, its tap, its DHCP client)')
  .argument('<ns>', 'the VM\'s namespace name')
  .action(async (name: string) => {
    const { deleteSandboxVm } = await import('../agent/sandbox.ts');
    await deleteSandboxVm(name);
    console.log(`sandbox VM ${name} deleted`);
  });

const demo = program.command('demo').description('self-contained demonstrations on this machine (root; everything removed at the end)');
demo.command('vpn')
  .description('two sites (routers, tenant networks, sandbox VMs) joined by a VPNaaS IPsec tunnel made through the API; pings both ways, then cleans up')
  .action(async () => {
    const { runVpnDemo } = await import('./demo-vpn.ts');
    process.exitCode = await runVpnDemo();
  });

const db = program.command('db').description('database maintenance');
db.command('migrate')
  .description('apply pending migrations')
  .option('--data-dir <dir>', 'state directory', './data')
  .option('--database <url>', 'postgres://... or sqlite:PATH')
  .action(async (o) => {
    const store = await openStore({ url: o.database, dataDir: o.dataDir, migrate: false });
    try {
      const r = await migrateToLatest(store.db);
      const applied = (r.results ?? []).filter((m) => m.status === 'Success').map((m) => m.migrationName);
      console.log(applied.length ? `applied: ${applied.join(', ')}` : 'database is up to date');
    } finally {
      await store.close();
    }
  });

program.parseAsync(process.argv).catch((e) => {
  console.error(`nucleon: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
