// Effective roles: the direct grants of a user on a project plus everything
// they imply (admin ⊃ member ⊃ reader), as a pure function of a role graph.
export interface RoleRef {
  id: string;
  name: string;
}

export interface RoleGraph {
  byId: ReadonlyMap<string, RoleRef>;
  /** prior role id → role ids it implies directly. */
  implies: ReadonlyMap<string, readonly string[]>;
}

export function buildRoleGraph(roles: readonly RoleRef[], implications: readonly { prior_role_id: string; implied_role_id: string }[]): RoleGraph {
  const byId = new Map(roles.map((r) => [r.id, { id: r.id, name: r.name }]));
  const implies = new Map<string, string[]>();
  for (const i of implications) {
    const list = implies.get(i.prior_role_id) ?? [];
    list.push(i.implied_role_id);
    implies.set(i.prior_role_id, list);
  }
  return { byId, implies };
}

/** The transitive closure of the direct role ids, sorted by name; cycles and unknown ids are harmless. */
export function effectiveRoles(graph: RoleGraph, directIds: Iterable<string>): RoleRef[] {
  const seen = new Set<string>();
  const queue = [...directIds];
  while (queue.length > 0) {
    const id = queue.pop()!;
    if (seen.has(id) || !graph.byId.has(id)) continue;
    seen.add(id);
    queue.push(...(graph.implies.get(id) ?? []));
  }
  return [...seen].map((id) => graph.byId.get(id)!).sort((a, b) => a.name.localeCompare(b.name));
}

/** Role ids implied by `roleId` but not `roleId` itself (for effective role-assignment listings). */
export function impliedOnly(graph: RoleGraph, roleId: string): RoleRef[] {
  return effectiveRoles(graph, [roleId]).filter((r) => r.id !== roleId);
}
