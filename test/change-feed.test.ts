import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { forEachBackend } from './support/backends.ts';
import { caller } from './support/callers.ts';
import { createServices, type Services } from '../src/services/index.ts';
import { latestSeq, readChanges } from '../src/services/change-feed.ts';
import type { Store } from '../src/store/database.ts';

const alice = caller('feedfeedfeedfeedfeedfeedfeedfeed');

forEachBackend((backend) => {
  describe(`change feed on ${backend.name}`, () => {
    let s: Services;
    let store: Store;
    before(async () => {
      store = await backend.openStore();
      s = createServices(store);
    });

    it('records create, update, tag and delete in order, with revisions', async () => {
      const start = await latestSeq(store.db);
      const n = await s.networks.create(alice, { name: 'fed' });
      await s.networks.update(alice, n.id as string, { name: 'fed2' });
      await s.networks.addTag(alice, n.id as string, 't');
      await s.networks.delete(alice, n.id as string);
      const changes = (await readChanges(store.db, start)).filter((c) => c.resource_id === n.id);
      assert.deepEqual(changes.map((c) => [c.op, c.revision_number]), [['create', 1], ['update', 2], ['update', 3], ['delete', 3]]);
      assert.ok(changes.every((c) => c.resource_type === 'network' && c.project_id === alice.projectId));
      for (let i = 1; i < changes.length; i++) assert.ok(changes[i].seq > changes[i - 1].seq);
    });

    it('writes nothing for a rejected change', async () => {
      const start = await latestSeq(store.db);
      await assert.rejects(s.networks.createBulk(alice, [{ name: 'ok' }, { name: 'bad', foo: 1 }]));
      await assert.rejects(s.networks.createBulk(alice, [{ name: 'ok' }, { 'provider:network_type': 'vlan' }]));
      assert.equal(await latestSeq(store.db), start);
    });

    it('a reader following the feed during concurrent writes misses nothing', async () => {
      const start = await latestSeq(store.db);
      const seen: number[] = [];
      let cursor = start;
      let writing = true;
      const reader = (async () => {
        while (writing || (await latestSeq(store.db)) > cursor) {
          const batch = await readChanges(store.db, cursor, 7);
          for (const c of batch) seen.push(c.seq);
          if (batch.length) cursor = batch[batch.length - 1].seq;
          else await new Promise((r) => setTimeout(r, 2));
        }
      })();
      await Promise.all(Array.from({ length: 40 }, (_, i) => s.networks.create(alice, { name: `c${i}` })));
      writing = false;
      await reader;
      const all = (await readChanges(store.db, start, 10_000)).map((c) => c.seq);
      assert.equal(all.length, 40);
      assert.deepEqual(seen, all, 'the follower saw every change exactly once, in order');
    });
  });
});
