// Row types of the store, shared by both back-ends (see database.ts for the
// encoding: booleans as 0/1, lists and dicts as JSON text, times as ISO text).
export interface StandardColumns {
  id: string;
  project_id: string;
  name: string;
  description: string;
  created_at: string;
  updated_at: string;
  revision_number: number;
}

export interface NetworkRow extends StandardColumns {
  admin_state_up: number;
  status: string;
  shared: number;
  router_external: number;
  is_default: number;
  mtu: number;
  port_security_enabled: number;
  network_type: string;
  physical_network: string | null;
  segmentation_id: number | null;
  availability_zone_hints: string;
}

export interface SegmentAllocationRow {
  network_type: string;
  physical_network: string;
  segmentation_id: number;
  network_id: string;
}

export interface SubnetRow extends StandardColumns {
  network_id: string;
  ip_version: number;
  cidr: string;
  gateway_ip: string | null;
  enable_dhcp: number;
  ipv6_ra_mode: string | null;
  ipv6_address_mode: string | null;
  allocation_pools: string;
  dns_nameservers: string;
  host_routes: string;
  service_types: string;
  subnetpool_id: string | null;
}

export interface PortRow extends StandardColumns {
  network_id: string;
  mac_address: string;
  admin_state_up: number;
  status: string;
  device_id: string;
  device_owner: string;
  port_security_enabled: number;
  allowed_address_pairs: string;
  extra_dhcp_opts: string;
  binding_host_id: string;
  binding_vnic_type: string;
  binding_vif_type: string;
  binding_vif_details: string;
  binding_profile: string;
}

export interface IpAllocationRow {
  subnet_id: string;
  ip_address: string;
  port_id: string;
  network_id: string;
}

export interface TagRow {
  resource_type: string;
  resource_id: string;
  tag: string;
}

export interface QuotaRow {
  project_id: string;
  resource: string;
  hard_limit: number;
}

// ---- identity (src/identity, migration 0002-identity) ----
export interface IdentityDomainRow {
  id: string;
  name: string;
  description: string;
  enabled: number;
  created_at: string;
}

export interface IdentityProjectRow {
  id: string;
  domain_id: string;
  name: string;
  description: string;
  enabled: number;
  /** JSON list of strings. */
  tags: string;
  created_at: string;
  updated_at: string;
}

export interface IdentityUserRow {
  id: string;
  domain_id: string;
  name: string;
  password_hash: string | null;
  enabled: number;
  default_project_id: string | null;
  /** JSON object of free-form attributes (email, description). */
  extra: string;
  created_at: string;
  updated_at: string;
}

export interface IdentityRoleRow {
  id: string;
  name: string;
  description: string | null;
}

export interface IdentityRoleImplicationRow {
  prior_role_id: string;
  implied_role_id: string;
}

export interface IdentityAssignmentRow {
  user_id: string;
  project_id: string;
  role_id: string;
}

export interface IdentityTokenRow {
  token_hash: string;
  user_id: string;
  project_id: string | null;
  /** JSON list of auth method names. */
  methods: string;
  audit_id: string;
  issued_at: string;
  expires_at: string;
  revoked: number;
}

export interface ChangeFeedRow {
  seq: number | string;
  resource_type: string;
  resource_id: string;
  project_id: string;
  op: 'create' | 'update' | 'delete';
  revision_number: number;
  created_at: string;
}

export interface SecurityGroupRow {
  id: string;
  project_id: string;
  name: string;
  description: string;
  stateful: number;
  shared: number;
  created_at: string;
  updated_at: string;
  revision_number: number;
}

export interface SecurityGroupRuleRow {
  id: string;
  project_id: string;
  security_group_id: string;
  direction: string;
  ethertype: string;
  protocol: string | null;
  port_range_min: number | null;
  port_range_max: number | null;
  remote_ip_prefix: string | null;
  normalized_cidr: string | null;
  remote_group_id: string | null;
  remote_address_group_id: string | null;
  description: string | null;
  fingerprint: string;
  created_at: string;
  updated_at: string;
  revision_number: number;
}

export interface AddressGroupRow {
  id: string;
  project_id: string;
  name: string;
  description: string;
  created_at: string;
  updated_at: string;
  revision_number: number;
}

export interface RouterRow {
  id: string;
  project_id: string;
  name: string;
  description: string;
  admin_state_up: number;
  status: string;
  distributed: number;
  ha: number;
  gw_network_id: string | null;
  gw_port_id: string | null;
  enable_snat: number;
  routes: string;
  availability_zone_hints: string;
  created_at: string;
  updated_at: string;
  revision_number: number;
}

export interface FloatingIpRow {
  id: string;
  project_id: string;
  description: string;
  floating_network_id: string;
  floating_ip_address: string;
  floating_port_id: string;
  port_id: string | null;
  fixed_ip_address: string | null;
  router_id: string | null;
  status: string;
  created_at: string;
  updated_at: string;
  revision_number: number;
}

export interface AgentRow {
  id: string;
  agent_type: string;
  binary: string;
  topic: string;
  host: string;
  admin_state_up: number;
  created_at: string;
  started_at: string;
  heartbeat_timestamp: string;
  /** heartbeat_timestamp + 2 × the agent's report interval (same text format). */
  alive_until: string;
  /** JSON object. */
  configurations: string;
  availability_zone: string | null;
  description: string | null;
  resources_synced: number | null;
}

/** VPNaaS (0007): lifetime, dpd, peer_cidrs and endpoints are JSON text; psk is secret-box sealed text. */
export interface VpnIkePolicyRow extends StandardColumns {
  auth_algorithm: string;
  encryption_algorithm: string;
  phase1_negotiation_mode: string;
  lifetime: string;
  ike_version: string;
  pfs: string;
}

export interface VpnIpsecPolicyRow extends StandardColumns {
  transform_protocol: string;
  auth_algorithm: string;
  encryption_algorithm: string;
  encapsulation_mode: string;
  lifetime: string;
  pfs: string;
}

export interface VpnServiceRow extends StandardColumns {
  router_id: string;
  subnet_id: string | null;
  admin_state_up: number;
  status: string;
}

export interface VpnEndpointGroupRow extends StandardColumns {
  type: string;
  endpoints: string;
}

export interface VpnIpsecSiteConnectionRow extends StandardColumns {
  peer_address: string;
  peer_id: string;
  local_id: string;
  route_mode: string;
  mtu: number;
  auth_mode: string;
  psk: string;
  initiator: string;
  dpd: string;
  admin_state_up: number;
  status: string;
  vpnservice_id: string;
  ikepolicy_id: string;
  ipsecpolicy_id: string;
  peer_cidrs: string;
  local_ep_group_id: string | null;
  peer_ep_group_id: string | null;
}

export interface Database {
  vpn_ikepolicies: VpnIkePolicyRow;
  vpn_ipsecpolicies: VpnIpsecPolicyRow;
  vpn_services: VpnServiceRow;
  vpn_endpoint_groups: VpnEndpointGroupRow;
  vpn_ipsec_site_connections: VpnIpsecSiteConnectionRow;
  agents: AgentRow;
  routers: RouterRow;
  floatingips: FloatingIpRow;
  security_groups: SecurityGroupRow;
  default_security_groups: { project_id: string; security_group_id: string };
  security_group_rules: SecurityGroupRuleRow;
  address_groups: AddressGroupRow;
  address_group_addresses: { address_group_id: string; address: string };
  port_security_groups: { port_id: string; security_group_id: string };
  change_feed: ChangeFeedRow;
  change_feed_counter: { id: number; seq: number | string };
  networks: NetworkRow;
  segment_allocations: SegmentAllocationRow;
  subnets: SubnetRow;
  ports: PortRow;
  ip_allocations: IpAllocationRow;
  tags: TagRow;
  quotas: QuotaRow;
  identity_domains: IdentityDomainRow;
  identity_projects: IdentityProjectRow;
  identity_users: IdentityUserRow;
  identity_roles: IdentityRoleRow;
  identity_role_implications: IdentityRoleImplicationRow;
  identity_assignments: IdentityAssignmentRow;
  identity_tokens: IdentityTokenRow;
}
