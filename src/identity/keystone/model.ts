// Types shared by the identity modules.
import type { RoleRef } from './roles.ts';

/** Public URLs of the two APIs; filled in after they listen, so always read at use time. */
export interface Endpoints {
  identityUrl: string;
  networkUrl: string;
  region: string;
}

export interface NamedInDomain {
  id: string;
  name: string;
  domainId: string;
  domainName: string;
}

/** A validated token: who, scoped to what, with which effective roles. */
export interface TokenInfo {
  /** SHA-256 of the secret: the key of the token row and of the cache. */
  tokenHash: string;
  user: NamedInDomain;
  /** null for an unscoped token. */
  project: NamedInDomain | null;
  /** Effective roles on the project (implied ones included); empty when unscoped. */
  roles: RoleRef[];
  methods: string[];
  auditId: string;
  issuedAt: Date;
  expiresAt: Date;
}

/** A reference to a domain as Keystone bodies give it: by id, by name, or both. */
export interface DomainRef {
  id?: string;
  name?: string;
}

/** A user or project named either by id, or by name within a domain. */
export type EntityRef = { id: string } | { name: string; domain: DomainRef };

export type RoleName = 'admin' | 'member' | 'reader';
