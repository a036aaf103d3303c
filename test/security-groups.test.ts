import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { NeutronError } from '../src/errors.ts';
import { forEachBackend } from './support/backends.ts';
import { rejectsNeutron as rejects } from './support/assertions.ts';
import { caller } from './support/callers.ts';
import { createServices, type Services } from '../src/services/index.ts';
import { emptyQuery } from '../src/services/resource-store.ts';
import { readChanges, latestSeq } from '../src/services/change-feed.ts';
import type { Store } from '../src/store/database.ts';


const rulesOf = (sg: Record<string, unknown>) => sg.security_group_rules as Array<Record<string, unknown>>;

forEachBackend((backend) => {
  describe(`security groups on ${backend.name}`, () => {
    let s: Services;
    let store: Store;
    before(async () => {
      store = await backend.openStore();
      s = createServices(store);
    });

    it('creates the default group once, on first use, with Neutron default rules', async () => {
      const p = caller('dfdfdfdfdfdfdfdfdfdfdfdfdfdfdf01');
      const lists = await Promise.all(Array.from({ length: 8 }, () => s.securityGroups.list(p, { ...emptyQuery(), filters: { name: ['default'] } })));
      const ids = new Set(lists.flatMap((l) => l.items.map((i) => i.id)));
      assert.equal(ids.size, 1, 'exactly one default group');
      const sg = lists[0].items[0];
      assert.equal(sg.description, 'Default security group');
      assert.equal(sg.stateful, true);
      const rules = rulesOf(sg).map((r) => [r.direction, r.ethertype, r.remote_group_id === sg.id]).sort();
      assert.deepEqual(rules, [['egress', 'IPv4', false], ['egress', 'IPv6', false], ['ingress', 'IPv4', true], ['ingress', 'IPv6', true]]);
      await rejects(s.securityGroups.delete(p, sg.id as string), 409, 'SecurityGroupCannotRemoveDefault');
      await rejects(s.securityGroups.update(p, sg.id as string, { name: 'x' }), 409, 'SecurityGroupCannotUpdateDefault');
    });

    it('new groups get the two egress rules; rules validate like Neutron', async () => {
      const p = caller('dfdfdfdfdfdfdfdfdfdfdfdfdfdfdf02');
      const sg = await s.securityGroups.create(p, { name: 'web', description: 'w' });
      assert.equal(sg.revision_number, 1);
      assert.deepEqual(rulesOf(sg).map((r) => [r.direction, r.ethertype, r.protocol]).sort(), [['egress', 'IPv4', null], ['egress', 'IPv6', null]]);
      const id = sg.id as string;
      const ssh = await s.securityGroupRules.create(p, { security_group_id: id, direction: 'ingress', protocol: 'tcp', port_range_min: 22, port_range_max: 22, remote_ip_prefix: '10.1.2.3/8', ethertype: 'IPv4' });
      assert.equal(ssh.normalized_cidr, '10.0.0.0/8');
      assert.equal(ssh.remote_ip_prefix, '10.1.2.3/8');
      assert.equal(ssh.description, '');
      await rejects(
        s.securityGroupRules.create(p, { security_group_id: id, direction: 'ingress', protocol: '6', port_range_min: 22, port_range_max: 22, remote_ip_prefix: '10.0.0.0/8' }),
        409, 'SecurityGroupRuleExists', new RegExp(`^Security group rule already exists. Rule id is ${ssh.id}.$`),
      );
      const base = { security_group_id: id, direction: 'ingress' };
      await rejects(s.securityGroupRules.create(p, { ...base, port_range_min: 80 }), 400, 'SecurityGroupProtocolRequiredWithPorts');
      await rejects(s.securityGroupRules.create(p, { ...base, protocol: 'udp', port_range_min: 90, port_range_max: 80 }), 400, 'SecurityGroupInvalidPortRange');
      await rejects(s.securityGroupRules.create(p, { ...base, protocol: 'tcp', port_range_min: 0, port_range_max: 80 }), 400, 'SecurityGroupInvalidPortValue');
      await rejects(s.securityGroupRules.create(p, { ...base, protocol: 'icmp', port_range_max: 0 }), 400, 'SecurityGroupMissingIcmpType');
      await rejects(s.securityGroupRules.create(p, { ...base, protocol: 'icmp', port_range_min: 300 }), 400, 'SecurityGroupInvalidIcmpValue');
      await rejects(s.securityGroupRules.create(p, { ...base, protocol: 'gre', port_range_min: 1 }), 400, 'SecurityGroupInvalidProtocolForPortRange');
      await rejects(s.securityGroupRules.create(p, { ...base, remote_ip_prefix: '10.0.0.0/8', remote_group_id: id }), 400, 'SecurityGroupRemoteGroupAndRemoteIpPrefix');
      await rejects(s.securityGroupRules.create(p, { ...base, ethertype: 'IPv6', remote_ip_prefix: '10.0.0.0/8' }), 400, 'SecurityGroupRuleParameterConflict', /^Conflicting value ethertype IPv6 for CIDR 10.0.0.0\/8$/);
      await rejects(s.securityGroupRules.create(p, { ...base, protocol: 'bogus' }), 400, 'HTTPBadRequest');
      await rejects(s.securityGroupRules.create(p, { ...base, direction: 'sideways' }), 400, 'HTTPBadRequest');
      await rejects(s.securityGroupRules.create(p, { ...base, remote_group_id: '7e57a1d4-0000-4000-8000-000000000000' }), 404, 'SecurityGroupNotFound');
      const icmp = await s.securityGroupRules.create(p, { ...base, protocol: 'icmp', port_range_min: 8, port_range_max: 0 });
      assert.equal(icmp.port_range_min, 8);
      const anyProto = await s.securityGroupRules.create(p, { ...base, protocol: 'any', remote_group_id: id });
      assert.equal(anyProto.protocol, null);
      const after = await s.securityGroups.get(p, id);
      assert.equal(after.revision_number, 4, 'each rule change bumps the group');
      assert.equal(rulesOf(after).length, 5);
    });

    it('another project cannot see or use a group', async () => {
      const owner = caller('dfdfdfdfdfdfdfdfdfdfdfdfdfdfdf03');
      const other = caller('dfdfdfdfdfdfdfdfdfdfdfdfdfdfdf04');
      const sg = await s.securityGroups.create(owner, { name: 'private' });
      await rejects(s.securityGroups.get(other, sg.id as string), 404, 'SecurityGroupNotFound');
      await rejects(s.securityGroupRules.create(other, { security_group_id: sg.id, direction: 'ingress' }), 404, 'SecurityGroupNotFound');
      const otherGroup = await s.securityGroups.create(other, { name: 'mine' });
      await rejects(s.securityGroupRules.create(other, { security_group_id: otherGroup.id, direction: 'ingress', remote_group_id: sg.id }), 404, 'SecurityGroupNotFound');
      const rule = rulesOf(sg)[0];
      await rejects(s.securityGroupRules.delete(other, rule.id as string), 404, 'SecurityGroupRuleNotFound');
    });

    it('50 distinct rules from 10 concurrent clients all succeed', async () => {
      const p = caller('dfdfdfdfdfdfdfdfdfdfdfdfdfdfdf05');
      const sg = await s.securityGroups.create(p, { name: 'busy' });
      await store.db.insertInto('quotas').values({ project_id: p.projectId, resource: 'security_group_rule', hard_limit: -1 }).execute();
      const start = await latestSeq(store.db);
      const results = await Promise.allSettled(Array.from({ length: 10 }, (_, client) => (async () => {
        for (let i = 0; i < 5; i++) {
          await s.securityGroupRules.create(p, { security_group_id: sg.id, direction: 'ingress', protocol: 'tcp', port_range_min: 1000 + client * 5 + i, port_range_max: 1000 + client * 5 + i });
        }
      })()));
      assert.deepEqual(results.filter((r) => r.status === 'rejected'), []);
      const after = await s.securityGroups.get(p, sg.id as string);
      assert.equal(rulesOf(after).length, 52);
      assert.equal(after.revision_number, 51);
      const feed = (await readChanges(store.db, start, 10_000)).filter((c) => c.resource_id === sg.id);
      assert.equal(feed.length, 50, 'one feed row for the group per rule change');
      // Concurrent duplicates: exactly one wins.
      const dup = await Promise.allSettled(Array.from({ length: 6 }, () => s.securityGroupRules.create(p, { security_group_id: sg.id, direction: 'egress', protocol: 'udp', port_range_min: 53, port_range_max: 53 })));
      assert.equal(dup.filter((r) => r.status === 'fulfilled').length, 1);
      assert.ok(dup.every((r) => r.status === 'fulfilled' || (r.reason as NeutronError).type === 'SecurityGroupRuleExists'));
    });

    it('enforces the rule quota', async () => {
      const p = caller('dfdfdfdfdfdfdfdfdfdfdfdfdfdfdf06');
      const sg = await s.securityGroups.create(p, { name: 'q' });
      // default group (4) + this group (2) = 6 rules already.
      await store.db.insertInto('quotas').values({ project_id: p.projectId, resource: 'security_group_rule', hard_limit: 7 }).execute();
      await s.securityGroupRules.create(p, { security_group_id: sg.id, direction: 'ingress', protocol: 'tcp', port_range_min: 1, port_range_max: 1 });
      await rejects(s.securityGroupRules.create(p, { security_group_id: sg.id, direction: 'ingress', protocol: 'tcp', port_range_min: 2, port_range_max: 2 }), 409, 'OverQuota');
    });

    it('address groups: members, actions, rules that name them', async () => {
      const p = caller('dfdfdfdfdfdfdfdfdfdfdfdfdfdfdf07');
      const ag = await s.addressGroups.create(p, { name: 'office', addresses: ['192.0.2.7', '198.51.100.0/24'] });
      assert.deepEqual(ag.addresses, ['192.0.2.7/32', '198.51.100.0/24']);
      const more = await s.addressGroups.changeAddresses(p, ag.id as string, { addresses: ['203.0.113.0/25'] }, 'add');
      assert.deepEqual(more.addresses, ['192.0.2.7/32', '198.51.100.0/24', '203.0.113.0/25']);
      const less = await s.addressGroups.changeAddresses(p, ag.id as string, { addresses: ['192.0.2.7/32'] }, 'remove');
      assert.deepEqual(less.addresses, ['198.51.100.0/24', '203.0.113.0/25']);
      await rejects(s.addressGroups.changeAddresses(p, ag.id as string, { addresses: ['10.9.9.9'] }, 'remove'), 400, 'HTTPBadRequest');
      const sg = await s.securityGroups.create(p, { name: 'ag' });
      const rule = await s.securityGroupRules.create(p, { security_group_id: sg.id, direction: 'ingress', remote_address_group_id: ag.id });
      assert.equal(rule.remote_address_group_id, ag.id);
      await rejects(s.securityGroupRules.create(p, { security_group_id: sg.id, direction: 'ingress', remote_address_group_id: ag.id, remote_ip_prefix: '10.0.0.0/8' }), 400, 'SecurityGroupRemoteAddressGroupAndRemoteIpPrefix');
      await rejects(s.addressGroups.delete(p, ag.id as string), 409, 'AddressGroupInUse');
      await s.securityGroupRules.delete(p, rule.id as string);
      await s.addressGroups.delete(p, ag.id as string);
    });
  });
});
