// IKE and IPsec policies: plain parameter sets, one service class for both.
// A policy that a connection uses can be neither changed nor deleted
// (neutron-vpnaas: IKEPolicyInUse / IPsecPolicyInUse, "can't be updated or
// deleted"), so a running tunnel never silently changes its crypto.
import type { Body } from '../../resources/attributes.ts';
import { ikePolicyDef, ipsecPolicyDef, type Lifetime } from '../../resources/vpn.ts';
import type { AuthContext } from '../../identity/context.ts';
import { owningProject } from '../../identity/policy.ts';
import { IKEPolicyInUse, IPsecPolicyInUse, type NeutronError } from '../../errors.ts';
import type { Store, Tx } from '../../store/database.ts';
import { ResourceService } from '../resource-service.ts';
import { bumped, newId, now, type Row } from '../resource-store.ts';
import { enforceQuota } from '../quota-limits.ts';
import { mergeLifetime } from './rules.ts';
import { ownerModel } from './common.ts';

interface PolicyKind {
  def: typeof ikePolicyDef;
  table: 'vpn_ikepolicies' | 'vpn_ipsecpolicies';
  /** The connections' column that refers to this kind. */
  column: 'ikepolicy_id' | 'ipsecpolicy_id';
  inUse: (id: string) => NeutronError;
  /** Settable attributes stored as they are (lifetime is merged). */
  fields: string[];
}

export const ikePolicyModel = ownerModel(ikePolicyDef);
export const ipsecPolicyModel = ownerModel(ipsecPolicyDef);

const IKE: PolicyKind = {
  def: ikePolicyDef, table: 'vpn_ikepolicies', column: 'ikepolicy_id', inUse: (id) => new IKEPolicyInUse(id),
  fields: ['name', 'description', 'auth_algorithm', 'encryption_algorithm', 'phase1_negotiation_mode', 'ike_version', 'pfs'],
};
const IPSEC: PolicyKind = {
  def: ipsecPolicyDef, table: 'vpn_ipsecpolicies', column: 'ipsecpolicy_id', inUse: (id) => new IPsecPolicyInUse(id),
  fields: ['name', 'description', 'transform_protocol', 'auth_algorithm', 'encryption_algorithm', 'encapsulation_mode', 'pfs'],
};

export class VpnPolicyService extends ResourceService {
  private constructor(store: Store, private readonly kind: PolicyKind) {
    super(store, kind.def === ikePolicyDef ? ikePolicyModel : ipsecPolicyModel);
  }

  static ike(store: Store): VpnPolicyService { return new VpnPolicyService(store, IKE); }
  static ipsec(store: Store): VpnPolicyService { return new VpnPolicyService(store, IPSEC); }

  protected async createOne(tx: Tx, ctx: AuthContext, body: Body): Promise<string> {
    const projectId = owningProject(ctx, body);
    await enforceQuota(tx, this.def.name, projectId);
    const id = newId();
    const ts = now();
    const values: Record<string, unknown> = {
      id, project_id: projectId, lifetime: JSON.stringify(mergeLifetime(body.lifetime as Partial<Lifetime>)),
      created_at: ts, updated_at: ts, revision_number: 1,
    };
    for (const f of this.kind.fields) values[f] = body[f];
    await (tx as any).insertInto(this.kind.table).values(values).execute();
    return id;
  }

  protected async updateOne(tx: Tx, _ctx: AuthContext, row: Row, body: Body): Promise<void> {
    await this.assertUnused(tx, row.id);
    const set: Record<string, unknown> = {};
    for (const f of this.kind.fields) if (f in body) set[f] = body[f];
    if ('lifetime' in body) set.lifetime = JSON.stringify(mergeLifetime(body.lifetime as Partial<Lifetime>, JSON.parse(row.lifetime)));
    await (tx as any).updateTable(this.kind.table).set({ ...set, ...bumped(row) }).where('id', '=', row.id).execute();
  }

  protected async deleteOne(tx: Tx, _ctx: AuthContext, row: Row): Promise<void> {
    await this.assertUnused(tx, row.id);
    await (tx as any).deleteFrom(this.kind.table).where('id', '=', row.id).execute();
  }

  private async assertUnused(tx: Tx, id: string): Promise<void> {
    const used = await tx.selectFrom('vpn_ipsec_site_connections').select('id').where(this.kind.column, '=', id).limit(1).executeTakeFirst();
    if (used) throw this.kind.inUse(id);
  }
}
