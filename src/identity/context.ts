// What the Networking API knows about the caller once its token is validated.
// Built by the identity service (src/identity), consumed by policy and services.
export interface AuthContext {
  userId: string;
  userName: string;
  /** The project the token is scoped to. */
  projectId: string;
  projectName: string;
  domainId: string;
  /** Effective role names, implied roles included (admin ⊃ member ⊃ reader). */
  roles: string[];
  /** Holds the admin role: sees and changes every project's resources. */
  isAdmin: boolean;
  /** Holds member (or admin): may write within its own project. A reader may not. */
  canWrite: boolean;
  expiresAt: string;
}

/** The seam the Networking API uses to turn an X-Auth-Token into a caller. */
export interface TokenValidator {
  /** null when the token is unknown, expired or revoked. */
  validateToken(token: string): Promise<AuthContext | null>;
}

/** A caller that is the system itself (agents, bootstrap): admin with no project. */
export function systemContext(): AuthContext {
  return {
    userId: 'nucleon', userName: 'nucleon', projectId: '', projectName: '', domainId: 'default',
    roles: ['admin', 'member', 'reader'], isAdmin: true, canWrite: true, expiresAt: '9999-12-31T23:59:59Z',
  };
}
