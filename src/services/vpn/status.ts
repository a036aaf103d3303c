// The status of VPN services and IPsec site connections, as an explicit state
// machine (neutron-vpnaas's lifecycle): the API puts a resource in a PENDING_*
// state, and only an agent's report settles it. Pure: no store, no clock.
//
//   PENDING_CREATE ──report──▶ ACTIVE | DOWN | ERROR
//   ACTIVE | DOWN | ERROR ──update──▶ PENDING_UPDATE ──report──▶ ACTIVE | DOWN | ERROR
//   any but PENDING_DELETE ──delete──▶ PENDING_DELETE ──report ERROR──▶ ERROR
//
// Every state has a way out: a report settles any pending state (an ERROR
// report even a stuck PENDING_DELETE), and an update re-queues a settled one.
export const VPN_STATUSES = ['ACTIVE', 'DOWN', 'ERROR', 'PENDING_CREATE', 'PENDING_UPDATE', 'PENDING_DELETE'] as const;
export type VpnStatus = typeof VPN_STATUSES[number];
export type ReportedStatus = 'ACTIVE' | 'DOWN' | 'ERROR';
export const REPORTED_STATUSES: readonly ReportedStatus[] = ['ACTIVE', 'DOWN', 'ERROR'];

export type VpnEvent =
  | { kind: 'update' }
  | { kind: 'delete' }
  | { kind: 'report'; status: ReportedStatus };

export class InvalidVpnTransition extends Error {
  constructor(readonly from: VpnStatus, readonly event: VpnEvent['kind']) {
    super(`no ${event} from ${from}`);
  }
}

export function isPending(s: VpnStatus): boolean {
  return s.startsWith('PENDING_');
}

/**
 * The next status, or InvalidVpnTransition when the event is refused (an
 * update of a resource being deleted; the API turns that into Neutron's
 * VPNStateInvalidToUpdate).
 */
export function nextStatus(from: VpnStatus, event: VpnEvent): VpnStatus {
  switch (event.kind) {
    case 'update':
      if (from === 'PENDING_DELETE') throw new InvalidVpnTransition(from, 'update');
      // Never realized yet: still a creation for the agent, not an update.
      if (from === 'PENDING_CREATE') return from;
      return 'PENDING_UPDATE';
    case 'delete':
      if (from === 'PENDING_DELETE') throw new InvalidVpnTransition(from, 'delete');
      return 'PENDING_DELETE';
    case 'report':
      // A connection going away is not brought back by a late report; only a failure to remove it is news.
      if (from === 'PENDING_DELETE') return event.status === 'ERROR' ? 'ERROR' : from;
      return event.status;
  }
}

/** A VPN service is ACTIVE when one of its connections is, DOWN otherwise (neutron-vpnaas's agent report). */
export function serviceStatus(connectionStatuses: VpnStatus[]): 'ACTIVE' | 'DOWN' {
  return connectionStatuses.includes('ACTIVE') ? 'ACTIVE' : 'DOWN';
}
