// vici: the codec (pure round trips and malformed input), then the client
// against a real charon-systemd in an nvp-<rand> namespace (root only).
// Everything created here is named nvp-<rand> and removed in after().
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  decodeMessage, decodePacket, encodeMessage, encodePacket, PacketReader, PacketType, ViciClient, ViciProtocolError,
} from '../src/agent/vpn/vici.ts';
import { strongswanConf } from '../src/agent/compile/ipsec.ts';
import { run, terminate, isAlive } from '../src/agent/apply/exec.ts';
import { spawn } from 'node:child_process';

describe('vici codec', () => {
  it('round-trips nested sections, lists and key/values', () => {
    const msg = { a: 'x', n: 5, yes: true, no: false, sec: { inner: { deep: 'v' }, l: ['1', 2, ''] }, empty: {}, el: [] as string[] };
    const out = decodeMessage(encodeMessage(msg));
    assert.deepEqual(out, { a: 'x', n: '5', yes: 'yes', no: 'no', sec: { inner: { deep: 'v' }, l: ['1', '2', ''] }, empty: {}, el: [] });
  });

  it('encodes the documented byte layout', () => {
    const b = encodePacket(PacketType.CMD_REQUEST, 'version', { k: 'v', l: ['a'], s: {} });
    const expected = Buffer.from([
      0, 0, 0, 27, // length
      0, 7, ...Buffer.from('version'),
      3, 1, 0x6b, 0, 1, 0x76, // KEY_VALUE k=v
      4, 1, 0x6c, 5, 0, 1, 0x61, 6, // LIST l [a]
      1, 1, 0x73, 2, // SECTION s {}
    ]);
    assert.deepEqual([...b], [...expected]);
  });

  it('unnamed packets carry no name; named ones do', () => {
    const r = encodePacket(PacketType.CMD_RESPONSE, undefined, { success: 'yes' });
    assert.deepEqual(decodePacket(r.subarray(4)), { type: PacketType.CMD_RESPONSE, name: undefined, message: { success: 'yes' } });
    const e = encodePacket(PacketType.EVENT, 'list-sa', { c: { state: 'ESTABLISHED' } });
    assert.deepEqual(decodePacket(e.subarray(4)), { type: PacketType.EVENT, name: 'list-sa', message: { c: { state: 'ESTABLISHED' } } });
    assert.throws(() => encodePacket(PacketType.EVENT_REGISTER, undefined), ViciProtocolError);
  });

  it('splits a byte stream into packets across arbitrary chunk boundaries', () => {
    const stream = Buffer.concat([
      encodePacket(PacketType.EVENT_CONFIRM, undefined),
      encodePacket(PacketType.EVENT, 'x', { a: ['1', '2'] }),
      encodePacket(PacketType.CMD_RESPONSE, undefined, { s: { t: 'u' } }),
    ]);
    for (const size of [1, 2, 3, 7, stream.length]) {
      const reader = new PacketReader();
      const got = [];
      for (let i = 0; i < stream.length; i += size) got.push(...reader.push(stream.subarray(i, i + size)));
      assert.deepEqual(got.map((p) => p.type), [PacketType.EVENT_CONFIRM, PacketType.EVENT, PacketType.CMD_RESPONSE]);
      assert.deepEqual(got[1].message, { a: ['1', '2'] });
    }
  });

  it('rejects malformed messages without echoing values', () => {
    assert.throws(() => decodeMessage(Buffer.from([3, 1, 0x6b, 0, 9, 0x76])), /truncated/);
    assert.throws(() => decodeMessage(Buffer.from([2])), /unbalanced/);
    assert.throws(() => decodeMessage(Buffer.from([1, 1, 0x73])), /unterminated/);
    assert.throws(() => decodeMessage(Buffer.from([5, 0, 0])), /outside a list/);
    assert.throws(() => decodeMessage(Buffer.from([9])), /unknown vici element/);
    const secret = 'x'.repeat(70000);
    assert.throws(() => encodeMessage({ data: secret }), (e: Error) => !e.message.includes('xxxx'));
  });
});

const isRoot = process.getuid?.() === 0;
const haveCharon = fs.existsSync('/usr/sbin/charon-systemd');

describe('vici client against charon-systemd', { skip: !isRoot || !haveCharon ? 'needs root and charon-systemd' : false }, () => {
  const rand = randomBytes(3).toString('hex');
  const ns = `nvp-${rand}-v`;
  let dir = '';
  let pid = 0;
  let client: ViciClient;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), `nvp-${rand}-`));
    fs.chmodSync(dir, 0o700);
    fs.writeFileSync(path.join(dir, 'strongswan.conf'), strongswanConf(dir), { mode: 0o600 });
    assert.equal((await run(['ip', 'netns', 'add', ns])).code, 0);
    await run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    const child = spawn('ip', ['netns', 'exec', ns, '/usr/sbin/charon-systemd'], {
      detached: true, stdio: 'ignore', env: { ...process.env, STRONGSWAN_CONF: path.join(dir, 'strongswan.conf') },
    });
    child.unref();
    pid = child.pid!;
    const deadline = Date.now() + 5000;
    for (;;) {
      try {
        client = await ViciClient.connect(path.join(dir, 'charon.vici'), { timeoutMs: 3000 });
        break;
      } catch (e) {
        if (Date.now() > deadline || !isAlive(pid)) throw e;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  });

  after(async () => {
    client?.close();
    if (pid) await terminate([pid], 3000);
    await run(['ip', 'netns', 'del', ns]);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('version', async () => {
    const v = await client.request('version');
    assert.equal(v.daemon, 'charon-systemd');
    assert.match(String(v.version), /^\d+\.\d+/);
  });

  it('load-conn, load-shared, list-conns (streamed), get-conns, unload-conn', async () => {
    await client.call('load-shared', { id: 'psk-t', type: 'IKE', data: 'not-logged-secret', owners: ['192.0.2.1', '192.0.2.2'] });
    assert.deepEqual((await client.call('get-shared')).keys, ['psk-t']);
    await client.call('load-conn', {
      t1: {
        version: 2, local_addrs: ['192.0.2.1'], remote_addrs: ['192.0.2.2'], proposals: ['aes128-sha256-modp2048'],
        local: { auth: 'psk', id: '192.0.2.1' }, remote: { auth: 'psk', id: '192.0.2.2' },
        children: { t1: { local_ts: ['10.1.0.0/24'], remote_ts: ['10.2.0.0/24'], esp_proposals: ['aes128-sha256'], start_action: 'none' } },
      },
    });
    const { events, response } = await client.streamed('list-conns', 'list-conn');
    assert.deepEqual(response, {});
    assert.equal(events.length, 1);
    const t1 = events[0].t1 as Record<string, any>;
    assert.deepEqual(t1.remote_addrs, ['192.0.2.2']);
    assert.deepEqual(t1.children.t1['remote-ts'], ['10.2.0.0/24']);
    assert.deepEqual((await client.call('get-conns')).conns, ['t1']);
    await client.call('unload-conn', { name: 't1' });
    await client.call('unload-shared', { id: 'psk-t' });
    assert.deepEqual((await client.call('get-conns')).conns ?? [], []);
  });

  it('reports charon errors and unknown commands', async () => {
    await assert.rejects(client.call('load-conn', { bad: { version: 2, proposals: ['nosuchcipher-sha256'], local: { auth: 'psk' }, remote: { auth: 'psk' } } }), /load-conn failed/);
    await assert.rejects(client.request('no-such-command'), /unknown command/);
    // The connection is still usable afterwards.
    assert.equal((await client.request('version')).daemon, 'charon-systemd');
  });

  it('event streaming: subscribe to log events while a command runs', async () => {
    const seen: unknown[] = [];
    const unsubscribe = await client.subscribe('log', (m) => seen.push(m));
    await client.request('initiate', { child: 'nope', timeout: 100 });
    await unsubscribe();
    // A request on the same connection still works after the events.
    assert.equal((await client.request('version')).daemon, 'charon-systemd');
  });

  it('times out and closes when nothing answers', async () => {
    const net = await import('node:net');
    const sock = path.join(dir, 'silent.sock');
    const server = net.createServer(() => {}).listen(sock);
    await new Promise((r) => server.once('listening', r));
    const c = await ViciClient.connect(sock, { timeoutMs: 200 });
    const t0 = Date.now();
    await assert.rejects(c.request('version'), /timed out/);
    assert.ok(Date.now() - t0 < 2000);
    await assert.rejects(c.request('version'));
    server.close();
  });
});
