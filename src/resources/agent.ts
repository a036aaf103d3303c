// Agents (neutron_lib/api/definitions/agent.py plus the availability_zone and
// agent-resources-synced extensions). Agents are not standard-attribute
// resources: no project, no revision, no tags. Neutron's _make_agent_dict
// builds the answer from the attribute map, then sets alive, configurations,
// resource_versions, availability_zone and resources_synced, which gives the
// wire order below. Only admin_state_up and description change through the
// API; the rest is what the agent reports about itself.
import { bool, nullable, str, type ResourceDef } from './attributes.ts';

export const AGENT_TYPE = 'Nucleon agent';
export const AGENT_BINARY = 'nucleon-agent';
/** What Neutron's L2 agents report as their topic. */
export const AGENT_TOPIC = 'N/A';

export const agentDef: ResourceDef = {
  name: 'agent',
  collection: 'agents',
  table: 'agents',
  taggable: false,
  attributes: {
    id: {},
    agent_type: {},
    binary: {},
    topic: {},
    host: {},
    admin_state_up: { put: true, convert: bool, codec: 'bool' },
    created_at: {},
    started_at: {},
    heartbeat_timestamp: {},
    description: { put: true, convert: nullable(str(255)) },
    availability_zone: {},
    resources_synced: { codec: 'bool' },
    // Computed from alive_until (see the agents service); filterable as in Neutron's get_agents.
    alive: { column: false, filter: true },
    configurations: { codec: 'json', filter: false },
    resource_versions: { column: false, filter: false },
  },
};
