// IPsec site connections: a tunnel from a VPN service's router to a peer,
// with its IKE and IPsec policies and the local and peer networks (legacy:
// the service's subnet and peer_cidrs; otherwise two endpoint groups). Create
// and update run neutron-vpnaas's validation over the resulting connection,
// in its order. The PSK is sealed with the secret box before it is stored and
// opened only to render the connection for its project (or an admin) and for
// the agent (load-vpn.ts).
import dns from 'node:dns/promises';
import type { Body } from '../../resources/attributes.ts';
import { ipsecSiteConnectionDef, type Dpd } from '../../resources/vpn.ts';
import type { AuthContext } from '../../identity/context.ts';
import { owningProject } from '../../identity/policy.ts';
import {
  ExternalNetworkHasNoSubnet, ResourceNotFound, SubnetIsNotConnectedToRouter, VPNPeerAddressNotResolved,
} from '../../errors.ts';
import type { Store, Tx } from '../../store/database.ts';
import { ResourceService } from '../resource-service.ts';
import { bumped, newId, now, type Row, type Wire } from '../resource-store.ts';
import { enforceQuota } from '../quota-limits.ts';
import { parseIp, type IpVersion } from '../ipam.ts';
import type { SecretBox } from '../secret-box.ts';
import {
  checkCompatibleVersions, checkConnectionShape, checkDpd, checkGroupType, checkMtu, checkNoOverlap, groupIpVersion,
  mergeDpd, peerCidrsIpVersion,
} from './rules.ts';
import { ownerModel, referenced, transition } from './common.ts';
import { ikePolicyModel, ipsecPolicyModel } from './policies.ts';
import { gatewayIps, subnetOnRouter, vpnServiceModel } from './vpnservices.ts';
import { endpointGroupModel } from './endpoint-groups.ts';

/** What the validation looks at: the connection as it will be stored. */
interface Candidate {
  peer_address: string;
  mtu: number;
  dpd: Dpd;
  peer_cidrs: string[];
  local_ep_group_id: string | null;
  peer_ep_group_id: string | null;
}

/** Attributes whose change the agent must apply (others, name and description, leave the status alone). */
const DATA_PLANE = ['peer_address', 'peer_id', 'local_id', 'mtu', 'psk', 'initiator', 'dpd', 'admin_state_up', 'peer_cidrs', 'local_ep_group_id', 'peer_ep_group_id'];

export function connectionModel(box: SecretBox) {
  return ownerModel(ipsecSiteConnectionDef, {
    // Whoever may see the connection is its project or an admin (owner-only scope), and neutron-vpnaas shows them the PSK.
    async expand(_db, rows) {
      return new Map(rows.map((r) => [r.id as string, { psk: box.decrypt(r.psk) } as Wire]));
    },
  });
}

/**
 * resolve_peer_address: an address as it is, a name resolved once (Neutron
 * stores the address it found).
 */
export async function resolvePeer(address: string): Promise<string> {
  if (parseIp(address)) return address;
  try {
    return (await dns.lookup(address)).address;
  } catch {
    throw new VPNPeerAddressNotResolved(address);
  }
}

export class IpsecSiteConnectionService extends ResourceService {
  constructor(store: Store, private readonly box: SecretBox) {
    super(store, connectionModel(box));
  }

  protected async createOne(tx: Tx, ctx: AuthContext, body: Body): Promise<string> {
    const projectId = owningProject(ctx, body);
    await enforceQuota(tx, 'ipsec_site_connection', projectId);
    const dialect = this.store.dialect;
    const service = await referenced(tx, dialect, vpnServiceModel, ctx, body.vpnservice_id as string);
    await referenced(tx, dialect, ikePolicyModel, ctx, body.ikepolicy_id as string);
    await referenced(tx, dialect, ipsecPolicyModel, ctx, body.ipsecpolicy_id as string);
    const candidate: Candidate = {
      peer_address: body.peer_address as string, mtu: body.mtu as number, dpd: mergeDpd(body.dpd as Partial<Dpd>),
      peer_cidrs: body.peer_cidrs as string[], local_ep_group_id: body.local_ep_group_id as string | null,
      peer_ep_group_id: body.peer_ep_group_id as string | null,
    };
    const peerAddress = await this.validate(tx, ctx, service, candidate);
    const id = newId();
    const ts = now();
    await tx.insertInto('vpn_ipsec_site_connections').values({
      id, project_id: projectId, name: body.name as string, description: body.description as string,
      peer_address: peerAddress, peer_id: body.peer_id as string, local_id: body.local_id as string,
      route_mode: 'static', mtu: candidate.mtu, auth_mode: 'psk', psk: this.box.encrypt(body.psk as string),
      initiator: body.initiator as string, dpd: JSON.stringify(candidate.dpd), admin_state_up: body.admin_state_up ? 1 : 0,
      status: 'PENDING_CREATE', vpnservice_id: service.id, ikepolicy_id: body.ikepolicy_id as string,
      ipsecpolicy_id: body.ipsecpolicy_id as string, peer_cidrs: JSON.stringify(candidate.peer_cidrs),
      local_ep_group_id: candidate.local_ep_group_id, peer_ep_group_id: candidate.peer_ep_group_id,
      created_at: ts, updated_at: ts, revision_number: 1,
    }).execute();
    return id;
  }

  /** The update merged over the stored connection, validated as a whole; data-plane changes go back to pending. */
  protected async updateOne(tx: Tx, ctx: AuthContext, row: Row, body: Body): Promise<void> {
    const touchesDataPlane = DATA_PLANE.some((k) => k in body);
    const status = touchesDataPlane ? transition(row.id, row.status, { kind: 'update' }) : row.status;
    const candidate: Candidate = {
      peer_address: (body.peer_address as string | undefined) ?? row.peer_address,
      mtu: (body.mtu as number | undefined) ?? row.mtu,
      dpd: mergeDpd(body.dpd as Partial<Dpd> | undefined, JSON.parse(row.dpd)),
      peer_cidrs: (body.peer_cidrs as string[] | undefined) ?? JSON.parse(row.peer_cidrs),
      local_ep_group_id: 'local_ep_group_id' in body ? body.local_ep_group_id as string | null : row.local_ep_group_id,
      peer_ep_group_id: 'peer_ep_group_id' in body ? body.peer_ep_group_id as string | null : row.peer_ep_group_id,
    };
    const service = await tx.selectFrom('vpn_services').selectAll().where('id', '=', row.vpnservice_id).executeTakeFirstOrThrow();
    const peerAddress = await this.validate(tx, ctx, service, candidate);
    const set: Record<string, unknown> = { status };
    for (const k of ['name', 'description', 'peer_id', 'local_id', 'initiator'] as const) if (k in body) set[k] = body[k];
    if ('admin_state_up' in body) set.admin_state_up = body.admin_state_up ? 1 : 0;
    if ('psk' in body) set.psk = this.box.encrypt(body.psk as string);
    Object.assign(set, {
      peer_address: peerAddress, mtu: candidate.mtu, dpd: JSON.stringify(candidate.dpd), peer_cidrs: JSON.stringify(candidate.peer_cidrs),
      local_ep_group_id: candidate.local_ep_group_id, peer_ep_group_id: candidate.peer_ep_group_id,
    });
    await tx.updateTable('vpn_ipsec_site_connections').set({ ...set, ...bumped(row) }).where('id', '=', row.id).execute();
  }

  /**
   * The row goes at once; its delete in the change feed is what tells the
   * agent to tear the tunnel down (no PENDING_DELETE row is kept).
   */
  protected async deleteOne(tx: Tx, _ctx: AuthContext, row: Row): Promise<void> {
    await tx.deleteFrom('vpn_ipsec_site_connections').where('id', '=', row.id).execute();
  }

  /**
   * validate_ipsec_conn_optional_args, then validate_ipsec_site_connection:
   * local and peer networks (types, IP versions, the local subnets on the
   * router), DPD, MTU for the IP version, and the peer address against the
   * router's gateway. Returns the peer address to store.
   */
  private async validate(tx: Tx, ctx: AuthContext, service: Row, c: Candidate): Promise<string> {
    checkConnectionShape(c, Boolean(service.subnet_id));
    let localCidrs: string[];
    let localVersion: IpVersion;
    if (service.subnet_id) {
      const subnet = await tx.selectFrom('subnets').select(['cidr', 'ip_version']).where('id', '=', service.subnet_id).executeTakeFirst();
      // The service's subnet was deleted under it: as neutron-vpnaas would find no subnet.
      if (!subnet) throw new ResourceNotFound('subnet', service.subnet_id);
      localCidrs = [subnet.cidr];
      localVersion = subnet.ip_version as IpVersion;
    } else {
      const group = await referenced(tx, this.store.dialect, endpointGroupModel, ctx, c.local_ep_group_id!);
      checkGroupType(group.id, group.type, 'subnet');
      const subnetIds = JSON.parse(group.endpoints) as string[];
      const subnets = await tx.selectFrom('subnets').select(['id', 'cidr']).where('id', 'in', subnetIds).execute();
      localCidrs = subnets.map((s) => s.cidr);
      localVersion = groupIpVersion(group.id, localCidrs);
      for (const s of subnetIds) {
        if (!(await subnetOnRouter(tx, service.router_id, s))) throw new SubnetIsNotConnectedToRouter(s, service.router_id);
      }
    }
    let peerCidrs: string[];
    let peerVersion: IpVersion;
    if (service.subnet_id) {
      peerCidrs = c.peer_cidrs;
      peerVersion = peerCidrsIpVersion(peerCidrs);
    } else {
      const group = await referenced(tx, this.store.dialect, endpointGroupModel, ctx, c.peer_ep_group_id!);
      checkGroupType(group.id, group.type, 'cidr');
      peerCidrs = JSON.parse(group.endpoints) as string[];
      peerVersion = groupIpVersion(group.id, peerCidrs);
    }
    checkCompatibleVersions(localVersion, peerVersion);
    checkNoOverlap(localCidrs, peerCidrs);
    checkDpd(c.dpd);
    checkMtu(c.mtu, localVersion);
    const peer = await resolvePeer(c.peer_address);
    const version = parseIp(peer)!.version;
    const gw = (await gatewayIps(tx, [service.router_id])).get(service.router_id) ?? [];
    if (!gw.some((ip) => parseIp(ip)?.version === version)) throw new ExternalNetworkHasNoSubnet(service.router_id, version);
    return peer;
  }
}
