// Type drivers (ML2's flat/vlan/vxlan/local): validate a provider segment an
// admin asks for, or allocate one for a tenant network from configured ranges.
// Allocation is one row in segment_allocations, whose primary key makes two
// networks unable to hold the same segment even when created concurrently.
import { InvalidInput, NoNetworkAvailable, VlanIdInUse, TunnelIdInUse, FlatNetworkInUse } from '../errors.ts';
import type { Tx } from '../store/database.ts';
import type { NetworkType } from '../resources/network.ts';

export interface SegmentConfig {
  /** Type given to networks created without provider attributes. */
  tenantNetworkType: NetworkType;
  /** VNIs for tenant vxlan networks. */
  vniRange: [number, number];
  /** physnet → VLAN range for tenant allocation; a physnet listed with no range accepts provider VLANs only. */
  vlanRanges: Record<string, [number, number] | null>;
  /** Physical networks that may carry flat networks ('*' = any). */
  flatNetworks: string[];
  /** MTU of the physical underlay; vxlan networks lose 50 bytes to encapsulation. */
  physicalMtu: number;
}

export const DEFAULT_SEGMENT_CONFIG: SegmentConfig = {
  tenantNetworkType: 'vxlan',
  vniRange: [1, 1000],
  vlanRanges: { public: [100, 199] },
  flatNetworks: ['*'],
  physicalMtu: 1500,
};

export interface Segment {
  network_type: NetworkType;
  physical_network: string | null;
  segmentation_id: number | null;
}

export function mtuFor(cfg: SegmentConfig, type: NetworkType): number {
  return type === 'vxlan' ? cfg.physicalMtu - 50 : cfg.physicalMtu;
}

/** Checks an admin's provider request and fills what the type needs. Pure. */
export function validateProviderSegment(cfg: SegmentConfig, req: Partial<Segment>): Segment {
  const type = req.network_type!;
  const physnet = req.physical_network ?? null;
  const segId = req.segmentation_id ?? null;
  switch (type) {
    case 'flat':
      if (!physnet) throw new InvalidInput('physical_network required for flat provider network');
      if (segId !== null) throw new InvalidInput('segmentation_id prohibited for flat provider network');
      if (!cfg.flatNetworks.includes('*') && !cfg.flatNetworks.includes(physnet)) {
        throw new InvalidInput(`physical_network '${physnet}' unknown for flat provider network`);
      }
      return { network_type: type, physical_network: physnet, segmentation_id: null };
    case 'vlan':
      if (!physnet) throw new InvalidInput('physical_network required for VLAN provider network');
      if (!(physnet in cfg.vlanRanges)) throw new InvalidInput(`physical_network '${physnet}' unknown for VLAN provider network`);
      if (segId !== null && (segId < 1 || segId > 4094)) throw new InvalidInput('segmentation_id out of range (1 through 4094)');
      return { network_type: type, physical_network: physnet, segmentation_id: segId };
    case 'vxlan':
      if (physnet) throw new InvalidInput('provider:physical_network specified for VXLAN network');
      if (segId !== null && (segId < 1 || segId > 16777215)) throw new InvalidInput('segmentation_id out of range (1 through 16777215)');
      return { network_type: type, physical_network: null, segmentation_id: segId };
    case 'local':
      if (physnet || segId !== null) throw new InvalidInput('provider:physical_network and provider:segmentation_id prohibited for local provider network');
      return { network_type: type, physical_network: null, segmentation_id: null };
  }
}

/** The lowest free id in [lo, hi], given the ids in use (sorted ascending). Pure. */
export function lowestFree(used: number[], lo: number, hi: number): number | null {
  let candidate = lo;
  for (const u of used) {
    if (u < candidate) continue;
    if (u > candidate) break;
    candidate++;
  }
  return candidate <= hi ? candidate : null;
}

/**
 * Reserves the segment for the network; allocates the id when none was asked
 * for. Returns the segment as stored. Inserts use ON CONFLICT DO NOTHING, so a
 * concurrent create that took the same id (PostgreSQL) makes us try the next
 * free one instead of aborting the transaction.
 */
export async function allocateSegment(tx: Tx, cfg: SegmentConfig, networkId: string, seg: Segment): Promise<Segment> {
  if (seg.network_type === 'local') return seg;
  const physnet = seg.physical_network ?? '';
  const reserve = async (id: number) => {
    const r = await tx.insertInto('segment_allocations')
      .values({ network_type: seg.network_type, physical_network: physnet, segmentation_id: id, network_id: networkId })
      .onConflict((oc) => oc.doNothing()).executeTakeFirst();
    return Number(r.numInsertedOrUpdatedRows ?? 0n) === 1;
  };
  const stored = (id: number): Segment => ({ ...seg, segmentation_id: seg.network_type === 'flat' ? null : id });

  if (seg.network_type === 'flat' || seg.segmentation_id !== null) {
    const id = seg.network_type === 'flat' ? 0 : seg.segmentation_id!;
    if (!(await reserve(id))) throw segmentInUse(seg, id);
    return stored(id);
  }

  const range = seg.network_type === 'vxlan' ? cfg.vniRange : cfg.vlanRanges[seg.physical_network!];
  if (!range) throw new NoNetworkAvailable();
  const rows = await tx.selectFrom('segment_allocations').select('segmentation_id')
    .where('network_type', '=', seg.network_type).where('physical_network', '=', physnet)
    .where('segmentation_id', '>=', range[0]).where('segmentation_id', '<=', range[1])
    .orderBy('segmentation_id').execute();
  const used = rows.map((u) => u.segmentation_id);
  for (;;) {
    const id = lowestFree(used, range[0], range[1]);
    if (id === null) throw new NoNetworkAvailable();
    if (await reserve(id)) return stored(id);
    used.push(id);
    used.sort((a, b) => a - b);
  }
}

function segmentInUse(seg: Segment, id: number) {
  if (seg.network_type === 'vlan') return new VlanIdInUse(id, seg.physical_network!);
  if (seg.network_type === 'flat') return new FlatNetworkInUse(seg.physical_network!);
  return new TunnelIdInUse(id);
}
