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

const program = new Command('nucleon')
  .description('Nucleon: OpenStack Networking (Neutron) API v2.0 on a Linux data plane')
  .version(pkg.version, '-V, --version');

program.command('version').description('print the version').action(() => {
  console.log(`nucleon ${pkg.version}`);
});

program.command('serve')
  .description('run the identity (Keystone v3 subset) and Networking API servers')
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
    });
    const db = o.database ? describeUrl(o.database) : `sqlite (${o.dataDir}/nucleon.db)`;
    console.log(`nucleon ${pkg.version} serving on ${db}`);
    console.log(`  identity: ${nucleon.endpoints.identityUrl}/v3`);
    console.log(`  network:  ${nucleon.endpoints.networkUrl}`);
    if (nucleon.cloudsYaml) {
      console.log(`  clouds.yaml: ${nucleon.cloudsYaml}  (OS_CLIENT_CONFIG_FILE=${nucleon.cloudsYaml} openstack --os-cloud nucleon ...)`);
    }
    if (nucleon.generatedPassword) console.log(`  admin password (shown once): ${nucleon.generatedPassword}`);
    let stopping = false;
    const stop = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      console.log(`${signal}: shutting down`);
      await nucleon.close();
      process.exit(0);
    };
    process.on('SIGTERM', () => void stop('SIGTERM'));
    process.on('SIGINT', () => void stop('SIGINT'));
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
