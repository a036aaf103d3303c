import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { forEachBackend } from './support/backends.ts';

forEachBackend((backend) => {
  describe(`store on ${backend.name}`, () => {
    it('applies the migrations and enforces foreign keys', async () => {
      const store = await backend.openStore();
      const tables = backend.name === 'sqlite'
        ? await sql<{ name: string }>`SELECT name FROM sqlite_master WHERE type='table'`.execute(store.db)
        : await sql<{ name: string }>`SELECT table_name AS name FROM information_schema.tables WHERE table_schema='public'`.execute(store.db);
      const names = tables.rows.map((r) => r.name);
      for (const t of ['networks', 'subnets', 'ports', 'ip_allocations', 'tags', 'quotas']) assert.ok(names.includes(t), t);
      await assert.rejects(
        store.db.insertInto('subnets').values({
          id: 's1', project_id: 'p', name: '', description: '', created_at: '', updated_at: '', revision_number: 0,
          network_id: 'missing', ip_version: 4, cidr: '10.0.0.0/24', gateway_ip: null, enable_dhcp: 1,
          ipv6_ra_mode: null, ipv6_address_mode: null, allocation_pools: '[]', dns_nameservers: '[]',
          host_routes: '[]', service_types: '[]', subnetpool_id: null,
        }).execute(),
      );
    });
  });
});
