// Subnets: an address block on a network, with its gateway, allocation pools,
// DNS servers and host routes. The address rules are in ipam.ts; this file
// holds the policy (who may add subnets to which network) and the database
// side: overlap within the network, in-use checks on delete, the network's
// revision, and the SLAAC addresses a new IPv6 subnet gives existing ports.
import type { Expression, ExpressionBuilder, SqlBool } from 'kysely';
import type { Body } from '../resources/attributes.ts';
import { subnetDef } from '../resources/subnet.ts';
import type { AuthContext } from '../identity/context.ts';
import { owningProject } from '../identity/policy.ts';
import { lockRow, type Dialect, type Store, type Tx } from '../store/database.ts';
import {
  BadRequest, GatewayIpInUse, HTTPForbidden, InvalidInput, NetworkMTUSubnetConflict, OverlappingSubnet,
  PolicyNotAuthorized, ResourceNotFound, SubnetInUse,
} from '../errors.ts';
import { ResourceService, recordResourceChange } from './resource-service.ts';
import {
  bumped, bumpRevision, findVisibleRow, newId, now, type ResourceModel, type Row,
} from './resource-store.ts';
import { networkModel } from './networks.ts';
import { enforceQuota } from './quota-limits.ts';
import {
  AUTO_DELETE_PORT_OWNERS, ROUTER_INTERFACE_OWNERS, addAutoAddressesToPorts, formatNet, isAutoAddressSubnet, netOf,
  netsOverlap, parseCidr, parseIp, parseNet, parsePools, planAddressing, planAddressingUpdate, subnetInfo,
  validateSubnet, type HostRoute, type IpVersion, type PoolText,
} from './ipam.ts';

type Eb = ExpressionBuilder<any, any>;

/** Neutron's get_subnet: the owner, the network's owner, and everyone on shared or external networks. */
export const subnetModel: ResourceModel = {
  def: subnetDef,
  scope: (ctx, eb): Expression<SqlBool> => eb.or([
    eb('r.project_id', '=', ctx.projectId),
    eb('r.network_id', 'in', eb.selectFrom('networks as n').select('n.id').where((w: Eb) => w.or([
      w('n.project_id', '=', ctx.projectId), w('n.shared', '=', 1), w('n.router_external', '=', 1),
    ]))),
  ]),
};

/** The network a port or subnet goes on: invisible → NetworkNotFound (404). */
export async function visibleNetwork(tx: Tx, ctx: AuthContext, networkId: string): Promise<Row> {
  const row = await findVisibleRow(tx, networkModel, ctx, networkId);
  if (!row) throw new ResourceNotFound('network', networkId);
  return row;
}

/**
 * Neutron's _validate_network_tenant_ownership, run before policy: a port or
 * subnet of project P on a network that is neither shared nor P's is refused.
 */
export function checkNetworkTenantOwnership(ctx: AuthContext, network: Row, projectId: string, resource: 'port' | 'subnet'): void {
  if (ctx.isAdmin || network.shared) return;
  if (network.project_id !== projectId) {
    throw new HTTPForbidden(`Tenant ${projectId} not allowed to create ${resource} on this network`);
  }
}

/**
 * The row to update or delete, locked: like resource-store's loadForWrite, but
 * the owner of the network may act too when Neutron's rule says so
 * (ADMIN_OR_NET_OWNER_MEMBER for subnets, delete_port for ports).
 */
export async function loadForWriteOrNetworkOwner(
  tx: Tx, dialect: Dialect, model: ResourceModel, ctx: AuthContext, id: string, action: 'update' | 'delete',
): Promise<Row> {
  let q = (tx as any).selectFrom(`${model.def.table} as r`).selectAll('r').where('r.id', '=', id);
  if (dialect === 'postgres') q = q.forUpdate();
  const row = await q.executeTakeFirst() as Row | undefined;
  if (!row) throw new ResourceNotFound(model.def.name, id);
  if (ctx.isAdmin) return row;
  const rule = `rule:${action}_${model.def.name}`;
  const netOwner = await tx.selectFrom('networks').select('project_id').where('id', '=', row.network_id).executeTakeFirst();
  if (row.project_id === ctx.projectId || netOwner?.project_id === ctx.projectId) {
    if (!ctx.canWrite) throw new PolicyNotAuthorized(rule);
    return row;
  }
  if (!(await findVisibleRow(tx, model, ctx, id))) throw new ResourceNotFound(model.def.name, id);
  throw new PolicyNotAuthorized(rule);
}

/** IPv4 needs a network MTU of at least 68, IPv6 of 1280 (_validate_subnet_network_mtu). */
function checkNetworkMtu(network: Row, version: IpVersion): void {
  const mtu = network.mtu as number | null;
  if (!mtu || mtu >= 1280) return;
  if (mtu < 68) throw new NetworkMTUSubnetConflict(network.id, 68);
  if (version === 6) throw new NetworkMTUSubnetConflict(network.id, 1280);
}

export class SubnetService extends ResourceService {
  constructor(store: Store) {
    super(store, subnetModel);
  }

  protected async createOne(tx: Tx, ctx: AuthContext, body: Body): Promise<string> {
    const projectId = owningProject(ctx, body);
    const network = await visibleNetwork(tx, ctx, body.network_id as string);
    checkNetworkTenantOwnership(ctx, network, projectId, 'subnet');
    // create_subnet is ADMIN_OR_NET_OWNER_MEMBER: a shared network is not enough.
    if (!ctx.isAdmin && network.project_id !== ctx.projectId) throw new PolicyNotAuthorized('rule:create_subnet');
    await enforceQuota(tx, 'subnet', projectId);

    if (body.subnetpool_id) throw new ResourceNotFound('subnet_pool', body.subnetpool_id as string);
    if (body.cidr === undefined) throw new BadRequest('Bad subnets request: A cidr must be specified in the absence of a subnet pool.');
    const version = body.ip_version as IpVersion;
    const given = parseCidr(body.cidr)!;
    if (given.ip.version !== version) throw new InvalidInput(`cidr '${body.cidr}' does not match the ip_version '${version}'`);
    // Host bits are cleared, as Neutron does ("10.0.0.5/24" becomes 10.0.0.0/24).
    const net = netOf(given.ip, given.prefixlen);
    validateSubnet({
      ip_version: version, net,
      enable_dhcp: body.enable_dhcp as boolean,
      gateway_ip: body.gateway_ip as string | null | undefined,
      dns_nameservers: body.dns_nameservers as string[],
      host_routes: body.host_routes as HostRoute[],
      ipv6_ra_mode: body.ipv6_ra_mode as string | null,
      ipv6_address_mode: body.ipv6_address_mode as string | null,
    }, null, 'new subnet');

    // Serializes subnet creation per network, so two overlapping CIDRs cannot both pass the check below.
    await lockRow(tx, this.store.dialect, 'networks', network.id);
    checkNetworkMtu(network, version);
    const addressing = planAddressing(net, body.gateway_ip as string | null | undefined, body.allocation_pools as PoolText[] | undefined);
    if (net.prefixlen === 0) throw new InvalidInput('0 is not allowed as CIDR prefix length');
    const siblings = await tx.selectFrom('subnets').select(['id', 'cidr']).where('network_id', '=', network.id).execute();
    if (siblings.some((s) => netsOverlap(parseNet(s.cidr)!, net))) throw new OverlappingSubnet(formatNet(net), network.id);

    const id = newId();
    const ts = now();
    await tx.insertInto('subnets').values({
      id, project_id: projectId, name: body.name as string, description: body.description as string,
      created_at: ts, updated_at: ts, revision_number: 0,
      network_id: network.id, ip_version: version, cidr: formatNet(net),
      gateway_ip: addressing.gateway_ip, enable_dhcp: body.enable_dhcp ? 1 : 0,
      ipv6_ra_mode: (body.ipv6_ra_mode as string | null) ?? null,
      ipv6_address_mode: (body.ipv6_address_mode as string | null) ?? null,
      allocation_pools: JSON.stringify(addressing.allocation_pools),
      dns_nameservers: JSON.stringify(body.dns_nameservers ?? []),
      host_routes: JSON.stringify(body.host_routes ?? []),
      service_types: JSON.stringify(body.service_types ?? []),
      subnetpool_id: null,
    }).execute();

    // The network shows its subnets, so it changed too.
    await bumpRevision(tx, 'networks', network.id);
    await recordResourceChange(tx, this.store, 'networks', 'network', network.id, 'update');
    if (version === 6 && isAutoAddressSubnet(body as { ipv6_ra_mode?: string; ipv6_address_mode?: string })) {
      const row = await tx.selectFrom('subnets').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
      await this.portsChanged(tx, await addAutoAddressesToPorts(tx, this.store.dialect, subnetInfo(row)));
    }
    return id;
  }

  protected async updateOne(tx: Tx, _ctx: AuthContext, row: Row, body: Body): Promise<void> {
    const net = parseNet(row.cidr)!;
    const version = row.ip_version as IpVersion;
    validateSubnet({
      ip_version: version, net,
      enable_dhcp: body.enable_dhcp as boolean | undefined,
      gateway_ip: body.gateway_ip as string | null | undefined,
      dns_nameservers: body.dns_nameservers as string[] | undefined,
      host_routes: body.host_routes as HostRoute[] | undefined,
    }, { enable_dhcp: Boolean(row.enable_dhcp), ipv6_ra_mode: row.ipv6_ra_mode, ipv6_address_mode: row.ipv6_address_mode }, row.id);
    if ('gateway_ip' in body && body.gateway_ip !== row.gateway_ip && row.gateway_ip) {
      // A router interface holding the gateway pins it.
      const holder = await tx.selectFrom('ip_allocations as a').innerJoin('ports as p', 'p.id', 'a.port_id')
        .select('p.id').where('a.subnet_id', '=', row.id).where('a.ip_address', '=', row.gateway_ip)
        .where('p.device_owner', 'in', [...ROUTER_INTERFACE_OWNERS]).executeTakeFirst();
      if (holder) throw new GatewayIpInUse(row.gateway_ip, holder.id);
    }
    const addressing = planAddressingUpdate(
      net, parsePools(JSON.parse(row.allocation_pools), version), row.gateway_ip ? parseIp(row.gateway_ip)!.value : null,
      'gateway_ip' in body ? body.gateway_ip as string | null : undefined,
      body.allocation_pools as PoolText[] | undefined,
    );
    const set: Record<string, unknown> = {};
    for (const k of ['name', 'description'] as const) if (k in body) set[k] = body[k];
    if ('enable_dhcp' in body) set.enable_dhcp = body.enable_dhcp ? 1 : 0;
    if ('gateway_ip' in addressing) set.gateway_ip = addressing.gateway_ip;
    if (addressing.allocation_pools) set.allocation_pools = JSON.stringify(addressing.allocation_pools);
    for (const k of ['dns_nameservers', 'host_routes', 'service_types'] as const) if (k in body) set[k] = JSON.stringify(body[k] ?? []);
    await tx.updateTable('subnets').set({ ...set, ...bumped(row) }).where('id', '=', row.id).execute();
  }

  /**
   * Refused while a router interface or (outside SLAAC) a user port holds an
   * address; DHCP-like ports and SLAAC addresses are released with the subnet.
   */
  protected async deleteOne(tx: Tx, _ctx: AuthContext, row: Row): Promise<void> {
    const holders = await tx.selectFrom('ip_allocations as a').innerJoin('ports as p', 'p.id', 'a.port_id')
      .select(['p.id', 'p.device_owner']).where('a.subnet_id', '=', row.id).execute();
    if (holders.some((h) => ROUTER_INTERFACE_OWNERS.has(h.device_owner))) throw new SubnetInUse(row.id);
    if (!isAutoAddressSubnet(row) && holders.some((h) => !AUTO_DELETE_PORT_OWNERS.has(h.device_owner))) throw new SubnetInUse(row.id);
    await tx.deleteFrom('ip_allocations').where('subnet_id', '=', row.id).execute();
    await this.portsChanged(tx, [...new Set(holders.map((h) => h.id))]);
    await tx.deleteFrom('subnets').where('id', '=', row.id).execute();
    await bumpRevision(tx, 'networks', row.network_id);
    await recordResourceChange(tx, this.store, 'networks', 'network', row.network_id, 'update');
  }

  /** Ports whose fixed_ips a subnet change touched: new revision, change-feed entry. */
  private async portsChanged(tx: Tx, portIds: string[]): Promise<void> {
    for (let i = 0; i < portIds.length; i += 500) {
      const chunk = portIds.slice(i, i + 500);
      await tx.updateTable('ports').set((eb) => ({ revision_number: eb('revision_number', '+', 1), updated_at: now() }))
        .where('id', 'in', chunk).execute();
    }
    for (const id of portIds) await recordResourceChange(tx, this.store, 'ports', 'port', id, 'update');
  }

  /** The owner of the network may update and delete subnets on it (ADMIN_OR_NET_OWNER_MEMBER). */
  protected override lockForWrite(tx: Tx, ctx: AuthContext, id: string, action: 'update' | 'delete'): Promise<Row> {
    return loadForWriteOrNetworkOwner(tx, this.store.dialect, this.model, ctx, id, action);
  }
}
