// The apply step: converge the host to a HostPlan (see apply.ts), and the
// sandbox VMs used to plug test "VMs" into it (../sandbox.ts).
export { applyPlan, planSteps, executeSteps, readFirewallFacts, ApplyError, type ApplyOptions, type ApplyResult } from './apply.ts';
export { diffHost, describeStep, PHASES, type Step, type StepKind, type DiffOptions, type DiffResult } from './diff.ts';
export { readHostState, type HostState, type NamespaceState, type LinkState, type DhcpState } from './host-state.ts';
export { renderTable, chainHash, diffTable, conntrackCuts, countStatements, NFT_PREFIX } from './nft.ts';
export type { Logger } from './exec.ts';
