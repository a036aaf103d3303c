// The VPNaaS services over one store and secret box, and their quotas
// (neutron-vpnaas registers them unlimited: -1).
import type { Store } from '../../store/database.ts';
import { registerQuotaResource } from '../quota-limits.ts';
import type { SecretBox } from '../secret-box.ts';
import { VpnPolicyService } from './policies.ts';
import { VpnServiceService } from './vpnservices.ts';
import { EndpointGroupService } from './endpoint-groups.ts';
import { IpsecSiteConnectionService } from './connections.ts';

export { reportIpsecStatus, type IpsecStatusReport } from './report.ts';

registerQuotaResource('vpnservice', 'vpn_services', -1);
registerQuotaResource('ipsec_site_connection', 'vpn_ipsec_site_connections', -1);
registerQuotaResource('ikepolicy', 'vpn_ikepolicies', -1);
registerQuotaResource('ipsecpolicy', 'vpn_ipsecpolicies', -1);
registerQuotaResource('endpoint_group', 'vpn_endpoint_groups', -1);

export interface VpnServices {
  ikePolicies: VpnPolicyService;
  ipsecPolicies: VpnPolicyService;
  vpnServices: VpnServiceService;
  endpointGroups: EndpointGroupService;
  connections: IpsecSiteConnectionService;
}

export function createVpnServices(store: Store, box: SecretBox): VpnServices {
  return {
    ikePolicies: VpnPolicyService.ike(store),
    ipsecPolicies: VpnPolicyService.ipsec(store),
    vpnServices: new VpnServiceService(store),
    endpointGroups: new EndpointGroupService(store),
    connections: new IpsecSiteConnectionService(store, box),
  };
}
