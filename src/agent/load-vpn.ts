// The VPN part of the agent's model: every IPsec site connection with its
// policies resolved, its local and peer CIDRs (legacy subnet/peer_cidrs or the
// two endpoint groups) and its PSK opened. A handful of queries whatever the
// number of connections; call it inside load-model's snapshot transaction so
// it sees the same state as the rest of the model.
//
// A connection whose service or router is gone (a router deleted under its VPN
// service: the L3 service does not check for it yet) is skipped rather than
// half-built.
import type { Db, Tx } from '../store/database.ts';
import type { ModelIpsecConnection } from './model.ts';

/** Opens a sealed PSK (the secret box's decrypt). */
export type DecryptPsk = (sealed: string) => string;

export async function loadIpsecConnections(db: Db | Tx, decryptPsk: DecryptPsk): Promise<ModelIpsecConnection[]> {
  const conns = await db.selectFrom('vpn_ipsec_site_connections').selectAll().orderBy('id').execute();
  if (conns.length === 0) return [];
  const services = byId(await db.selectFrom('vpn_services').selectAll().execute());
  const ike = byId(await db.selectFrom('vpn_ikepolicies').selectAll().execute());
  const ipsec = byId(await db.selectFrom('vpn_ipsecpolicies').selectAll().execute());
  const groups = byId(await db.selectFrom('vpn_endpoint_groups').selectAll().execute());
  const subnets = new Map((await db.selectFrom('subnets').select(['id', 'cidr']).execute()).map((s) => [s.id, s.cidr]));
  const routers = new Set((await db.selectFrom('routers').select('id').execute()).map((r) => r.id));

  const out: ModelIpsecConnection[] = [];
  for (const c of conns) {
    const service = services.get(c.vpnservice_id);
    const ikePolicy = ike.get(c.ikepolicy_id);
    const ipsecPolicy = ipsec.get(c.ipsecpolicy_id);
    if (!service || !ikePolicy || !ipsecPolicy || !routers.has(service.router_id)) continue;
    const endpoints = (groupId: string | null) => (groupId ? JSON.parse(groups.get(groupId)?.endpoints ?? '[]') as string[] : []);
    const localSubnets = service.subnet_id ? [service.subnet_id] : endpoints(c.local_ep_group_id);
    out.push({
      id: c.id,
      vpnservice_id: service.id,
      router_id: service.router_id,
      admin_state_up: Boolean(c.admin_state_up) && Boolean(service.admin_state_up),
      peer_address: c.peer_address,
      peer_id: c.peer_id,
      local_cidrs: localSubnets.flatMap((s) => (subnets.has(s) ? [subnets.get(s)!] : [])),
      peer_cidrs: service.subnet_id ? JSON.parse(c.peer_cidrs) : endpoints(c.peer_ep_group_id),
      psk: decryptPsk(c.psk),
      mtu: c.mtu,
      initiator: c.initiator as ModelIpsecConnection['initiator'],
      dpd: JSON.parse(c.dpd),
      ike: {
        ike_version: ikePolicy.ike_version as 'v1' | 'v2',
        auth_algorithm: ikePolicy.auth_algorithm,
        encryption_algorithm: ikePolicy.encryption_algorithm,
        pfs: ikePolicy.pfs,
        phase1_negotiation_mode: ikePolicy.phase1_negotiation_mode as 'main' | 'aggressive',
        lifetime: JSON.parse(ikePolicy.lifetime),
      },
      ipsec: {
        transform_protocol: ipsecPolicy.transform_protocol as 'esp' | 'ah' | 'ah-esp',
        encapsulation_mode: ipsecPolicy.encapsulation_mode as 'tunnel' | 'transport',
        auth_algorithm: ipsecPolicy.auth_algorithm,
        encryption_algorithm: ipsecPolicy.encryption_algorithm,
        pfs: ipsecPolicy.pfs,
        lifetime: JSON.parse(ipsecPolicy.lifetime),
      },
    });
  }
  return out;
}

function byId<T extends { id: string }>(rows: T[]): Map<string, T> {
  return new Map(rows.map((r) => [r.id, r]));
}
