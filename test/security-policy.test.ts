import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { forEachBackend } from './support/backends.ts';
import { caller } from './support/callers.ts';
import { createServices, type Services } from '../src/services/index.ts';
import { loadSecurityPolicy } from '../src/services/security-policy.ts';
import type { Store } from '../src/store/database.ts';

const p = caller('5ec0001c5ec0001c5ec0001c5ec0001c');

forEachBackend((backend) => {
  describe(`security policy read model on ${backend.name}`, () => {
    let s: Services;
    let store: Store;
    before(async () => {
      store = await backend.openStore();
      s = createServices(store);
    });

    it('gives each port its groups, each group its rules, each remote group its members', async () => {
      const net = await s.networks.create(p, { name: 'n' });
      await s.subnets.create(p, { network_id: net.id, ip_version: 4, cidr: '10.9.0.0/24' });
      const web = await s.securityGroups.create(p, { name: 'web' });
      const a = await s.ports.create(p, { network_id: net.id, fixed_ips: [{ ip_address: '10.9.0.10' }] });
      const b = await s.ports.create(p, { network_id: net.id, fixed_ips: [{ ip_address: '10.9.0.11' }], security_groups: [web.id],
        allowed_address_pairs: [{ ip_address: '10.9.0.200' }] });
      const open = await s.ports.create(p, { network_id: net.id, port_security_enabled: false, security_groups: [] });
      const defaultId = (a.security_groups as string[])[0];
      await s.securityGroupRules.create(p, { security_group_id: web.id, direction: 'ingress', protocol: 'tcp', port_range_min: 22, remote_group_id: defaultId });
      await s.securityGroupRules.create(p, { security_group_id: web.id, direction: 'ingress', protocol: 'icmp', remote_ip_prefix: '192.0.2.9/24' });

      const policy = await loadSecurityPolicy(store.db, { networkIds: [net.id as string] });
      const byId = new Map(policy.ports.map((x) => [x.id, x]));
      assert.deepEqual(byId.get(a.id as string)!.security_groups, [defaultId]);
      assert.deepEqual(byId.get(b.id as string)!.fixed_ips, ['10.9.0.11']);
      assert.equal(byId.get(b.id as string)!.allowed_address_pairs[0].ip_address, '10.9.0.200');
      assert.equal(byId.get(open.id as string)!.port_security_enabled, false);
      const webRules = policy.groups.get(web.id as string)!.rules;
      assert.equal(webRules.length, 4);
      assert.ok(webRules.some((r) => r.protocol === 'tcp' && r.port_range_min === 22 && r.port_range_max === 22 && r.remote_group_id === defaultId));
      assert.ok(webRules.some((r) => r.protocol === 'icmp' && r.remote_ip_prefix === '192.0.2.0/24'), 'normalized prefix');
      assert.deepEqual(policy.remoteGroupMembers.get(defaultId), ['10.9.0.10']);
      // The default group's own rules name itself as remote.
      assert.ok(policy.groups.get(defaultId)!.rules.some((r) => r.remote_group_id === defaultId));
    });
  });
});
