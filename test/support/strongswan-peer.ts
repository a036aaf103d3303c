// A hand-configured strongSwan, the way an operator sets one up (an "office
// router", or the plain libipsec tunnel bench:vpn compares against): its own
// strongswan.conf and swanctl.conf, charon-systemd in a namespace, loaded with
// swanctl. Nothing here is Nucleon's code path: that is the point of a peer.
// Shared by the IPsec tests and bench/vpn.ts (recipe: linux-dataplane.md §1).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { run } from '../../src/agent/apply/exec.ts';
import { until } from '../../src/util/until.ts';

export interface PeerConnection {
  /** Connection name in swanctl.conf (the child is `lan`). */
  name: string;
  version: 1 | 2;
  localAddr: string;
  remoteAddr: string;
  localId: string;
  remoteId: string;
  /** IKE proposals, e.g. aes128-sha1-modp2048; ESP uses the same unless espProposals is given. */
  proposals: string;
  espProposals?: string;
  localTs: string;
  remoteTs: string;
  /** none: only respond; start: initiate when loaded. */
  startAction: 'none' | 'start';
  psk: string;
}

/** swanctl.conf for one PSK connection with one child. */
export function peerSwanctlConf(c: PeerConnection): string {
  return `connections {
  ${c.name} {
    version = ${c.version}
    local_addrs = ${c.localAddr}
    remote_addrs = ${c.remoteAddr}
    proposals = ${c.proposals}
    local { auth = psk
            id = ${c.localId} }
    remote { auth = psk
             id = ${c.remoteId} }
    children {
      lan {
        local_ts = ${c.localTs}
        remote_ts = ${c.remoteTs}
        esp_proposals = ${c.espProposals ?? c.proposals}
        start_action = ${c.startAction}
      }
    }
  }
}
secrets {
  ike-${c.name} {
    id-1 = ${c.localId}
    id-2 = ${c.remoteId}
    secret = "${c.psk}"
  }
}
`;
}

/** Starts charon-systemd in the namespace with a strongswan.conf in dir (0700); resolves with its pid once vici answers. */
export async function startPeerCharon(dir: string, namespace: string): Promise<number> {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.chmodSync(dir, 0o700);
  fs.writeFileSync(path.join(dir, 'strongswan.conf'), `charon {
  load_modular = no
  load = random nonce openssl aes sha1 sha2 hmac gmp curve25519 kdf pem pkcs1 x509 pubkey kernel-libipsec kernel-netlink socket-default vici
  plugins { vici { socket = unix://${dir}/charon.vici } }
  filelog { log { path = ${dir}/charon.log
    default = 1
    ike = 2
    flush_line = yes } }
  syslog { daemon { default = -1 } }
}
charon-systemd { journal { default = -1 } }
swanctl { socket = unix://${dir}/charon.vici }
`, { mode: 0o600 });
  const ch = spawn('ip', ['netns', 'exec', namespace, '/usr/sbin/charon-systemd'], {
    detached: true, stdio: 'ignore', env: { ...process.env, STRONGSWAN_CONF: path.join(dir, 'strongswan.conf') },
  });
  ch.unref();
  await until(`charon in ${namespace}`, 5000, async () => fs.existsSync(path.join(dir, 'charon.vici')), 30);
  return ch.pid!;
}

/** Writes swanctl.conf (0600) into dir and loads it into that dir's charon; throws with swanctl's words on failure. */
export async function loadPeerConf(dir: string, conf: PeerConnection): Promise<void> {
  fs.writeFileSync(path.join(dir, 'swanctl.conf'), peerSwanctlConf(conf), { mode: 0o600 });
  const r = await run(['swanctl', '--load-all', '--uri', `unix://${dir}/charon.vici`, '--file', path.join(dir, 'swanctl.conf')]);
  if (r.code !== 0) throw new Error(`swanctl --load-all (${conf.name}): ${r.stderr.trim() || r.stdout.trim()}`);
}
