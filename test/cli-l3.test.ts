// Routers, floating IPs and security groups as a user meets them: `nucleon
// serve` as a child process and Debian's real `openstack` CLI against it, an
// admin making the external network and a project member doing the rest.
// Outputs are read with -f json. (Server and CLI helpers: test/support/cli.ts.)
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import type { Json } from './support/server.ts';
import { BASE_ENV, UUID, cliCalls, openstack, serve, tempDir, writeCloud, type CliResult, type Served } from './support/cli.ts';

const MAX_CLI_CALLS = 40;

const haveOpenstack = spawnSync('openstack', ['--version'], { env: BASE_ENV, timeout: 60_000 }).status === 0;
if (!haveOpenstack) {
  describe('openstack CLI (L3)', () => {
    it('is installed', () => assert.fail('the openstack CLI (python3-openstackclient) is missing: run scripts/install-deps.sh'));
  });
}

describe('routers, floating IPs and security groups through the openstack CLI', { skip: !haveOpenstack }, () => {
  const memberPassword = 'l3-member-secret';
  let admin: (args: string[], opts?: { fails?: boolean }) => Promise<CliResult>;
  let member: (args: string[], opts?: { fails?: boolean }) => Promise<CliResult>;
  let publicNet: Json;
  let publicSubnet: Json;
  let privateSubnet: Json;
  let router: Json;
  let web: Json;
  let vmPort: Json;
  let fip: Json;
  let srv: Served;

  before(async () => {
    const dataDir = tempDir('nucleon-cli-l3-');
    srv = await serve(['--data-dir', dataDir, '--identity-port', '0', '--network-port', '0', '--admin-password', 'l3-admin-secret', '--log-level', 'warn']);
    const memberClouds = path.join(dataDir, 'member-clouds.yaml');
    writeCloud(memberClouds, 'member', `${srv.identityUrl}/v3`, 'l3-user', memberPassword, 'l3demo');
    admin = (args, opts) => openstack(srv.cloudsYaml, 'nucleon', args, opts);
    member = (args, opts) => openstack(memberClouds, 'member', args, opts);
    await admin(['project', 'create', 'l3demo', '-f', 'json']);
    await admin(['user', 'create', '--project', 'l3demo', '--password', memberPassword, 'l3-user', '-f', 'json']);
    await admin(['role', 'add', '--project', 'l3demo', '--user', 'l3-user', 'member']);
  });
  after(async () => {
    const end = await srv.stop();
    assert.equal(end.code, 0, 'nucleon serve stops cleanly on SIGTERM');
  });

  it('as admin, creates a flat external network with a subnet without DHCP', async () => {
    publicNet = (await admin(['network', 'create', '--external', '--provider-network-type', 'flat', '--provider-physical-network', 'public', 'public', '-f', 'json'])).json;
    assert.match(publicNet.id, UUID);
    assert.equal(publicNet['router:external'], true);
    assert.equal(publicNet['provider:network_type'], 'flat');
    assert.equal(publicNet['provider:physical_network'], 'public');
    publicSubnet = (await admin(['subnet', 'create', '--network', 'public', '--subnet-range', '203.0.113.0/24', '--no-dhcp', 'public-subnet', '-f', 'json'])).json;
    assert.equal(publicSubnet.enable_dhcp, false);
    assert.equal(publicSubnet.gateway_ip, '203.0.113.1');
  });

  it('as a member, creates a router, sets its gateway on the admin\'s external network and attaches a subnet', async () => {
    assert.ok(publicSubnet, 'needs the external network of the test before');
    await member(['network', 'create', 'private', '-f', 'json']);
    privateSubnet = (await member(['subnet', 'create', '--network', 'private', '--subnet-range', '10.0.0.0/24', 'private-subnet', '-f', 'json'])).json;
    router = (await member(['router', 'create', 'r1', '-f', 'json'])).json;
    assert.match(router.id, UUID);
    assert.equal(router.status, 'ACTIVE');
    assert.equal(router.external_gateway_info, null);
    assert.equal((await member(['router', 'set', '--external-gateway', 'public', 'r1'])).stdout.trim(), '');
    await member(['router', 'add', 'subnet', 'r1', 'private-subnet']);
    const shown = (await member(['router', 'show', 'r1', '-f', 'json'])).json;
    assert.equal(shown.external_gateway_info.network_id, publicNet.id);
    assert.equal(shown.external_gateway_info.enable_snat, true);
    assert.equal(shown.external_gateway_info.external_fixed_ips[0].subnet_id, publicSubnet.id);
    assert.match(shown.external_gateway_info.external_fixed_ips[0].ip_address, /^203\.0\.113\.\d+$/);
    // The CLI lists the router's interfaces from its ports: one, on the subnet's gateway address.
    assert.deepEqual((shown.interfaces_info as Json[]).map((i) => [i.subnet_id, i.ip_address]), [[privateSubnet.id, '10.0.0.1']]);
    assert.ok(shown.revision_number >= 3, `revision ${shown.revision_number}`);
  });

  it('creates security groups and rules (a CIDR and a remote group) and a port in the group', async () => {
    // Groups are named by name, as users do: the CLI finds them through GET /v2.0/security-groups?name=.
    web = (await member(['security', 'group', 'create', 'web', '-f', 'json'])).json;
    const peers = (await member(['security', 'group', 'create', 'peers', '-f', 'json'])).json;
    const ssh = (await member(['security', 'group', 'rule', 'create', '--protocol', 'tcp', '--dst-port', '22', '--remote-ip', '10.0.0.0/8', 'web', '-f', 'json'])).json;
    assert.deepEqual([ssh.direction, ssh.ether_type ?? ssh.ethertype, ssh.protocol, ssh.port_range_min, ssh.port_range_max, ssh.remote_ip_prefix, ssh.security_group_id],
      ['ingress', 'IPv4', 'tcp', 22, 22, '10.0.0.0/8', web.id]);
    const fromPeers = (await member(['security', 'group', 'rule', 'create', '--remote-group', 'peers', 'web', '-f', 'json'])).json;
    assert.deepEqual([fromPeers.direction, fromPeers.remote_group_id, fromPeers.remote_ip_prefix, fromPeers.security_group_id],
      ['ingress', peers.id, null, web.id]);
    vmPort = (await member(['port', 'create', '--network', 'private', '--security-group', 'web', 'vm-port', '-f', 'json'])).json;
    assert.deepEqual(vmPort.security_group_ids ?? vmPort.security_groups, [web.id]);
    assert.equal(vmPort.fixed_ips[0].subnet_id, privateSubnet.id);
  });

  it('finds a security group by name', async () => {
    assert.ok(web, 'needs the group of the test before');
    const shown = (await member(['security', 'group', 'show', 'web', '-f', 'json'])).json;
    assert.equal(shown.id, web.id);
  });

  it('creates a floating IP, maps it to the port, and keeps the interface it needs', async () => {
    assert.ok(vmPort && router, 'needs the port and router of the tests before');
    fip = (await member(['floating', 'ip', 'create', 'public', '-f', 'json'])).json;
    assert.match(fip.id, UUID);
    assert.match(fip.floating_ip_address, /^203\.0\.113\.\d+$/);
    assert.equal(fip.floating_network_id, publicNet.id);
    assert.equal(fip.port_id, null);
    assert.equal(fip.status, 'DOWN');
    await member(['floating', 'ip', 'set', '--port', 'vm-port', fip.id]);
    const shown = (await member(['floating', 'ip', 'show', fip.id, '-f', 'json'])).json;
    assert.equal(shown.port_id, vmPort.id);
    assert.equal(shown.fixed_ip_address, vmPort.fixed_ips[0].ip_address);
    assert.equal(shown.router_id, router.id);
    // The CLI prints port_details as "key='value', ..." text.
    const details = typeof shown.port_details === 'string' ? shown.port_details : JSON.stringify(shown.port_details);
    assert.ok(details.includes(vmPort.mac_address) && details.includes('vm-port'), details);
    const refused = await member(['router', 'remove', 'subnet', 'r1', 'private-subnet'], { fails: true });
    assert.match(refused.stderr, /required by one or more floating IPs/);
    await member(['floating', 'ip', 'unset', '--port', fip.id]);
    const free = (await member(['floating', 'ip', 'show', fip.id, '-f', 'json'])).json;
    assert.deepEqual([free.port_id, free.fixed_ip_address, free.router_id], [null, null, null]);
    await member(['router', 'remove', 'subnet', 'r1', 'private-subnet']);
    const ports = (await member(['port', 'list', '--router', 'r1', '-f', 'json'])).json;
    assert.deepEqual(ports, [], 'no interface left (the gateway port is not the member\'s)');
    assert.ok(cliCalls < MAX_CLI_CALLS, `${cliCalls} CLI calls`);
  });
});
