// The API extensions Nucleon implements, as GET /v2.0/extensions lists them.
// Clients (openstacksdk, the CLI, Terraform) look here before using a feature,
// so an alias belongs in this list only when its behaviour is really there.
export interface Extension { name: string; alias: string; description: string; updated: string; links: never[] }

export const EXTENSIONS: Extension[] = [
  { name: "agent", alias: "agent", description: "The agent management extension.", updated: "2013-02-03T10:00:00-00:00", links: [] },
  { name: "Allowed Address Pairs", alias: "allowed-address-pairs", description: "Provides allowed address pairs", updated: "2013-07-23T10:00:00-00:00", links: [] },
  { name: "Empty String Filtering Extension", alias: "empty-string-filtering", description: "Allow filtering by attributes with empty string value", updated: "2018-05-01T10:00:00-00:00", links: [] },
  { name: "Neutron external network", alias: "external-net", description: "Adds external network attribute to network resource.", updated: "2013-01-14T10:00:00-00:00", links: [] },
  { name: "Neutron Extra DHCP options", alias: "extra_dhcp_opt", description: "Extra options configuration for DHCP. For example PXE boot options to DHCP clients can be specified (e.g. tftp-server, server-ip-address, bootfile-name)", updated: "2013-03-17T12:00:00-00:00", links: [] },
  { name: "Network MTU", alias: "net-mtu", description: "Provides MTU attribute for a network resource.", updated: "2015-03-25T10:00:00-00:00", links: [] },
  { name: "Network MTU (writable)", alias: "net-mtu-writable", description: "Provides a writable MTU attribute for a network resource.", updated: "2017-07-12T00:00:00-00:00", links: [] },
  { name: "Pagination support", alias: "pagination", description: "Extension that indicates that pagination is enabled.", updated: "2016-06-12T00:00:00-00:00", links: [] },
  { name: "Port Binding", alias: "binding", description: "Expose port bindings of a virtual port to external application", updated: "2014-02-03T10:00:00-00:00", links: [] },
  { name: "Port Bindings Extended", alias: "binding-extended", description: "Expose port bindings of a virtual port to external application", updated: "2017-07-17T10:00:00-00:00", links: [] },
  { name: "Port Security", alias: "port-security", description: "Provides port security", updated: "2012-07-23T10:00:00-00:00", links: [] },
  { name: "project_id field enabled", alias: "project-id", description: "Extension that indicates that project_id field is enabled.", updated: "2016-09-09T09:09:09-09:09", links: [] },
  { name: "Provider Network", alias: "provider", description: "Expose mapping of virtual networks to physical networks", updated: "2012-09-07T10:00:00-00:00", links: [] },
  { name: "Quota engine limit check", alias: "quota-check-limit", description: "Support for checking the resource usage before applying a new quota limit", updated: "2021-09-08T16:00:00-00:00", links: [] },
  { name: "Quota management support", alias: "quotas", description: "Expose functions for quotas management per project", updated: "2012-07-29T10:00:00-00:00", links: [] },
  { name: "Quota details management support", alias: "quota_details", description: "Expose functions for quotas usage statistics per project", updated: "2017-02-10T10:00:00-00:00", links: [] },
  { name: "If-Match constraints based on revision_number", alias: "revision-if-match", description: "Extension indicating that If-Match based on revision_number is supported.", updated: "2016-12-11T00:00:00-00:00", links: [] },
  { name: "Resource revision numbers", alias: "standard-attr-revisions", description: "This extension will display the revision number of neutron resources.", updated: "2016-04-11T10:00:00-00:00", links: [] },
  { name: "Sorting support", alias: "sorting", description: "Extension that indicates that sorting is enabled.", updated: "2016-06-12T00:00:00-00:00", links: [] },
  { name: "standard-attr-description", alias: "standard-attr-description", description: "Extension to add descriptions to standard attributes", updated: "2016-02-10T10:00:00-00:00", links: [] },
  { name: "Tag support for resources with standard attribute: port, subnet, subnetpool, network, security_group, router, floatingip, policy, trunk, network_segment_range", alias: "standard-attr-tag", description: "Enables to set tag on resources with standard attribute.", updated: "2017-01-01T00:00:00-00:00", links: [] },
  { name: "Resource timestamps", alias: "standard-attr-timestamp", description: "Adds created_at and updated_at fields to all Neutron resources that have Neutron standard attributes.", updated: "2016-09-12T10:00:00-00:00", links: [] },
];
