// `nucleon demo vpn` as a user runs it: a child process through bin/nucleon.js
// (root and strongSwan needed). It must exit 0, show both connections and both
// services ACTIVE from the API and pings with no loss both ways, and leave no
// ndemo- namespace behind.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const isRoot = process.getuid?.() === 0;
const haveCharon = fs.existsSync('/usr/sbin/charon-systemd') && fs.existsSync('/usr/sbin/swanctl');
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

describe('nucleon demo vpn (root)', { skip: !isRoot || !haveCharon ? 'needs root and strongSwan' : false }, () => {
  it('builds two sites, brings the tunnel up through the API, pings both ways and cleans up', () => {
    const t0 = Date.now();
    const r = spawnSync(process.execPath, [path.join(ROOT, 'bin/nucleon.js'), 'demo', 'vpn'], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
    const out = `${r.stdout}\n${r.stderr}`;
    assert.equal(r.status, 0, out);
    assert.equal((out.match(/connection .*status=ACTIVE/g) ?? []).length, 2, out);
    assert.equal((out.match(/service .*status=ACTIVE/g) ?? []).length, 2, out);
    assert.equal((out.match(/ 0% packet loss/g) ?? []).length, 2, out);
    const left = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.startsWith('ndemo-'));
    assert.deepEqual(left, []);
    console.log(`# demo vpn took ${Date.now() - t0} ms`);
  });
});
