// Sandbox VMs (root only): a namespace with eth0 (the port's MAC) whose veth
// peer is the port's tap in the host namespace. The DHCP path against a real
// dnsmasq is in agent-apply.test.ts; here: wiring, failure cleanup, deletion.
// Every namespace is named nat-<rand>…, and removed in after().
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { createSandboxVm, deleteSandboxVm, sandboxVmName } from '../src/agent/sandbox.ts';
import { listNamespaces, namespacePids, run, runOk, terminate } from '../src/agent/apply/exec.ts';

const isRoot = process.getuid?.() === 0;
const rand = randomBytes(3).toString('hex');
const hostNs = `nat-sbhost-${rand}`;
const port = { id: '5b0c1d2e-0000-4000-8000-00000000abcd', mac_address: 'FA:16:3E:12:34:56', mtu: 1450 };

describe('sandbox VM names', () => {
  it('defaults to vm-<first 8 chars of the port id>', () => {
    assert.equal(sandboxVmName(port.id), 'vm-5b0c1d2e');
  });
});

describe('sandbox VMs on a real host', { skip: isRoot ? false : 'needs root' }, () => {
  before(async () => {
    await runOk(['ip', 'netns', 'add', hostNs]);
  });
  after(async () => {
    for (const ns of (await listNamespaces()).filter((n) => n.includes(rand))) {
      await terminate(await namespacePids(ns));
      await run(['ip', 'netns', 'del', ns]);
      fs.rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
    }
    assert.deepEqual((await listNamespaces()).filter((n) => n.includes(rand)), []);
  });

  it('wires eth0 (the port\'s MAC and MTU) to tap<port id 11> in the host namespace, both up; delete removes it all', async () => {
    const name = `nat-${rand}vm1`;
    const vm = await createSandboxVm({ port, name, hostNamespace: hostNs });
    assert.deepEqual(vm, { name, tap: 'tap5b0c1d2e-00' });
    assert.equal(fs.readFileSync(`/etc/netns/${name}/resolv.conf`, 'utf8'), '');
    const [eth0] = JSON.parse((await runOk(['ip', '-n', name, '-j', 'link', 'show', 'eth0'])).stdout) as Array<{ address: string; mtu: number; flags: string[] }>;
    assert.equal(eth0.address, 'fa:16:3e:12:34:56');
    assert.equal(eth0.mtu, 1450);
    assert.ok(eth0.flags.includes('UP'));
    const [tap] = JSON.parse((await runOk(['ip', '-n', hostNs, '-j', 'link', 'show', vm.tap])).stdout) as Array<{ flags: string[]; mtu: number }>;
    assert.ok(tap.flags.includes('UP'));
    assert.equal(tap.mtu, 1450);

    await deleteSandboxVm(name);
    assert.ok(!(await listNamespaces()).includes(name));
    assert.ok(!fs.existsSync(`/etc/netns/${name}`));
    for (let i = 0; i < 100 && (await run(['ip', '-n', hostNs, 'link', 'show', vm.tap])).code === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.notEqual((await run(['ip', '-n', hostNs, 'link', 'show', vm.tap])).code, 0, 'the tap went with the namespace');
    await deleteSandboxVm(name); // idempotent
  });

  it('without a DHCP server: fails with a clear error and leaves nothing behind', async () => {
    const name = `nat-${rand}vm2`;
    await assert.rejects(createSandboxVm({ port, name, hostNamespace: hostNs, dhcp: true, dhcpTries: 1 }), /no DHCP lease for/);
    assert.ok(!(await listNamespaces()).includes(name));
    assert.ok(!fs.existsSync(`/etc/netns/${name}`));
  });
});
