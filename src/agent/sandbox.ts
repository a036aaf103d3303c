// Sandbox VMs: a network namespace standing in for a VM, so that ports can be
// plugged, get DHCP leases and carry traffic without a hypervisor. The "VM"
// end is eth0 (the port's MAC) inside the namespace; the host end is the
// port's tap (tap<port id, 11 chars>) in the host namespace, exactly where a
// hypervisor would put it, so the agent plugs it like any VM tap.
import fs from 'node:fs';
import path from 'node:path';
import { namespacePids, run, runOk, terminate } from './apply/exec.ts';
import { tapName } from './plan.ts';

export interface SandboxVmOptions {
  port: { id: string; mac_address: string; mtu?: number };
  /** Namespace name; default vm-<first 8 chars of the port id>. */
  name?: string;
  /** Where the tap goes: '' / absent = the agent's own namespace, or a named netns acting as the host. */
  hostNamespace?: string;
  /** Ask for an address and default route by DHCP (busybox udhcpc). */
  dhcp?: boolean;
  /** udhcpc tries (one second apart); default 5. */
  dhcpTries?: number;
}

export interface SandboxVm {
  name: string;
  tap: string;
  /** address/prefixlen from DHCP, when asked for and given. */
  address?: string;
}

const RUN_DIR = '/run/nucleon/sandbox';

// busybox's udhcpc only sets what its script does, and Debian ships the
// default script in a separate package (udhcpc): bring our own. It sets the
// address, the MTU, the default route and resolv.conf (which `ip netns exec`
// bind-mounts from /etc/netns/<name>/, so the host's file is never touched).
const UDHCPC_SCRIPT = `#!/bin/sh
case "$1" in
  deconfig)
    ip -4 addr flush dev "$interface"
    ip link set dev "$interface" up
    ;;
  bound|renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/\${mask:-24}" \${broadcast:+broadcast "$broadcast"} dev "$interface"
    [ -n "$mtu" ] && ip link set dev "$interface" mtu "$mtu"
    if [ -n "$router" ]; then
      while ip -4 route del default dev "$interface" 2>/dev/null; do :; done
      for r in $router; do ip route add default via "$r" dev "$interface"; break; done
    fi
    : > /etc/resolv.conf
    [ -n "$domain" ] && echo "search $domain" >> /etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
    ;;
esac
exit 0
`;

export const sandboxVmName = (portId: string) => `vm-${portId.slice(0, 8)}`;

export async function createSandboxVm(opts: SandboxVmOptions): Promise<SandboxVm> {
  const name = opts.name ?? sandboxVmName(opts.port.id);
  const hostNs = opts.hostNamespace ?? '';
  const tap = tapName(opts.port.id);
  const mtu = String(opts.port.mtu ?? 1500);
  // resolv.conf first: DHCP client scripts write /etc/resolv.conf, and only an
  // existing /etc/netns/<name>/resolv.conf keeps them off the host's file.
  const etc = `/etc/netns/${name}`;
  fs.mkdirSync(etc, { recursive: true });
  fs.writeFileSync(path.join(etc, 'resolv.conf'), '');
  try {
    await runOk(['ip', 'netns', 'add', name]);
    // Created inside the VM namespace; the tap end goes to the host namespace
    // (named, or this process's own when the host is the agent's namespace).
    await runOk(['ip', '-n', name, 'link', 'add', 'eth0', 'mtu', mtu, 'address', opts.port.mac_address.toLowerCase(),
      'type', 'veth', 'peer', 'name', tap, 'mtu', mtu, 'netns', hostNs || String(process.pid)]);
    await runOk(['ip', '-n', name, '-batch', '-'], 'link set dev lo up\nlink set dev eth0 up\n');
    await runOk(hostNs ? ['ip', '-n', hostNs, 'link', 'set', 'dev', tap, 'up'] : ['ip', 'link', 'set', 'dev', tap, 'up']);
    const vm: SandboxVm = { name, tap };
    if (opts.dhcp) vm.address = await sandboxDhcp(name, opts.dhcpTries);
    return vm;
  } catch (e) {
    await deleteSandboxVm(name).catch(() => {});
    throw e;
  }
}

/**
 * Asks for a lease on eth0 (busybox udhcpc with our script: address, MTU,
 * default route, resolv.conf) and returns the address/prefixlen it got.
 * -n: give up without a lease; -q: exit once bound, so no client is left
 * running. The tap must be plugged by then (the agent does that).
 */
export async function sandboxDhcp(name: string, tries = 5): Promise<string | undefined> {
  const dir = path.join(RUN_DIR, name);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const script = path.join(dir, 'udhcpc.script');
  fs.writeFileSync(script, UDHCPC_SCRIPT, { mode: 0o700 });
  const r = await run(['ip', 'netns', 'exec', name, 'busybox', 'udhcpc', '-i', 'eth0', '-n', '-q', '-t', String(tries), '-T', '1', '-s', script]);
  if (r.code !== 0) throw new Error(`no DHCP lease for ${name}: ${(r.stderr || r.stdout).trim()}`);
  return vmAddress(name);
}

/** eth0's IPv4 address/prefixlen in a sandbox VM, if it has one. */
export async function vmAddress(name: string): Promise<string | undefined> {
  const r = await runOk(['ip', '-n', name, '-j', '-4', 'addr', 'show', 'dev', 'eth0']);
  const info = (JSON.parse(r.stdout || '[]') as Array<{ addr_info: Array<{ local: string; prefixlen: number }> }>)[0]?.addr_info?.[0];
  return info ? `${info.local}/${info.prefixlen}` : undefined;
}

/** Removes the namespace (its veth, and so the tap, go with it), its /etc/netns dir and any process in it. */
export async function deleteSandboxVm(name: string): Promise<void> {
  await terminate(await namespacePids(name));
  const r = await run(['ip', 'netns', 'del', name]);
  if (r.code !== 0 && !/No such file/.test(r.stderr)) throw new Error(`ip netns del ${name}: ${r.stderr.trim()}`);
  fs.rmSync(`/etc/netns/${name}`, { recursive: true, force: true });
  fs.rmSync(path.join(RUN_DIR, name), { recursive: true, force: true });
}
