// Builds the resource services over one store. The API layer serves every
// entry of `collections` as a Neutron collection; the others (quotas, member
// actions) have routes of their own in src/api.
import type { Store } from '../store/database.ts';
import { NetworkService } from './networks.ts';
import { SubnetService } from './subnets.ts';
import { PortService } from './ports.ts';
import { QuotaService } from './quotas.ts';
import type { ResourceService } from './resource-service.ts';
import { SecurityGroupService } from './security-groups.ts';
import { SecurityGroupRuleService } from './security-group-rules.ts';
import { AddressGroupService } from './address-groups.ts';
import { RouterService } from './routers.ts';
import { FloatingIpService } from './floating-ips.ts';
import { AgentService } from './agents.ts';
import { registerQuotaResource } from './quota-limits.ts';
import { DEFAULT_SEGMENT_CONFIG, type SegmentConfig } from './segments.ts';
import { createVpnServices, type VpnServices } from './vpn/index.ts';
import { SecretBox } from './secret-box.ts';

export interface ServiceConfig {
  segments: SegmentConfig;
  /** Seals secrets at rest (VPN PSKs); the server's comes from DATA_DIR/secret.key, without one a key lives in memory. */
  secretBox?: SecretBox;
}

export const DEFAULT_SERVICE_CONFIG: ServiceConfig = { segments: DEFAULT_SEGMENT_CONFIG };

export interface Services {
  networks: NetworkService;
  subnets: SubnetService;
  ports: PortService;
  quotas: QuotaService;
  securityGroups: SecurityGroupService;
  securityGroupRules: SecurityGroupRuleService;
  addressGroups: AddressGroupService;
  routers: RouterService;
  floatingIps: FloatingIpService;
  agents: AgentService;
  vpn: VpnServices;
  collections: ResourceService[];
}

registerQuotaResource('security_group', 'security_groups', 10);
registerQuotaResource('security_group_rule', 'security_group_rules', 100);
registerQuotaResource('router', 'routers', 10);
registerQuotaResource('floatingip', 'floatingips', 50);

export function createServices(store: Store, config: ServiceConfig = DEFAULT_SERVICE_CONFIG): Services {
  const networks = new NetworkService(store, config.segments);
  const subnets = new SubnetService(store);
  const ports = new PortService(store);
  const quotas = new QuotaService(store);
  const securityGroups = new SecurityGroupService(store);
  const securityGroupRules = new SecurityGroupRuleService(store);
  const addressGroups = new AddressGroupService(store);
  const routers = new RouterService(store, ports);
  const floatingIps = new FloatingIpService(store, ports);
  const agents = new AgentService(store);
  const vpn = createVpnServices(store, config.secretBox ?? SecretBox.ephemeral());
  return {
    networks,
    subnets,
    ports,
    quotas,
    securityGroups,
    securityGroupRules,
    addressGroups,
    routers,
    floatingIps,
    agents,
    vpn,
    collections: [
      networks, subnets, ports, securityGroups, securityGroupRules, addressGroups, routers, floatingIps, agents,
      vpn.ikePolicies, vpn.ipsecPolicies, vpn.vpnServices, vpn.endpointGroups, vpn.connections,
    ],
  };
}
