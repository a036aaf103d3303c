// clouds.yaml for the OpenStack CLI and SDKs: cloud `nucleon`, the bootstrap
// admin. The file holds a password, so it is written 0600 and atomically (a
// reader never sees half a file, and the secret never sits in a looser file).
import fs from 'node:fs';
import path from 'node:path';
import type { Endpoints } from './keystone/model.ts';

export const CLOUD_NAME = 'nucleon';

/** A YAML double-quoted scalar; JSON's string escapes are a subset of YAML's. */
const q = (s: string) => JSON.stringify(s);

export function renderCloudsYaml(endpoints: Endpoints, password: string): string {
  return [
    '# Written by nucleon: the bootstrap admin of this deployment.',
    '# Use: OS_CLIENT_CONFIG_FILE=<this file> openstack --os-cloud nucleon ...',
    'clouds:',
    `  ${CLOUD_NAME}:`,
    '    auth:',
    `      auth_url: ${q(`${endpoints.identityUrl.replace(/\/+$/, '')}/v3`)}`,
    `      username: ${q('admin')}`,
    `      password: ${q(password)}`,
    `      project_name: ${q('admin')}`,
    `      user_domain_name: ${q('Default')}`,
    `      project_domain_name: ${q('Default')}`,
    `    region_name: ${q(endpoints.region)}`,
    '    identity_api_version: 3',
    `    interface: ${q('public')}`,
    '',
  ].join('\n');
}

/** Decodes one YAML scalar as found after `key:` (double-quoted, single-quoted or plain). */
function yamlScalar(raw: string): string {
  const v = raw.trim();
  if (v.startsWith('"')) {
    try {
      return JSON.parse(v) as string;
    } catch {
      return v.slice(1, v.lastIndexOf('"'));
    }
  }
  if (v.startsWith("'")) return v.slice(1, v.lastIndexOf("'")).replaceAll("''", "'");
  return v.replace(/\s+#.*$/, '');
}

/**
 * The password of cloud `nucleon` in a clouds.yaml, or null. A small reader
 * for the shape this module writes (block mappings, one scalar per line), not
 * a YAML parser: it follows indentation down clouds → nucleon → auth → password.
 */
export function readCloudPassword(text: string): string | null {
  const wanted = ['clouds', CLOUD_NAME, 'auth', 'password'];
  const stack: { indent: number; key: string }[] = [];
  for (const line of text.split(/\r?\n/)) {
    const m = /^(\s*)([^\s#:][^:]*?)\s*:(\s.*)?$/.exec(line);
    if (!m) continue;
    const indent = m[1].length;
    const key = yamlScalar(m[2]);
    while (stack.length > 0 && stack[stack.length - 1].indent >= indent) stack.pop();
    stack.push({ indent, key });
    if (stack.length === wanted.length && stack.every((s, i) => s.key === wanted[i])) {
      const value = yamlScalar(m[3] ?? '');
      return value === '' ? null : value;
    }
  }
  return null;
}

/**
 * Writes DIR/clouds.yaml (0600). With password null, an existing file's
 * password is kept and the other fields refreshed (new ports after a restart);
 * with neither, nothing is written. Returns the path written, or null.
 */
export function writeCloudsYaml(dataDir: string, endpoints: Endpoints, password: string | null): string | null {
  const file = path.join(dataDir, 'clouds.yaml');
  let secret = password;
  if (secret === null) {
    try {
      secret = readCloudPassword(fs.readFileSync(file, 'utf8'));
    } catch {
      secret = null;
    }
  }
  if (secret === null) return null;
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    fs.writeFileSync(tmp, renderCloudsYaml(endpoints, secret), { mode: 0o600 });
    fs.chmodSync(tmp, 0o600);
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  return file;
}
