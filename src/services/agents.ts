// Agents: the hosts running `nucleon agent`, as Neutron's agent extension
// shows them to admins. An agent registers itself when it starts (upsert by
// agent type and host, so a restart keeps the row, its id and what an admin
// set) and refreshes its heartbeat every report interval. The API only reads,
// updates (admin_state_up, description) and deletes; everything is admin-only,
// and to anyone else agents are as invisible as Neutron makes them.
import type { ExpressionBuilder } from 'kysely';
import { parseBody, type Body } from '../resources/attributes.ts';
import { AGENT_BINARY, AGENT_TOPIC, AGENT_TYPE, agentDef } from '../resources/agent.ts';
import type { AuthContext } from '../identity/context.ts';
import type { Db, Store, Tx } from '../store/database.ts';
import type { AgentRow } from '../store/schema.ts';
import { BadRequest, HTTPNotFound, ResourceNotFound } from '../errors.ts';
import { ResourceService } from './resource-service.ts';
import { getResource, newId, type ResourceModel, type Row, type Wire } from './resource-store.ts';
import { recordChange, type ChangeOp } from './change-feed.ts';

type Eb = ExpressionBuilder<any, any>;

/** Neutron's agent time format: UTC, second precision, a space, no zone ('2024-05-01 12:00:00'). */
export function agentTime(at: Date = new Date()): string {
  return at.toISOString().slice(0, 19).replace('T', ' ');
}

/** An agent is alive while its last heartbeat is within twice its report interval. */
export function aliveUntil(heartbeat: Date, reportIntervalS: number): string {
  return agentTime(new Date(heartbeat.getTime() + 2 * reportIntervalS * 1000));
}

const truthy = (v: string) => /^(true|1)$/i.test(v.trim());

export const agentModel: ResourceModel = {
  def: agentDef,
  // get_agent is admin_only: members list nothing, as Neutron's _items drops what they may not show.
  scope: (_ctx, eb) => eb.lit(false),
  async expand(_db, rows) {
    const now = agentTime();
    return new Map(rows.map((r) => [r.id as string, { alive: r.alive_until > now, resource_versions: {} }]));
  },
  filters: {
    // Neutron's get_agents takes alive=True/False and compares with the clock; so do we, in SQL.
    alive: (values: string[], eb: Eb) => (truthy(values[0] ?? '')
      ? eb('r.alive_until', '>', agentTime())
      : eb('r.alive_until', '<=', agentTime())),
  },
};

/** POST /v2.0/agents: agents register themselves when they start, never through the API. */
export class AgentCreateNotSupported extends BadRequest {
  constructor() { super('Agents cannot be created through the API: an agent registers itself when it starts.'); }
}

/** What an agent says about itself when it registers. */
export interface AgentRegistration {
  host: string;
  /** Seconds between heartbeats. */
  reportInterval: number;
  configurations: Record<string, unknown>;
  availabilityZone?: string | null;
}

export class AgentService extends ResourceService {
  constructor(store: Store) {
    super(store, agentModel);
  }

  // ---- the API (admin-only)

  override async get(ctx: AuthContext, id: string): Promise<Wire> {
    await this.assertAdmin(ctx, id);
    return getResource(this.store.db, this.model, ctx, id);
  }

  override async createBulk(): Promise<Wire[]> {
    throw new AgentCreateNotSupported();
  }

  override async update(ctx: AuthContext, id: string, raw: unknown): Promise<Wire> {
    await this.assertAdmin(ctx, id);
    const body = parseBody(this.def, raw, 'update');
    await this.store.transaction(async (tx) => {
      const row = await this.lockedRow(tx, id);
      await this.updateOne(tx, ctx, row, body);
      await this.changed(tx, id, 'update');
    });
    return getResource(this.store.db, this.model, ctx, id);
  }

  override async delete(ctx: AuthContext, id: string): Promise<void> {
    await this.assertAdmin(ctx, id);
    await this.store.transaction(async (tx) => {
      const row = await this.lockedRow(tx, id);
      await this.deleteOne(tx, ctx, row);
      await this.changed(tx, id, 'delete');
    });
  }

  protected async createOne(): Promise<string> {
    throw new AgentCreateNotSupported();
  }

  protected async updateOne(tx: Tx, _ctx: AuthContext, row: Row, body: Body): Promise<void> {
    const set: Partial<AgentRow> = {};
    if ('admin_state_up' in body) set.admin_state_up = body.admin_state_up ? 1 : 0;
    if ('description' in body) set.description = body.description as string | null;
    if (Object.keys(set).length) await tx.updateTable('agents').set(set).where('id', '=', row.id).execute();
  }

  protected async deleteOne(tx: Tx, _ctx: AuthContext, row: Row): Promise<void> {
    await tx.deleteFrom('agents').where('id', '=', row.id).execute();
  }

  /** Agents have no project or revision: their feed rows carry '' and 0. */
  protected override async changed(tx: Tx, id: string, op: ChangeOp): Promise<void> {
    recordChange(tx, { resource_type: 'agent', resource_id: id, project_id: '', op, revision_number: 0 });
  }

  /**
   * Neutron's controller for a caller get_agent refuses: a missing agent is
   * AgentNotFound (the plugin looks first), an existing one "could not be found"
   * without its name, so nothing but existence leaks, exactly as there.
   */
  private async assertAdmin(ctx: AuthContext, id: string): Promise<void> {
    const exists = await this.store.db.selectFrom('agents').select('id').where('id', '=', id).executeTakeFirst();
    if (!exists) throw new ResourceNotFound('agent', id);
    if (!ctx.isAdmin) throw new HTTPNotFound();
  }

  private async lockedRow(tx: Tx, id: string): Promise<Row> {
    let q = tx.selectFrom('agents').selectAll().where('id', '=', id);
    if (this.store.dialect === 'postgres') q = q.forUpdate();
    const row = await q.executeTakeFirst();
    if (!row) throw new ResourceNotFound('agent', id);
    return row;
  }

  // ---- the agent's side

  /**
   * Registers (or re-registers) the agent of this host: one row per host,
   * kept across restarts with its id, created_at, admin_state_up and
   * description; started_at, heartbeat and configurations are the new ones.
   * Recorded in the change feed so other agents learn about a new peer at once.
   */
  async register(reg: AgentRegistration): Promise<AgentRow> {
    const at = new Date();
    const ts = agentTime(at);
    const fresh = {
      started_at: ts,
      heartbeat_timestamp: ts,
      alive_until: aliveUntil(at, reg.reportInterval),
      configurations: JSON.stringify(reg.configurations),
      availability_zone: reg.availabilityZone ?? null,
    };
    return this.store.transaction(async (tx) => {
      const row = await tx.insertInto('agents').values({
        id: newId(), agent_type: AGENT_TYPE, binary: AGENT_BINARY, topic: AGENT_TOPIC, host: reg.host,
        admin_state_up: 1, created_at: ts, description: null, resources_synced: null, ...fresh,
      }).onConflict((oc) => oc.columns(['agent_type', 'host']).doUpdateSet(fresh))
        .returningAll().executeTakeFirstOrThrow();
      recordChange(tx, { resource_type: 'agent', resource_id: row.id, project_id: '', op: 'update', revision_number: 0 });
      return row;
    });
  }

  /**
   * Refreshes the heartbeat. Not a change-feed event (it happens every few
   * seconds on every host); peers notice a dead agent on their periodic pass.
   * Returns false when the row is gone (an admin deleted it): register again.
   */
  async heartbeat(host: string, reportInterval: number, configurations?: Record<string, unknown>): Promise<boolean> {
    const at = new Date();
    const set: Partial<AgentRow> = { heartbeat_timestamp: agentTime(at), alive_until: aliveUntil(at, reportInterval) };
    if (configurations) set.configurations = JSON.stringify(configurations);
    const r = await this.store.db.updateTable('agents').set(set)
      .where('agent_type', '=', AGENT_TYPE).where('host', '=', host).executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }
}

/** The alive agents of other hosts (every pass reads them for VXLAN peers: one query). */
export async function aliveAgents(db: Db | Tx): Promise<AgentRow[]> {
  return db.selectFrom('agents').selectAll()
    .where('agent_type', '=', AGENT_TYPE).where('alive_until', '>', agentTime()).orderBy('host').execute();
}
