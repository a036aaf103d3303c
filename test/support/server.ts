// A whole Nucleon for API tests: the same startNucleon that `nucleon serve`
// runs (identity + Networking API, real HTTP on 127.0.0.1 ephemeral ports),
// over a fresh database of the chosen back-end, plus a small fetch client.
//
//   const cloud = await startTestCloud('sqlite');
//   const alice = cloud.api(await cloud.tokenFor('alice', 'member'));
//   const r = await alice.post('/v2.0/networks', { network: { name: 'n' } });
//
// Everything started here is stopped and removed when the test file ends.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import { startNucleon, type Nucleon } from '../../src/server.ts';
import { freshDatabaseUrl, type BackendName } from './backends.ts';

export type Role = 'admin' | 'member' | 'reader';

/** JSON as the tests read it (shapes are asserted, not typed). */
export type Json = any;

export interface ApiResponse {
  status: number;
  headers: Headers;
  /** The parsed JSON body, or null when the body is empty or not JSON. */
  body: Json;
  /** The body as received. */
  text: string;
}

/**
 * A request body: an object is sent as JSON; a string or Uint8Array is sent as it
 * is (malformed JSON, oversized bodies); undefined sends no body.
 */
export type RequestBody = unknown;

export interface ApiClient {
  /** path is relative to the Networking API (`/v2.0/networks`) or a full URL (pagination links). */
  get(path: string, body?: RequestBody, headers?: Record<string, string>): Promise<ApiResponse>;
  post(path: string, body?: RequestBody, headers?: Record<string, string>): Promise<ApiResponse>;
  put(path: string, body?: RequestBody, headers?: Record<string, string>): Promise<ApiResponse>;
  del(path: string, body?: RequestBody, headers?: Record<string, string>): Promise<ApiResponse>;
  request(method: string, path: string, body?: RequestBody, headers?: Record<string, string>): Promise<ApiResponse>;
}

export interface Principal {
  token: string;
  projectId: string;
  userId: string;
  project: string;
  user: string;
  password: string;
}

export interface TestCloud {
  backend: BackendName;
  nucleon: Nucleon;
  /** http://127.0.0.1:PORT of the Networking API */
  networkUrl: string;
  /** http://127.0.0.1:PORT of the identity API (Keystone v3 is under /v3) */
  identityUrl: string;
  dataDir: string;
  adminPassword: string;
  /** A token of user admin on project admin. */
  adminToken: string;
  /** A token for a user holding `role` on `project` (both created on first use; cached). */
  tokenFor(project: string, role: Role): Promise<string>;
  /** Same, with the ids and credentials behind the token. */
  principal(project: string, role: Role): Promise<Principal>;
  /** A client of the Networking API sending X-Auth-Token: token (none when undefined). */
  api(token?: string): ApiClient;
  close(): Promise<void>;
}

const running = new Set<TestCloud>();
after(async () => {
  for (const cloud of [...running].reverse()) await cloud.close().catch(() => {});
});

function parse(text: string): Json {
  if (text === '') return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

export function apiClient(baseUrl: string, token?: string): ApiClient {
  const request = async (method: string, p: string, body?: RequestBody, headers: Record<string, string> = {}): Promise<ApiResponse> => {
    const url = /^https?:\/\//.test(p) ? p : `${baseUrl}${p}`;
    const h: Record<string, string> = { Accept: 'application/json', ...headers };
    if (token !== undefined) h['X-Auth-Token'] = token;
    let payload: string | Uint8Array | undefined;
    if (typeof body === 'string' || body instanceof Uint8Array) payload = body;
    else if (body !== undefined) payload = JSON.stringify(body);
    if (payload !== undefined && !Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['Content-Type'] = 'application/json';
    const res = await fetch(url, { method, headers: h, body: payload as BodyInit | undefined, signal: AbortSignal.timeout(30_000) });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: parse(text), text };
  };
  return {
    request,
    get: (p, b, h) => request('GET', p, b, h),
    post: (p, b, h) => request('POST', p, b, h),
    put: (p, b, h) => request('PUT', p, b, h),
    del: (p, b, h) => request('DELETE', p, b, h),
  };
}

export async function startTestCloud(backend: BackendName, opts: { adminPassword?: string } = {}): Promise<TestCloud> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'nucleon-cloud-'));
  const db = await freshDatabaseUrl(backend);
  const adminPassword = opts.adminPassword ?? `admin-${crypto.randomBytes(8).toString('hex')}`;
  let nucleon: Nucleon;
  try {
    nucleon = await startNucleon({
      dataDir, databaseUrl: db.url, host: '127.0.0.1', networkPort: 0, identityPort: 0, adminPassword, logger: false,
    });
  } catch (e) {
    await db.drop().catch(() => {});
    fs.rmSync(dataDir, { recursive: true, force: true });
    throw e;
  }

  const principals = new Map<string, Promise<Principal>>();
  const principal = (project: string, role: Role): Promise<Principal> => {
    const key = `${project}\0${role}`;
    let p = principals.get(key);
    if (!p) {
      p = (async () => {
        const user = `${project}-${role}`;
        const password = `pw-${crypto.randomBytes(8).toString('hex')}`;
        const ids = await nucleon.identity.ensureUser({ project, user, password, role });
        const token = await nucleon.identity.issueToken(user, password, project);
        return { token, project, user, password, ...ids };
      })();
      p.catch(() => principals.delete(key));
      principals.set(key, p);
    }
    return p;
  };

  let closed: Promise<void> | null = null;
  const cloud: TestCloud = {
    backend,
    nucleon,
    networkUrl: nucleon.endpoints.networkUrl,
    identityUrl: nucleon.endpoints.identityUrl,
    dataDir,
    adminPassword,
    adminToken: '',
    tokenFor: async (project, role) => (await principal(project, role)).token,
    principal,
    api: (token) => apiClient(nucleon.endpoints.networkUrl, token),
    close() {
      closed ??= (async () => {
        running.delete(cloud);
        await nucleon.close().catch(() => {});
        await db.drop().catch(() => {});
        fs.rmSync(dataDir, { recursive: true, force: true });
      })();
      return closed;
    },
  };
  running.add(cloud);
  try {
    cloud.adminToken = await nucleon.identity.issueToken('admin', adminPassword, 'admin');
  } catch (e) {
    await cloud.close();
    throw e;
  }
  return cloud;
}

/** The answer's body, after asserting its status (the failure message is the body's text). */
export async function expectStatus(r: Promise<{ status: number; body: Json; text: string }>, status = 200): Promise<Json> {
  const res = await r;
  assert.equal(res.status, status, res.text);
  return res.body;
}
