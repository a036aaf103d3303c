// The agent loop's IPsec step with fake deps (no root): statuses reported
// after a pass, only when they change; while an initiator is DOWN the IPsec
// step alone re-runs on its short timer (no full pass), and stops once every
// initiator is up.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import os from 'node:os';
import type { Store } from '../src/store/database.ts';
import { Agent, type AgentDeps, type PassResult } from '../src/agent/agent.ts';
import type { HostConfig } from '../src/agent/model.ts';
import type { HostPlan, IpsecInstance } from '../src/agent/plan.ts';
import type { IpsecApplyResult } from '../src/agent/apply/ipsec.ts';
import type { IpsecStatus } from '../src/agent/vpn/status.ts';
import { BACKENDS } from './support/backends.ts';

const config: HostConfig = {
  host: 'ipsec-loop-host', bridgeMappings: {}, vlanInterfaces: {}, underlayIp: null, underlayInterface: null,
  networkNode: true, namespacePrefix: 'nvp-loop-', stateDir: os.tmpdir(),
};
const instance: IpsecInstance = {
  router_id: 'r1', namespace: 'nvp-loop-qrouter-r1', dir: '/nonexistent', strongswanConf: '',
  connections: [{ id: 'c1', conn: {}, secret: { id: 'psk-c1', type: 'IKE', data: 'never-shown', owners: [] }, initiate: true, child: 'c1' }],
};
const plan: HostPlan = { host: config.host, namespaces: [], firewall: [], dhcp: [], bindings: [], routers: [], floatingips: [], portIndexes: {}, networkZones: {}, ipsec: [instance] };

describe('agent loop: IPsec step', () => {
  let store: Store;
  let agent: Agent;
  before(async () => {
    store = await BACKENDS[0].openStore();
  });
  after(async () => {
    await agent?.stop();
  });

  it('reports statuses, retries DOWN initiators every ipsecRetryMs without full passes, stops when ACTIVE', async () => {
    let calls = 0;
    const seenPlans: Array<IpsecInstance[] | undefined> = [];
    const deps: AgentDeps = {
      compile: () => plan,
      apply: async () => ({ changed: 0 }),
      readFirewallFacts: async () => ({ portIndexes: {}, networkZones: {} }),
      listTaps: async () => [],
      applyIpsec: async (p): Promise<IpsecApplyResult> => {
        calls++;
        seenPlans.push(p.ipsec);
        const up = calls >= 4;
        return { statuses: { c1: up ? 'ACTIVE' : 'DOWN' }, pendingInitiators: up ? [] : ['c1'], errors: {} };
      },
    };
    const reports: Array<Record<string, IpsecStatus>> = [];
    const passes: PassResult[] = [];
    agent = new Agent({
      store, config, deps, dataPlane: true, resyncIntervalMs: 60_000, reportIntervalMs: 60_000, ipsecRetryMs: 50,
      reportIpsec: async (_s, r) => { reports.push(r.connections); },
      logger: pino({ level: 'silent' }),
    });
    agent.on('pass', (r: PassResult) => passes.push(r));
    const first = await agent.start();
    assert.equal(first.error, undefined);
    assert.deepEqual(reports, [{ c1: 'DOWN' }]);
    const t0 = Date.now();
    while (calls < 4 && Date.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 20));
    assert.equal(calls, 4);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(calls, 4, 'no more retries once every initiator is ACTIVE');
    assert.deepEqual(reports, [{ c1: 'DOWN' }, { c1: 'ACTIVE' }], 'unchanged statuses are not reported again');
    assert.equal(agent.lastIpsec?.statuses.c1, 'ACTIVE');
    assert.ok(passes.length <= 2, `retries are not full passes (${passes.length})`);
    assert.ok(seenPlans.every((p) => p === plan.ipsec));
  });
});
