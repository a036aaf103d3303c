// VPNaaS compile: ipsec-site-connections → one strongSwan (charon) instance
// per router namespace that hosts a VPN service, plus `unreachable` routes
// for the peer CIDRs in that namespace. Pure.
//
// Why the unreachable routes: kernel-libipsec installs the tunnel's route in
// table 220 (rule 220 wins over main) only while a CHILD_SA is up. When the
// tunnel is down (peer gone, wrong PSK, admin-down), traffic to the peer's
// subnets would otherwise fall through to the router's default route and
// leave in clear text (notes §1). metric 4000 keeps them out of the way of
// anything else in main.
import type { ModelIpsecConnection } from '../model.ts';
import type { IpsecConnectionPlan, IpsecInstance, Route } from '../plan.ts';
import { sortBy } from './util.ts';

/** What compile knows about a router served here. */
export interface IpsecRouter {
  router_id: string;
  namespace: string;
  /** IPv4 address of the router's gateway port (the tunnel endpoint and our IKE id), or null without a gateway. */
  gatewayIp: string | null;
}

export const IPSEC_UNREACHABLE_METRIC = 4000;

// Neutron group names → strongSwan DH transform names.
const DH: Record<string, string> = {
  group1: 'modp768', group2: 'modp1024', group5: 'modp1536', group14: 'modp2048', group15: 'modp3072', group16: 'modp4096',
  group17: 'modp6144', group18: 'modp8192', group19: 'ecp256', group20: 'ecp384', group21: 'ecp521', group22: 'modp1024s160',
  group23: 'modp2048s224', group24: 'modp2048s256', group25: 'ecp192', group26: 'ecp224', group27: 'ecp224bp',
  group28: 'ecp256bp', group29: 'ecp384bp', group30: 'ecp512bp', group31: 'curve25519',
};

const INTEG: Record<string, string> = {
  md5: 'md5', sha1: 'sha1', sha256: 'sha256', sha384: 'sha384', sha512: 'sha512', 'aes-xcbc': 'aesxcbc', 'aes-cmac': 'aescmac',
};

/** Encryption name → strongSwan keyword, and whether it is an AEAD (which needs no integrity transform). */
export function encryption(name: string): { alg: string; aead: boolean } {
  if (name === '3des') return { alg: '3des', aead: false };
  const m = /^aes-(\d+)(?:-(gcm|ccm|ctr)(?:-(\d+))?)?$/.exec(name);
  if (!m) throw new Error(`unsupported encryption algorithm ${name}`);
  const [, bits, mode, icv] = m;
  if (!mode) return { alg: `aes${bits}`, aead: false };
  if (mode === 'ctr') return { alg: `aes${bits}ctr`, aead: false };
  return { alg: `aes${bits}${mode}${icv ?? '16'}`, aead: true };
}

export function integrity(name: string): string {
  const v = INTEG[name];
  if (!v) throw new Error(`unsupported auth algorithm ${name}`);
  return v;
}

/** pfs/DH group → name, or null for none. */
export function dhGroup(name: string): string | null {
  if (name === '' || name === 'none' || name === 'disabled') return null;
  const v = DH[name];
  if (!v) throw new Error(`unsupported pfs group ${name}`);
  return v;
}

const join = (...parts: Array<string | null>) => parts.filter((p): p is string => p !== null).join('-');

/** IKE proposal: enc-integ-dh, or for an AEAD cipher enc-prf<integ>-dh (IKE still needs a PRF). */
export function ikeProposal(ike: ModelIpsecConnection['ike']): string {
  const enc = encryption(ike.encryption_algorithm);
  const integ = integrity(ike.auth_algorithm);
  // IKE always negotiates a DH group; Neutron's ike pfs is that group.
  const dh = dhGroup(ike.pfs) ?? 'modp2048';
  return enc.aead ? join(enc.alg, `prf${integ}`, dh) : join(enc.alg, integ, dh);
}

/** ESP and/or AH proposals of the child (pfs group appended when set). */
export function childProposals(ipsec: ModelIpsecConnection['ipsec']): { esp_proposals?: string[]; ah_proposals?: string[] } {
  const integ = integrity(ipsec.auth_algorithm);
  const dh = dhGroup(ipsec.pfs);
  const out: { esp_proposals?: string[]; ah_proposals?: string[] } = {};
  if (ipsec.transform_protocol === 'esp' || ipsec.transform_protocol === 'ah-esp') {
    const enc = encryption(ipsec.encryption_algorithm);
    out.esp_proposals = [enc.aead ? join(enc.alg, dh) : join(enc.alg, integ, dh)];
  }
  if (ipsec.transform_protocol === 'ah' || ipsec.transform_protocol === 'ah-esp') out.ah_proposals = [join(integ, dh)];
  return out;
}

const DPD_ACTION: Record<string, string> = { hold: 'trap', clear: 'clear', restart: 'restart', 'restart-by-peer': 'clear' };

/** The vici load-conn body for one connection (keyed by its id). No secret in here. */
export function connectionConfig(c: ModelIpsecConnection, gatewayIp: string): Record<string, unknown> {
  const v1 = c.ike.ike_version === 'v1';
  const dpd = c.dpd.action !== 'disabled' && c.dpd.interval > 0;
  const child: Record<string, unknown> = {
    local_ts: sortBy(c.local_cidrs, (x) => x),
    remote_ts: sortBy(c.peer_cidrs, (x) => x),
    mode: c.ipsec.encapsulation_mode,
    ...childProposals(c.ipsec),
    // Bi-directional: start now, and keep the trap policy so packets to the
    // peer are dropped (never sent in clear) while the SA is missing.
    // Response-only: trap only (libipsec never initiates from a trap; notes §1).
    start_action: c.initiator === 'bi-directional' ? 'trap|start' : 'trap',
    close_action: 'none',
    ...(dpd ? { dpd_action: DPD_ACTION[c.dpd.action] ?? 'clear' } : {}),
  };
  if (c.ipsec.lifetime.units === 'seconds') {
    child.life_time = `${c.ipsec.lifetime.value}s`;
    child.rekey_time = `${Math.max(1, Math.floor(c.ipsec.lifetime.value * 0.9))}s`;
  } else {
    child.life_bytes = String(c.ipsec.lifetime.value * 1024);
    child.rekey_bytes = String(Math.floor(c.ipsec.lifetime.value * 1024 * 0.9));
  }
  const conn: Record<string, unknown> = {
    version: v1 ? '1' : '2',
    ...(v1 && c.ike.phase1_negotiation_mode === 'aggressive' ? { aggressive: 'yes' } : {}),
    local_addrs: [gatewayIp],
    remote_addrs: [c.peer_address],
    proposals: [ikeProposal(c.ike)],
    // charon's own retry is replaced by the agent's re-initiate timer.
    keyingtries: '1',
    ...(c.ike.lifetime.units === 'seconds' ? { rekey_time: `${c.ike.lifetime.value}s` } : {}),
    ...(dpd ? { dpd_delay: `${c.dpd.interval}s`, ...(v1 ? { dpd_timeout: `${c.dpd.timeout}s` } : {}) } : {}),
    local: { auth: 'psk', id: gatewayIp },
    remote: { auth: 'psk', id: c.peer_id },
    children: { [c.id]: child },
  };
  return { [c.id]: conn };
}

/** The charon plugins for a backend: with libipsec, kernel-libipsec must come before kernel-netlink. */
export function charonPlugins(backend: 'kernel' | 'libipsec'): string {
  const crypto = 'random nonce openssl aes des sha1 sha2 md5 hmac xcbc cmac gcm ccm ctr gmp curve25519 kdf pem pkcs1 x509 pubkey';
  return `${crypto} ${backend === 'libipsec' ? 'kernel-libipsec ' : ''}kernel-netlink socket-default vici updown`;
}

/** The per-instance strongswan.conf: plugin order matters (kernel-libipsec before kernel-netlink). */
export function strongswanConf(dir: string, backend: 'kernel' | 'libipsec' = 'libipsec'): string {
  return `# Written by the Nucleon agent; one charon per router namespace.
charon {
  # Faster dead-peer detection than the defaults (minutes).
  retransmit_timeout = 1
  retransmit_tries = 2
  # No stroke (a shared /var/run/charon.ctl), no resolve (writes /etc/resolv.conf).
  # Backend ${backend}. With libipsec, kernel-libipsec comes before kernel-netlink:
  # the other way round XFRM takes the SAs, which a kernel without ESP cannot hold.
  load_modular = no
  load = ${charonPlugins(backend)}
  plugins {
    vici {
      socket = unix://${dir}/charon.vici
    }
  }
  filelog {
    log {
      path = ${dir}/charon.log
      time_format = %H:%M:%S
      default = 1
      ike = 2
      knl = 1
      flush_line = yes
    }
  }
  syslog {
    daemon {
      default = -1
    }
  }
}
charon-systemd {
  journal {
    default = -1
  }
}
swanctl {
  socket = unix://${dir}/charon.vici
}
`;
}

export interface IpsecCompileResult {
  instances: IpsecInstance[];
  /** namespace → unreachable routes for peer CIDRs. */
  routes: Map<string, Route[]>;
  /** Connections that could not be compiled (unsupported algorithm, no gateway): id → reason. */
  errors: Record<string, string>;
}

export function planIpsec(connections: ModelIpsecConnection[], routers: IpsecRouter[], stateDir: string, backend: 'kernel' | 'libipsec' = 'libipsec'): IpsecCompileResult {
  const byRouter = new Map(routers.map((r) => [r.router_id, r]));
  const instances: IpsecInstance[] = [];
  const routes = new Map<string, Route[]>();
  const errors: Record<string, string> = {};
  const grouped = new Map<string, ModelIpsecConnection[]>();
  for (const c of sortBy(connections, (c) => c.id)) {
    if (!byRouter.has(c.router_id)) continue; // router not served here
    const list = grouped.get(c.router_id) ?? [];
    list.push(c);
    grouped.set(c.router_id, list);
  }
  for (const [routerId, conns] of sortBy(grouped, ([id]) => id)) {
    const router = byRouter.get(routerId)!;
    // Every connection's peer CIDRs, admin-down ones included: down is exactly
    // when nothing may leave in clear.
    const cidrs = sortBy(new Set(conns.flatMap((c) => c.peer_cidrs)), (x) => x);
    routes.set(router.namespace, cidrs.map((destination) => ({ destination, type: 'unreachable', metric: IPSEC_UNREACHABLE_METRIC })));
    if (router.gatewayIp === null) {
      for (const c of conns) errors[c.id] = 'router has no IPv4 gateway address';
      continue;
    }
    const plans: IpsecConnectionPlan[] = [];
    for (const c of conns) {
      if (!c.admin_state_up) continue;
      try {
        plans.push({
          id: c.id,
          conn: connectionConfig(c, router.gatewayIp),
          secret: { id: `psk-${c.id}`, type: 'IKE', data: c.psk, owners: [router.gatewayIp, c.peer_id] },
          initiate: c.initiator === 'bi-directional',
          child: c.id,
        });
      } catch (e) {
        errors[c.id] = (e as Error).message;
      }
    }
    // A router whose connections are all admin-down runs no charon.
    if (plans.length === 0) continue;
    const dir = `${stateDir}/ipsec/${routerId}`;
    instances.push({ router_id: routerId, namespace: router.namespace, dir, strongswanConf: strongswanConf(dir, backend), connections: plans });
  }
  return { instances, routes, errors };
}
