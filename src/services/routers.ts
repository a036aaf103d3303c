// Routers: the row keeps what is not a port (name, state, SNAT, extra routes,
// distributed/ha); interfaces and the gateway are ports with device_id = the
// router's id, created and deleted through the port service inside the
// router's transaction, so addresses stay in one IPAM and every change lands
// in the change feed with the router's.
//
// Every change to a router's attachments runs with the router row locked
// (FOR UPDATE on PostgreSQL; SQLite transactions are serial): two interfaces
// with overlapping subnets added concurrently, or an interface removed while a
// floating IP is being mapped through it, are decided one after the other.
import type { Body } from '../resources/attributes.ts';
import { GATEWAY_KEYS, routerDef, type GatewayInfo } from '../resources/router.ts';
import type { FixedIpInput } from '../resources/port.ts';
import type { AuthContext } from '../identity/context.ts';
import { owningProject } from '../identity/policy.ts';
import type { Store, Tx } from '../store/database.ts';
import {
  BadRequest, InvalidRoutes, OverQuota, PolicyNotAuthorized, PortInUse, ResourceNotFound, RouterExternalGatewayInUseByFloatingIp, RouterInUseByVPNService, SubnetInUseByVPNService,
  RouterInUse, RouterInterfaceInUseByFloatingIP, RouterInterfaceInUseByRoute, RouterInterfaceNotFound,
  RouterInterfaceNotFoundForSubnet, RouterNotFound, SubnetMismatchForPort, badRequest,
} from '../errors.ts';
import { ResourceService, recordResourceChange } from './resource-service.ts';
import {
  bumpRevision, bumped, findVisibleRow, newId, now, type ResourceModel, type Row, type Wire,
} from './resource-store.ts';
import { enforceQuota } from './quota-limits.ts';
import { subnetModel, visibleNetwork } from './subnets.ts';
import { portModel, type PortService } from './ports.ts';
import {
  DEVICE_OWNER_ROUTER_GW, DEVICE_OWNER_ROUTER_INTF, actingFor, createServicePort, portChanged,
} from './floating-ips.ts';
import {
  ROUTER_INTERFACE_OWNERS, ROUTER_PORT_OWNERS, canonicalIp, lockNetworkSubnets, netContains, netsOverlap, parseIp,
  parseNet, parsePools, updateFixedIps, type FixedIp, type FixedIpRequest, type HostRoute, type IpVersion,
} from './ipam.ts';

/** neutron.conf quota_router_route: routes per router. */
export const MAX_ROUTES = 30;

// ------------------------------------------------------------- pure rules

export interface RouterSubnet { id: string; cidr: string }

/**
 * Neutron's _check_for_dup_router_subnets: a subnet the router already has an
 * address on cannot be attached again, and no new subnet may overlap one the
 * router is attached to (for the gateway, every subnet of its network).
 */
export function subnetConflict(attachedSubnetIds: string[], routerSubnets: RouterSubnet[], added: RouterSubnet[]): BadRequest | null {
  const addedIds = new Set(added.map((s) => s.id));
  const dup = attachedSubnetIds.find((id) => addedIds.has(id));
  if (dup) return badRequest('router', `Router already has a port on subnet ${dup}`);
  for (const existing of routerSubnets) {
    for (const s of added) {
      if (netsOverlap(parseNet(existing.cidr)!, parseNet(s.cidr)!)) {
        return badRequest('router', `Cidr ${s.cidr} of subnet ${s.id} overlaps with cidr ${existing.cidr} of subnet ${existing.id}`);
      }
    }
  }
  return null;
}

/** Python's repr of a route list, as InvalidRoutes quotes it. */
export function pyRoutes(routes: HostRoute[]): string {
  return `[${routes.map((r) => `{'destination': '${r.destination}', 'nexthop': '${r.nexthop}'}`).join(', ')}]`;
}

/**
 * extraroute's _validate_routes_nexthop: every nexthop on a subnet the router
 * is attached to, and none of them the router's own address. Returns the
 * reason of the first violation, or null.
 */
export function routesError(routes: HostRoute[], attachedCidrs: string[], routerIps: string[]): string | null {
  const nets = attachedCidrs.map((c) => parseNet(c)!);
  const own = new Set(routerIps.map(canonicalIp));
  for (const r of routes) {
    const hop = parseIp(r.nexthop)!;
    if (!nets.some((n) => netContains(n, hop))) return 'the nexthop is not connected with router';
    if (own.has(canonicalIp(r.nexthop))) return 'the nexthop is used by router';
  }
  return null;
}

/** Whether some route goes through the subnet (extraroute's _confirm_router_interface_not_in_use). */
export function routesThrough(routes: HostRoute[], cidr: string): boolean {
  const net = parseNet(cidr)!;
  return routes.some((r) => netContains(net, parseIp(r.nexthop)!));
}

export interface InterfaceRequest { portId?: string; subnetId?: string }
const UUID_RE = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

/** Neutron's _validate_interface_info: one of port_id and subnet_id (both only when removing), as UUIDs. */
export function interfaceRequest(body: unknown, forRemoval: boolean): InterfaceRequest {
  const info = body !== null && typeof body === 'object' && !Array.isArray(body) ? body as Record<string, unknown> : {};
  const hasPort = 'port_id' in info;
  const hasSubnet = 'subnet_id' in info;
  if (!hasPort && !hasSubnet) throw badRequest('router', 'Either subnet_id or port_id must be specified');
  const out: InterfaceRequest = {};
  for (const key of ['port_id', 'subnet_id'] as const) {
    if (!(key in info)) continue;
    const v = info[key];
    if (typeof v !== 'string' || !UUID_RE.test(v)) throw badRequest('router', `'${v === null ? 'None' : String(v)}' is not a valid UUID`);
    if (key === 'port_id') out.portId = v.toLowerCase(); else out.subnetId = v.toLowerCase();
  }
  if (!forRemoval && hasPort && hasSubnet) throw badRequest('router', 'Cannot specify both subnet-id and port-id');
  return out;
}

/** Neutron's _check_for_external_ip_change: only asked-for addresses count, by subnet set and address set. */
export function externalIpsChanged(current: FixedIp[], requested: FixedIpInput[]): boolean {
  if (requested.length === 0) return false;
  const same = (a: Set<string>, b: Set<string>) => a.size === b.size && [...a].every((x) => b.has(x));
  const subnetsNow = new Set(current.map((f) => f.subnet_id));
  const subnetsWanted = new Set(requested.flatMap((f) => (f.subnet_id ? [f.subnet_id] : [])));
  if (!same(subnetsNow, subnetsWanted)) return true;
  return !same(new Set(current.map((f) => f.ip_address)), new Set(requested.flatMap((f) => (f.ip_address ? [f.ip_address] : []))));
}

/**
 * The policy rule Neutron composes for a router write (neutron/policy.py
 * _build_match_rule): external_gateway_info with a rule per sub-attribute
 * present, enable_snat and external_fixed_ips only for admins; distributed
 * and ha only for admins. oslo.policy prints the whole composed rule.
 */
export function authorizeRouterWrite(ctx: AuthContext, action: 'create' | 'update', raw: Body): void {
  let rule = `rule:${action}_router`;
  let refused = !ctx.isAdmin && !ctx.canWrite;
  for (const name of ['external_gateway_info', 'distributed', 'ha'] as const) {
    if (!(name in raw)) continue;
    const value = raw[name];
    let attrRule = `rule:${action}_router:${name}`;
    if (name === 'external_gateway_info') {
      // null is the default, so not "explicitly set" on create; on update every given key counts.
      if (action === 'create' && !value) continue;
      if (value !== null && typeof value === 'object') {
        const subs = GATEWAY_KEYS.filter((k) => k in (value as object));
        attrRule = `(${attrRule} and (${subs.map((k) => `rule:${action}_router:${name}:${k}`).join(' and ')}))`;
        if (!ctx.isAdmin && subs.some((k) => k !== 'network_id')) refused = true;
      }
    } else if (!ctx.isAdmin) {
      refused = true;
    }
    rule = `(${rule} and ${attrRule})`;
  }
  if (refused) throw new PolicyNotAuthorized(rule);
}

// ------------------------------------------------------------------ model

/** Neutron's get_router: the owner (and admins). */
export const routerModel: ResourceModel = {
  def: routerDef,
  scope: (ctx, eb) => eb('r.project_id', '=', ctx.projectId),
  /** external_gateway_info from the gateway ports (their fixed_ips in port order), in one query. */
  async expand(db, rows, ctx) {
    const gwPorts = rows.filter((r) => r.gw_port_id).map((r) => ({ id: r.gw_port_id as string }));
    const ports = gwPorts.length ? await portModel.expand!(db, gwPorts, ctx) : new Map<string, Wire>();
    return new Map(rows.map((r) => [r.id as string, {
      external_gateway_info: r.gw_port_id
        ? { network_id: r.gw_network_id, external_fixed_ips: ports.get(r.gw_port_id)?.fixed_ips ?? [], enable_snat: Boolean(r.enable_snat) }
        : null,
      availability_zones: [],
      flavor_id: null,
    }]));
  },
};

export interface InterfaceInfo {
  id: string;
  tenant_id: string;
  port_id: string;
  network_id: string;
  /** Deprecated by IPv6 multi-prefix ports, as in Neutron; null only for a port that lost all its addresses. */
  subnet_id: string | null;
  subnet_ids: string[];
  project_id: string;
}

/** The reply of add/remove_router_interface: the sample's keys (tenant_id), then project_id as newer Neutron names it. */
function interfaceInfo(routerId: string, port: Row, subnetIds: string[], subnetId: string | null): InterfaceInfo {
  return {
    id: routerId, tenant_id: port.project_id, port_id: port.id, network_id: port.network_id,
    subnet_id: subnetId, subnet_ids: subnetIds, project_id: port.project_id,
  };
}

interface Attachment { port_id: string; device_owner: string; network_id: string; subnet_id: string; ip_address: string; cidr: string; ip_version: number }

type SubnetRow = Row & { id: string; cidr: string; network_id: string; project_id: string; gateway_ip: string | null; ip_version: number };

/** _validate_subnet_address_mode: IPv6 subnets advertised by an outside router cannot be attached. */
function checkAddressMode(subnet: SubnetRow): void {
  if (subnet.ip_version === 6 && subnet.ipv6_ra_mode === null && subnet.ipv6_address_mode !== null) {
    throw badRequest('router', `IPv6 subnet ${subnet.id} configured to receive RAs from an external router cannot be added to Neutron Router.`);
  }
}

export class RouterService extends ResourceService {
  constructor(store: Store, private readonly ports: PortService) {
    super(store, routerModel);
  }

  // ------------------------------------------------------------ CRUD

  /** external_gateway_info's enable_snat and external_fixed_ips are admin-only, nested in the body. */
  protected override authorize(ctx: AuthContext, action: 'create' | 'update' | 'delete', raw: Body = {}): void {
    if (action === 'delete') super.authorize(ctx, action);
    else authorizeRouterWrite(ctx, action, raw);
  }

  protected async createOne(tx: Tx, ctx: AuthContext, body: Body): Promise<string> {
    const projectId = owningProject(ctx, body);
    if (body.flavor_id) throw new ResourceNotFound('flavor', body.flavor_id as string);
    await enforceQuota(tx, 'router', projectId);
    const id = newId();
    const ts = now();
    await tx.insertInto('routers').values({
      id, project_id: projectId, name: body.name as string, description: body.description as string,
      admin_state_up: body.admin_state_up ? 1 : 0, status: 'ACTIVE',
      // neutron.conf router_distributed and l3_ha default to False.
      distributed: body.distributed ? 1 : 0, ha: body.ha ? 1 : 0,
      gw_network_id: null, gw_port_id: null, enable_snat: 1, routes: '[]',
      availability_zone_hints: JSON.stringify(body.availability_zone_hints ?? []),
      created_at: ts, updated_at: ts, revision_number: 1,
    }).execute();
    if (body.external_gateway_info) {
      const router = await tx.selectFrom('routers').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
      await tx.updateTable('routers').set(await this.changeGateway(tx, ctx, router, body.external_gateway_info as GatewayInfo))
        .where('id', '=', id).execute();
    }
    return id;
  }

  protected async updateOne(tx: Tx, ctx: AuthContext, row: Row, body: Body): Promise<void> {
    const set: Record<string, unknown> = {};
    for (const k of ['name', 'description'] as const) if (k in body) set[k] = body[k];
    if ('admin_state_up' in body) set.admin_state_up = body.admin_state_up ? 1 : 0;
    const upBefore = Boolean(row.admin_state_up);
    const upAfter = 'admin_state_up' in body ? Boolean(body.admin_state_up) : upBefore;
    // Changing the kind of router needs it down (l3_dvr_db / l3_hamode_db migration checks).
    if (body.distributed !== undefined && body.distributed !== null && Boolean(body.distributed) !== Boolean(row.distributed)) {
      if (upBefore || upAfter) {
        throw badRequest('router', "Cannot change the 'distributed' attribute of active routers. Please set router admin_state_up to False prior to upgrade");
      }
      set.distributed = body.distributed ? 1 : 0;
    }
    if (body.ha !== undefined && body.ha !== null && Boolean(body.ha) !== Boolean(row.ha)) {
      if (upAfter) throw badRequest('router', 'Cannot change HA attribute of active routers. Please set router admin_state_up to False prior to upgrade');
      set.ha = body.ha ? 1 : 0;
    }
    let gatewayChanged = false;
    if ('external_gateway_info' in body) {
      Object.assign(set, await this.changeGateway(tx, ctx, row, body.external_gateway_info as GatewayInfo | null));
      gatewayChanged = true;
    }
    const routes = 'routes' in body ? body.routes as HostRoute[] : JSON.parse(row.routes) as HostRoute[];
    if ('routes' in body || (gatewayChanged && routes.length)) {
      // Checked against what the router is attached to once this update is done (gateway included).
      const attached = await this.attachments(tx, row.id);
      const reason = routesError(routes, attached.map((a) => a.cidr), attached.map((a) => a.ip_address));
      if (reason) throw new InvalidRoutes(pyRoutes(routes), reason);
      if (routes.length > MAX_ROUTES) throw new OverQuota('router_route');
      set.routes = JSON.stringify(routes);
    }
    await tx.updateTable('routers').set({ ...set, ...bumped(row) }).where('id', '=', row.id).execute();
  }

  /** Refused while interfaces remain; the gateway port goes with the router. */
  protected async deleteOne(tx: Tx, _ctx: AuthContext, row: Row): Promise<void> {
    const interfaces = await tx.selectFrom('ports').select('id').where('device_id', '=', row.id)
      .where('device_owner', 'in', [...ROUTER_INTERFACE_OWNERS]).orderBy('created_at').orderBy('id').execute();
    if (interfaces.length) throw new RouterInUse(row.id, `has ports still attached: ${interfaces.map((p) => p.id).join(', ')}`);
    await this.assertNoVpnService(tx, row);
    if (row.gw_port_id) {
      await this.assertGatewayNotNeeded(tx, row);
      await this.ports.deleteWithin(tx, actingFor(row.project_id), row.gw_port_id);
    }
    await tx.deleteFrom('routers').where('id', '=', row.id).execute();
  }

  /**
   * The router row for a write, locked: another project's router is as absent
   * as a missing one (404, Neutron's _item); a reader is refused the action.
   */
  private async lockRouter(tx: Tx, ctx: AuthContext, id: string, rule: string): Promise<Row> {
    let q = tx.selectFrom('routers').selectAll().where('id', '=', id);
    if (this.store.dialect === 'postgres') q = q.forUpdate();
    const row = await q.executeTakeFirst();
    if (!row || (!ctx.isAdmin && row.project_id !== ctx.projectId)) throw new RouterNotFound(id);
    if (!ctx.isAdmin && !ctx.canWrite) throw new PolicyNotAuthorized(rule);
    return row;
  }

  // --------------------------------------------------------- gateway

  /**
   * Neutron's _update_router_gw_info: new addresses on the same network
   * re-address the gateway port in place; another network (or none) replaces
   * the port, refused while floating IPs go through this router. Returns the
   * router columns to store; enable_snat falls back to its default whenever it
   * is not given (ext-gw-mode).
   */
  private async changeGateway(tx: Tx, ctx: AuthContext, router: Row, info: GatewayInfo | null): Promise<Record<string, unknown>> {
    const networkId = info?.network_id ?? null;
    const wantedIps = info?.external_fixed_ips ?? [];
    const cols: Record<string, unknown> = { enable_snat: info?.enable_snat ?? true ? 1 : 0 };
    if (networkId) {
      const network = await visibleNetwork(tx, ctx, networkId);
      if (!network.router_external) throw badRequest('router', `Network ${networkId} is not an external network`);
      const gateways = new Set((await tx.selectFrom('subnets').select('gateway_ip').where('network_id', '=', networkId).execute())
        .flatMap((s) => (s.gateway_ip ? [s.gateway_ip] : [])));
      const onGateway = wantedIps.find((f) => f.ip_address && gateways.has(f.ip_address));
      if (onGateway) throw badRequest('router', `External IP ${onGateway.ip_address} is the same as the gateway IP`);
    }
    const gwPort = router.gw_port_id
      ? await tx.selectFrom('ports').selectAll().where('id', '=', router.gw_port_id).executeTakeFirst()
      : undefined;
    if (gwPort && networkId === router.gw_network_id) {
      const current = await tx.selectFrom('ip_allocations').select(['subnet_id', 'ip_address']).where('port_id', '=', gwPort.id).execute();
      if (externalIpsChanged(current, wantedIps)) await this.readdressPort(tx, gwPort, wantedIps);
      return cols;
    }
    if (gwPort) {
      await this.assertGatewayNotNeeded(tx, router);
      await this.ports.deleteWithin(tx, actingFor(router.project_id), gwPort.id);
      Object.assign(cols, { gw_port_id: null, gw_network_id: null });
    }
    if (networkId) {
      const subnets = await tx.selectFrom('subnets').select(['id', 'cidr']).where('network_id', '=', networkId).orderBy('created_at').orderBy('id').execute();
      await this.checkNewSubnets(tx, router.id, subnets, null);
      const portId = await createServicePort(tx, this.ports, {
        network_id: networkId, device_id: router.id, device_owner: DEVICE_OWNER_ROUTER_GW,
        ...(wantedIps.length ? { fixed_ips: wantedIps } : {}),
      });
      Object.assign(cols, { gw_port_id: portId, gw_network_id: networkId });
    }
    return cols;
  }

  /** Neutron's router_gw_port_has_floating_ips: a gateway that floating IPs go through stays. */
  private async assertGatewayNotNeeded(tx: Tx, router: Row): Promise<void> {
    const fip = await tx.selectFrom('floatingips').select('id').where('router_id', '=', router.id).limit(1).executeTakeFirst();
    if (fip) throw new RouterExternalGatewayInUseByFloatingIp(router.id, router.gw_network_id);
    // A VPN service's tunnels leave from the gateway address (neutron-vpnaas's router check).
    await this.assertNoVpnService(tx, router);
  }

  private async assertNoVpnService(tx: Tx, router: Row): Promise<void> {
    const vpn = await tx.selectFrom('vpn_services').select('id').where('router_id', '=', router.id).limit(1).executeTakeFirst();
    if (vpn) throw new RouterInUseByVPNService(router.id, vpn.id);
  }

  /**
   * A subnet a VPN service on this router tunnels for: the legacy service
   * subnet, or a subnet in the local endpoint group of one of its connections.
   */
  private async assertSubnetNotInVpn(tx: Tx, router: Row, subnetId: string): Promise<void> {
    const legacy = await tx.selectFrom('vpn_services').select('id').where('router_id', '=', router.id)
      .where('subnet_id', '=', subnetId).limit(1).executeTakeFirst();
    if (legacy) throw new SubnetInUseByVPNService(subnetId, legacy.id);
    const groups = await tx.selectFrom('vpn_ipsec_site_connections as c')
      .innerJoin('vpn_services as v', 'v.id', 'c.vpnservice_id')
      .innerJoin('vpn_endpoint_groups as g', 'g.id', 'c.local_ep_group_id')
      .select(['v.id as vpnservice_id', 'g.endpoints']).where('v.router_id', '=', router.id).execute();
    const using = groups.find((g) => (JSON.parse(g.endpoints) as string[]).includes(subnetId));
    if (using) throw new SubnetInUseByVPNService(subnetId, using.vpnservice_id);
  }

  // ------------------------------------------------------ interfaces

  /** Every address the router holds, with its subnet (interfaces and gateway). */
  private async attachments(tx: Tx, routerId: string): Promise<Attachment[]> {
    return tx.selectFrom('ports as p').innerJoin('ip_allocations as a', 'a.port_id', 'p.id').innerJoin('subnets as s', 's.id', 'a.subnet_id')
      .select(['p.id as port_id', 'p.device_owner', 'p.network_id', 'a.subnet_id', 'a.ip_address', 's.cidr', 's.ip_version'])
      .where('p.device_id', '=', routerId).where('p.device_owner', 'in', [...ROUTER_PORT_OWNERS])
      .orderBy('p.created_at').orderBy('p.id').execute();
  }

  /** subnetConflict over the router's current attachments (all but `exceptPort`); throws Neutron's BadRequest. */
  private async checkNewSubnets(tx: Tx, routerId: string, added: RouterSubnet[], exceptPort: string | null): Promise<void> {
    const attached = (await this.attachments(tx, routerId)).filter((a) => a.port_id !== exceptPort);
    const routerSubnets: RouterSubnet[] = [];
    const seen = new Set<string>();
    const push = (s: RouterSubnet) => { if (!seen.has(s.id)) { seen.add(s.id); routerSubnets.push(s); } };
    for (const a of attached) {
      if (a.device_owner !== DEVICE_OWNER_ROUTER_GW) { push({ id: a.subnet_id, cidr: a.cidr }); continue; }
      // Through the gateway the router reaches every subnet of the external network.
      const ext = await tx.selectFrom('subnets').select(['id', 'cidr']).where('network_id', '=', a.network_id).orderBy('created_at').orderBy('id').execute();
      ext.forEach(push);
    }
    const conflict = subnetConflict(attached.map((a) => a.subnet_id), routerSubnets, added);
    if (conflict) throw conflict;
  }

  /** New fixed IPs for a router's own port (multi-prefix IPv6 interfaces, gateway addresses). */
  private async readdressPort(tx: Tx, port: Row, requested: FixedIpRequest[]): Promise<void> {
    const subnets = await lockNetworkSubnets(tx, this.store.dialect, port.network_id);
    const current = await tx.selectFrom('ip_allocations').select(['subnet_id', 'ip_address']).where('port_id', '=', port.id).execute();
    const addressing = { id: port.id, network_id: port.network_id, mac_address: port.mac_address, device_owner: port.device_owner };
    await updateFixedIps(tx, addressing, subnets, current, requested);
    await portChanged(tx, this.store, port.id);
  }

  /** The subnet named in an interface request: visible to the caller, else SubnetNotFound. */
  private async visibleSubnet(tx: Tx, ctx: AuthContext, id: string): Promise<SubnetRow> {
    const row = await findVisibleRow(tx, subnetModel, ctx, id);
    if (!row) throw new ResourceNotFound('subnet', id);
    return row as SubnetRow;
  }

  /** PUT /v2.0/routers/{id}/add_router_interface */
  async addInterface(ctx: AuthContext, routerId: string, body: unknown): Promise<InterfaceInfo> {
    return this.store.transaction(async (tx) => {
      const router = await this.lockRouter(tx, ctx, routerId, 'rule:add_router_interface');
      const req = interfaceRequest(body, false);
      const info = req.portId ? await this.addByPort(tx, ctx, router, req.portId) : await this.addBySubnet(tx, ctx, router, req.subnetId!);
      await this.routerChanged(tx, router.id);
      return info;
    });
  }

  private async addBySubnet(tx: Tx, ctx: AuthContext, router: Row, subnetId: string): Promise<InterfaceInfo> {
    const subnet = await this.visibleSubnet(tx, ctx, subnetId);
    if (!subnet.gateway_ip) throw badRequest('router', 'Subnet for router interface must have a gateway IP');
    // A globally shared network is not enough to attach another project's subnet (Neutron LP-1757482).
    if (!ctx.isAdmin && subnet.project_id !== ctx.projectId) {
      throw badRequest('router', `Cannot add interface to router because subnet ${subnetId} is not owned by project making the request`);
    }
    checkAddressMode(subnet);
    await this.checkNewSubnets(tx, router.id, [subnet], null);
    const fixed = { subnet_id: subnet.id, ip_address: subnet.gateway_ip };
    if ((subnet.ip_version as IpVersion) === 6) {
      // Another IPv6 prefix of a network the router is already on goes onto the same port.
      const v6 = (await this.attachments(tx, router.id)).find((a) => a.device_owner === DEVICE_OWNER_ROUTER_INTF
        && a.network_id === subnet.network_id && a.ip_version === 6);
      if (v6) {
        const port = await tx.selectFrom('ports').selectAll().where('id', '=', v6.port_id).executeTakeFirstOrThrow();
        const current = await tx.selectFrom('ip_allocations').select(['subnet_id', 'ip_address']).where('port_id', '=', port.id).execute();
        await this.readdressPort(tx, port, [...current, fixed]);
        return interfaceInfo(router.id, port, [subnet.id], subnet.id);
      }
    }
    const portId = await this.ports.createWithin(tx, actingFor(router.project_id), {
      name: '', network_id: subnet.network_id, fixed_ips: [fixed], admin_state_up: true,
      device_id: router.id, device_owner: DEVICE_OWNER_ROUTER_INTF, port_security_enabled: false,
    });
    const port = await tx.selectFrom('ports').selectAll().where('id', '=', portId).executeTakeFirstOrThrow();
    return interfaceInfo(router.id, port, [subnet.id], subnet.id);
  }

  private async addByPort(tx: Tx, ctx: AuthContext, router: Row, portId: string): Promise<InterfaceInfo> {
    if (!(await findVisibleRow(tx, portModel, ctx, portId))) throw new ResourceNotFound('port', portId);
    // Locked: two routers asking for one port are decided one after the other.
    let q = tx.selectFrom('ports').selectAll().where('id', '=', portId);
    if (this.store.dialect === 'postgres') q = q.forUpdate();
    const port = await q.executeTakeFirst();
    if (!port) throw new ResourceNotFound('port', portId);
    if (port.device_id !== '') throw new PortInUse(port.network_id, port.id, port.device_id);
    const ips = await tx.selectFrom('ip_allocations').select(['subnet_id', 'ip_address']).where('port_id', '=', port.id).execute();
    if (ips.length === 0) throw badRequest('router', 'Router port must have at least one fixed IP');
    const subnetIds = [...new Set(ips.map((i) => i.subnet_id))];
    const subnets = await tx.selectFrom('subnets').selectAll().where('id', 'in', subnetIds).orderBy('created_at').orderBy('id').execute() as SubnetRow[];
    subnets.forEach(checkAddressMode);
    if (ips.some((i) => parseIp(i.ip_address)?.version === 6)) {
      const other = (await this.attachments(tx, router.id)).find((a) => a.port_id !== port.id && a.network_id === port.network_id && a.ip_version === 6);
      if (other) {
        throw badRequest('router', `Router already contains IPv6 port ${other.port_id} belonging to network id ${other.network_id}. Only one IPv6 port from the same network subnet can be connected to a router.`);
      }
    }
    await this.checkNewSubnets(tx, router.id, subnets, port.id);
    if (subnets.filter((s) => s.ip_version === 4).length > 1) throw badRequest('router', 'Cannot have multiple IPv4 subnets on router port');
    if (!ctx.isAdmin) {
      // An address outside the pools of another project's subnet could be that subnet's gateway: not for members.
      for (const ip of ips) {
        const s = subnets.find((x) => x.id === ip.subnet_id)!;
        const value = parseIp(ip.ip_address)!.value;
        const inPool = parsePools(JSON.parse(s.allocation_pools), s.ip_version as IpVersion).some((r) => value >= r.first && value <= r.last);
        if (!inPool && s.project_id !== ctx.projectId) {
          throw badRequest('router', `Cannot add interface to router because specified port ${port.id} has an IP address out of the allocation pool of subnet ${s.id}, which is not owned by the project making the request`);
        }
      }
    }
    await tx.updateTable('ports').set({ device_id: router.id, device_owner: DEVICE_OWNER_ROUTER_INTF }).where('id', '=', port.id).execute();
    await portChanged(tx, this.store, port.id);
    return interfaceInfo(router.id, port, subnets.map((s) => s.id), subnets.at(-1)!.id);
  }

  /** PUT /v2.0/routers/{id}/remove_router_interface */
  async removeInterface(ctx: AuthContext, routerId: string, body: unknown): Promise<InterfaceInfo> {
    return this.store.transaction(async (tx) => {
      const router = await this.lockRouter(tx, ctx, routerId, 'rule:remove_router_interface');
      const req = interfaceRequest(body, true);
      const info = req.portId
        ? await this.removeByPort(tx, router, req.portId, req.subnetId)
        : await this.removeBySubnet(tx, ctx, router, req.subnetId!);
      await this.routerChanged(tx, router.id);
      return info;
    });
  }

  private async removeByPort(tx: Tx, router: Row, portId: string, subnetId: string | undefined): Promise<InterfaceInfo> {
    const port = await tx.selectFrom('ports').selectAll().where('id', '=', portId).where('device_id', '=', router.id)
      .where('device_owner', '=', DEVICE_OWNER_ROUTER_INTF).executeTakeFirst();
    if (!port) throw new RouterInterfaceNotFound(router.id, portId);
    const subnets = await tx.selectFrom('subnets').select(['id', 'cidr'])
      .where('id', 'in', tx.selectFrom('ip_allocations').select('subnet_id').where('port_id', '=', port.id))
      .orderBy('created_at').orderBy('id').execute();
    if (subnetId && !subnets.some((s) => s.id === subnetId)) throw new SubnetMismatchForPort(port.id, subnetId);
    for (const s of subnets) await this.assertInterfaceNotNeeded(tx, router, s);
    await this.ports.deleteWithin(tx, actingFor(router.project_id), port.id);
    return interfaceInfo(router.id, port, subnets.map((s) => s.id), subnets[0]?.id ?? null);
  }

  private async removeBySubnet(tx: Tx, ctx: AuthContext, router: Row, subnetId: string): Promise<InterfaceInfo> {
    const subnet = await this.visibleSubnet(tx, ctx, subnetId);
    const ports = await tx.selectFrom('ports').selectAll().where('device_id', '=', router.id)
      .where('device_owner', '=', DEVICE_OWNER_ROUTER_INTF).where('network_id', '=', subnet.network_id)
      .orderBy('created_at').orderBy('id').execute();
    if (ports.length) await this.assertInterfaceNotNeeded(tx, router, subnet);
    for (const p of ports) {
      const ips = await tx.selectFrom('ip_allocations').select(['subnet_id', 'ip_address']).where('port_id', '=', p.id).execute();
      if (!ips.some((i) => i.subnet_id === subnetId)) continue;
      if (new Set(ips.map((i) => i.subnet_id)).size > 1) {
        // A multi-prefix port loses just this prefix.
        await this.readdressPort(tx, p, ips.filter((i) => i.subnet_id !== subnetId));
      } else {
        await this.ports.deleteWithin(tx, actingFor(router.project_id), p.id);
      }
      return interfaceInfo(router.id, p, [subnet.id], subnet.id);
    }
    throw new RouterInterfaceNotFoundForSubnet(router.id, subnetId);
  }

  /**
   * An interface stays while a floating IP maps to an address of its subnet
   * through this router, or an extra route's nexthop lies on the subnet.
   */
  private async assertInterfaceNotNeeded(tx: Tx, router: Row, subnet: { id: string; cidr: string }): Promise<void> {
    const fip = await tx.selectFrom('floatingips as f')
      .innerJoin('ip_allocations as a', (j) => j.onRef('a.port_id', '=', 'f.port_id').onRef('a.ip_address', '=', 'f.fixed_ip_address'))
      .select('f.id').where('f.router_id', '=', router.id).where('a.subnet_id', '=', subnet.id).limit(1).executeTakeFirst();
    if (fip) throw new RouterInterfaceInUseByFloatingIP(router.id, subnet.id);
    await this.assertSubnetNotInVpn(tx, router, subnet.id);
    if (routesThrough(JSON.parse(router.routes) as HostRoute[], subnet.cidr)) throw new RouterInterfaceInUseByRoute(router.id, subnet.id);
  }

  private async routerChanged(tx: Tx, routerId: string): Promise<void> {
    await bumpRevision(tx, 'routers', routerId);
    await recordResourceChange(tx, this.store, 'routers', 'router', routerId, 'update');
  }
}

