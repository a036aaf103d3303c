// Floating IPs: an address of an external network, held by a port Neutron owns
// itself (device_owner network:floatingip, project ''), that a router maps to
// one fixed IPv4 address of a project's port. Which router is found, never
// chosen: one with a gateway on the floating network and an interface on the
// fixed address's subnet (Neutron's get_router_for_floatingip).
//
// This module also holds the two L3 hooks of the port service (deleting a
// router or floating IP port through the port API is refused; deleting an
// associated port disassociates its floating IPs) and the helpers the router
// service shares; it imports nothing of ports.ts at runtime, so ports.ts can
// import it without a cycle.
import { sql } from 'kysely';
import type { Body } from '../resources/attributes.ts';
import { floatingIpDef } from '../resources/floating-ip.ts';
import { systemContext, type AuthContext } from '../identity/context.ts';
import { owningProject } from '../identity/policy.ts';
import { isUniqueViolation, type Dialect, type Store, type Tx } from '../store/database.ts';
import {
  ExternalGatewayForFloatingIPNotFound, ExternalIpAddressExhausted, FipAssociated,
  FloatingIPPortAlreadyAssociated, ResourceNotFound, ServicePortInUse, badRequest,
} from '../errors.ts';
import { ResourceService, recordResourceChange } from './resource-service.ts';
import {
  bumped, findVisibleRow, newId, now, type ResourceModel, type Row, type Wire,
} from './resource-store.ts';
import { enforceQuota } from './quota-limits.ts';
import { visibleNetwork } from './subnets.ts';
import { ROUTER_INTERFACE_OWNERS, parseIp, type FixedIp } from './ipam.ts';
import type { PortService } from './ports.ts';

export const DEVICE_OWNER_FLOATINGIP = 'network:floatingip';
export const DEVICE_OWNER_ROUTER_GW = 'network:router_gateway';
export const DEVICE_OWNER_ROUTER_INTF = 'network:router_interface';
/** Ports only their router or floating IP may delete (Neutron's router_device_owners). */
const L3_PORT_OWNERS = new Set([...ROUTER_INTERFACE_OWNERS, DEVICE_OWNER_ROUTER_GW, DEVICE_OWNER_FLOATINGIP]);

// ------------------------------------------------------------ shared helpers

/** An admin acting for a project: how Neutron's L3 code creates the ports it owns (context.elevated()). */
export function actingFor(projectId: string): AuthContext {
  return { ...systemContext(), projectId, projectName: projectId };
}

/**
 * A port Neutron owns itself (router gateway, floating IP address): project
 * '', as in Neutron, so that no project sees it in its port list or pays port
 * quota for it (the router and floatingip quotas bound them), created through
 * the port service inside the caller's transaction.
 */
export async function createServicePort(tx: Tx, ports: PortService, body: Body): Promise<string> {
  return ports.createWithin(tx, actingFor(''), { name: '', admin_state_up: true, port_security_enabled: false, ...body });
}

/** Bumps a port's revision and records the change (a router took or released it, its addresses changed). */
export async function portChanged(tx: Tx, store: Store, portId: string): Promise<void> {
  await tx.updateTable('ports').set((eb) => ({ revision_number: eb('revision_number', '+', 1), updated_at: now() }))
    .where('id', '=', portId).execute();
  await recordResourceChange(tx, store, 'ports', 'port', portId, 'update');
}

// ------------------------------------------------------------- pure rules

export interface RouterCandidate { router_id: string; interface_ip: string }

/**
 * Neutron's choice among the routers that connect a subnet to the external
 * network: the one whose interface holds the subnet's gateway address, else
 * the first one.
 */
export function chooseRouter(candidates: RouterCandidate[], subnetGateway: string | null): string | null {
  const onGateway = candidates.find((c) => subnetGateway !== null && c.interface_ip === subnetGateway);
  return onGateway?.router_id ?? candidates[0]?.router_id ?? null;
}

/**
 * The fixed address a floating IP maps to (Neutron's _internal_fip_assoc_data):
 * the requested one, which must be one of the port's IPv4 addresses, or the
 * port's only IPv4 address.
 */
export function fixedIpForAssociation(portId: string, fixedIps: FixedIp[], requested: string | null | undefined): FixedIp {
  const v4 = fixedIps.filter((f) => parseIp(f.ip_address)?.version === 4);
  if (requested) {
    if (parseIp(requested)?.version !== 4) {
      throw badRequest('floatingip', `Cannot process floating IP association with ${requested}, since that is not an IPv4 address`);
    }
    const hit = fixedIps.find((f) => f.ip_address === requested);
    if (!hit) throw badRequest('floatingip', `Port ${portId} does not have fixed ip ${requested}`);
    return hit;
  }
  if (v4.length === 0) throw badRequest('floatingip', `Cannot add floating IP to port ${portId} that has no fixed IPv4 addresses`);
  if (v4.length > 1) {
    // Two spaces after the first sentence, as in Neutron.
    throw badRequest('floatingip', `Port ${portId} has multiple fixed IPv4 addresses.  Must provide a specific IPv4 address when assigning a floating IP`);
  }
  return v4[0];
}

// ------------------------------------------------------- database helpers

/** Routers with an interface on the subnet (of the port's network) and a gateway on the external network. */
async function routerCandidates(tx: Tx, networkId: string, subnetId: string, externalNetworkId: string): Promise<RouterCandidate[]> {
  return tx.selectFrom('ports as ip')
    .innerJoin('ip_allocations as a', 'a.port_id', 'ip.id')
    .innerJoin('routers as r', 'r.id', 'ip.device_id')
    .select(['r.id as router_id', 'a.ip_address as interface_ip'])
    .where('ip.network_id', '=', networkId)
    .where('ip.device_owner', 'in', [...ROUTER_INTERFACE_OWNERS])
    .where('a.subnet_id', '=', subnetId)
    .where('r.gw_network_id', '=', externalNetworkId)
    .where('r.gw_port_id', 'is not', null)
    .orderBy('ip.created_at').orderBy('r.id')
    .execute();
}

/**
 * The router for a floating IP of a fixed address on `subnet`. On PostgreSQL
 * the router row is share-locked and the choice confirmed under the lock, so a
 * concurrent interface removal or gateway change (which lock the router for
 * update) either sees this association or happens entirely before it.
 */
export async function routerForFloatingIp(
  tx: Tx, dialect: Dialect, port: Row, subnet: { id: string; gateway_ip: string | null }, externalNetworkId: string,
): Promise<string> {
  const find = async () => chooseRouter(await routerCandidates(tx, port.network_id, subnet.id, externalNetworkId), subnet.gateway_ip);
  let routerId = await find();
  for (let attempt = 0; routerId !== null && dialect === 'postgres' && attempt < 3; attempt++) {
    await sql`SELECT 1 FROM routers WHERE id = ${routerId} FOR SHARE`.execute(tx);
    const confirmed = await find();
    if (confirmed === routerId) break;
    routerId = confirmed;
  }
  if (routerId === null) throw new ExternalGatewayForFloatingIPNotFound(externalNetworkId, subnet.id, port.id);
  return routerId;
}

/** Hook 1 of the port service: router and floating IP ports are deleted through their own API. */
export async function assertNotL3Port(tx: Tx, port: Row): Promise<void> {
  const owner = port.device_owner as string;
  if (!L3_PORT_OWNERS.has(owner) || !port.device_id) return;
  // A port whose router or floating IP is already gone may go (as in Neutron).
  const table = owner === DEVICE_OWNER_FLOATINGIP ? 'floatingips' : 'routers';
  const device = await tx.selectFrom(table).select('id').where('id', '=', port.device_id).executeTakeFirst();
  if (device) throw new ServicePortInUse(port.id, `has device owner ${owner}`);
}

/**
 * Hook 2 of the port service: the floating IPs of a port being deleted let go
 * of it (Neutron's disassociate_floatingips). A project may not silently take
 * away another project's floating IP association (FipAssociated).
 */
export async function disassociateFloatingIps(tx: Tx, store: Store, ctx: AuthContext, portId: string): Promise<void> {
  const fips = await tx.selectFrom('floatingips').select(['id', 'project_id']).where('port_id', '=', portId).execute();
  if (fips.length === 0) return;
  if (!ctx.isAdmin && fips.some((f) => f.project_id !== ctx.projectId)) throw new FipAssociated(portId);
  await tx.updateTable('floatingips')
    .set((eb) => ({ port_id: null, fixed_ip_address: null, router_id: null, revision_number: eb('revision_number', '+', 1), updated_at: now() }))
    .where('port_id', '=', portId).execute();
  for (const f of fips) await recordResourceChange(tx, store, 'floatingips', 'floatingip', f.id, 'update');
}

// ------------------------------------------------------------------ model

const PORT_DETAILS = ['name', 'network_id', 'mac_address', 'admin_state_up', 'status', 'device_id', 'device_owner'] as const;

/** Neutron's get_floatingip: the owner (and admins). */
export const floatingIpModel: ResourceModel = {
  def: floatingIpDef,
  scope: (ctx, eb) => eb('r.project_id', '=', ctx.projectId),
  /** port_details (fip-port-details) of the associated ports, in one query. */
  async expand(db, rows) {
    const portIds = [...new Set(rows.map((r) => r.port_id as string | null).filter((p): p is string => p !== null))];
    const ports = new Map<string, Wire>();
    for (let i = 0; i < portIds.length; i += 500) {
      const found = await db.selectFrom('ports').select(['id', ...PORT_DETAILS]).where('id', 'in', portIds.slice(i, i + 500)).execute();
      for (const p of found) {
        ports.set(p.id, {
          name: p.name, network_id: p.network_id, mac_address: p.mac_address, admin_state_up: Boolean(p.admin_state_up),
          status: p.status, device_id: p.device_id, device_owner: p.device_owner,
        });
      }
    }
    return new Map(rows.map((r) => [r.id as string, { port_details: (r.port_id && ports.get(r.port_id)) || null }]));
  },
};

interface Association { port_id: string | null; fixed_ip_address: string | null; router_id: string | null }
const NO_ASSOCIATION: Association = { port_id: null, fixed_ip_address: null, router_id: null };

type FipState = Pick<Row, 'id' | 'project_id' | 'floating_network_id' | 'floating_ip_address' | 'port_id' | 'fixed_ip_address'>;

export class FloatingIpService extends ResourceService {
  constructor(store: Store, private readonly ports: PortService) {
    super(store, floatingIpModel);
  }

  protected async createOne(tx: Tx, ctx: AuthContext, body: Body): Promise<string> {
    const projectId = owningProject(ctx, body);
    const networkId = body.floating_network_id as string;
    const network = await visibleNetwork(tx, ctx, networkId);
    if (!network.router_external) throw badRequest('floatingip', `Network ${networkId} is not a valid external network`);
    const v4 = await tx.selectFrom('subnets').select('id').where('network_id', '=', networkId).where('ip_version', '=', 4).executeTakeFirst();
    if (!v4) throw badRequest('floatingip', `Network ${networkId} does not contain any IPv4 subnet`);
    await enforceQuota(tx, 'floatingip', projectId);

    const id = newId();
    // Both subnet_id and floating_ip_address may be given; IPAM checks they agree.
    const fixed: { subnet_id?: string; ip_address?: string } = {};
    if (body.subnet_id) fixed.subnet_id = body.subnet_id as string;
    if (body.floating_ip_address) fixed.ip_address = body.floating_ip_address as string;
    const portId = await createServicePort(tx, this.ports, {
      network_id: networkId, device_id: id, device_owner: DEVICE_OWNER_FLOATINGIP,
      ...(Object.keys(fixed).length ? { fixed_ips: [fixed] } : {}),
    });
    const held = await tx.selectFrom('ip_allocations').select('ip_address').where('port_id', '=', portId).execute();
    const address = held.map((h) => h.ip_address).find((a) => parseIp(a)?.version === 4);
    if (!address) throw new ExternalIpAddressExhausted(networkId);

    const state: FipState = { id, project_id: projectId, floating_network_id: networkId, floating_ip_address: address, port_id: null, fixed_ip_address: null };
    const assoc = body.port_id || body.fixed_ip_address
      ? await this.associate(tx, ctx, state, body.port_id as string | null, body.fixed_ip_address as string | null)
      : NO_ASSOCIATION;
    const ts = now();
    await this.guarded(state, assoc, () => tx.insertInto('floatingips').values({
      id, project_id: projectId, description: body.description as string,
      floating_network_id: networkId, floating_ip_address: address, floating_port_id: portId,
      ...assoc, status: 'DOWN', created_at: ts, updated_at: ts, revision_number: 0,
    }).execute());
    return id;
  }

  protected async updateOne(tx: Tx, ctx: AuthContext, row: Row, body: Body): Promise<void> {
    const set: Record<string, unknown> = {};
    if ('description' in body) set.description = body.description;
    let assoc: Association | null = null;
    if ('port_id' in body) {
      // port_id null disassociates; a port (again) associates, re-checked as on create.
      assoc = await this.associate(tx, ctx, row as FipState, body.port_id as string | null, body.fixed_ip_address as string | null | undefined);
    } else if (body.fixed_ip_address) {
      throw badRequest('floatingip', 'fixed_ip_address cannot be specified without a port_id');
    }
    await this.guarded(row as FipState, assoc ?? NO_ASSOCIATION, () => tx.updateTable('floatingips')
      .set({ ...set, ...(assoc ?? {}), ...bumped(row) }).where('id', '=', row.id).execute());
  }

  /** The FIP row first, then its address port (whose own deletion hooks then find nothing to do). */
  protected async deleteOne(tx: Tx, _ctx: AuthContext, row: Row): Promise<void> {
    await tx.deleteFrom('floatingips').where('id', '=', row.id).execute();
    const port = await tx.selectFrom('ports').select('id').where('id', '=', row.floating_port_id).executeTakeFirst();
    if (port) await this.ports.deleteWithin(tx, actingFor(row.project_id), port.id);
  }

  /**
   * Where a floating IP maps to (Neutron's _check_and_get_fip_assoc): the port
   * must be visible, the FIP project's (unless an admin asks), not a DHCP port;
   * the fixed address one of its IPv4 addresses, not already mapped; and some
   * router must connect its subnet to the floating network.
   */
  private async associate(tx: Tx, ctx: AuthContext, fip: FipState, portId: string | null, fixedIp: string | null | undefined): Promise<Association> {
    if (fixedIp && !portId) throw badRequest('floatingip', 'fixed_ip_address cannot be specified without a port_id');
    if (!portId) return NO_ASSOCIATION;
    const visible = await findVisibleRow(tx, this.ports.model, ctx, portId);
    if (!visible) throw new ResourceNotFound('port', portId);
    // Locked so that a concurrent delete of the port either runs first (then it is gone) or sees this association.
    let q = tx.selectFrom('ports').selectAll().where('id', '=', portId);
    if (this.store.dialect === 'postgres') q = q.forUpdate();
    const port = await q.executeTakeFirst();
    if (!port) throw new ResourceNotFound('port', portId);
    if (port.project_id !== fip.project_id && !ctx.isAdmin) {
      throw badRequest('floatingip', `Cannot process floating IP association with Port ${portId}, since that port is owned by a different project`);
    }
    if (port.device_owner === 'network:dhcp') throw badRequest('floatingip', `Port ${portId} is unable to be assigned a floating IP`);
    const fixedIps = await tx.selectFrom('ip_allocations').select(['subnet_id', 'ip_address']).where('port_id', '=', portId).execute();
    const chosen = fixedIpForAssociation(portId, fixedIps, fixedIp);
    const subnet = await tx.selectFrom('subnets').select(['id', 'gateway_ip']).where('id', '=', chosen.subnet_id).executeTakeFirstOrThrow();
    const routerId = await routerForFloatingIp(tx, this.store.dialect, port, subnet, fip.floating_network_id);
    if (portId !== fip.port_id || chosen.ip_address !== fip.fixed_ip_address) {
      const other = await tx.selectFrom('floatingips').select(['id', 'floating_network_id'])
        .where('port_id', '=', portId).where('fixed_ip_address', '=', chosen.ip_address).where('id', '!=', fip.id).executeTakeFirst();
      if (other) {
        throw new FloatingIPPortAlreadyAssociated(fip.floating_ip_address, fip.id, portId, chosen.ip_address, other.floating_network_id);
      }
    }
    return { port_id: portId, fixed_ip_address: chosen.ip_address, router_id: routerId };
  }

  /**
   * Runs the write that stores an association. The unique index on (port_id,
   * fixed_ip_address) is the last word when two associations of one fixed IP
   * race past the check above: the loser gets Neutron's error, not a 500.
   */
  private async guarded(fip: FipState, assoc: Association, write: () => Promise<unknown>): Promise<void> {
    try {
      await write();
    } catch (e) {
      if (isUniqueViolation(e) && assoc.port_id && assoc.fixed_ip_address) {
        throw new FloatingIPPortAlreadyAssociated(fip.floating_ip_address, fip.id, assoc.port_id, assoc.fixed_ip_address, fip.floating_network_id);
      }
      throw e;
    }
  }
}
