// Callers for service-level tests: the AuthContext the identity service would
// build from a token, for a given project and role.
import type { AuthContext } from '../../src/identity/context.ts';

export function caller(projectId: string, role: 'admin' | 'member' | 'reader' = 'member'): AuthContext {
  const roles = role === 'admin' ? ['admin', 'member', 'reader'] : role === 'member' ? ['member', 'reader'] : ['reader'];
  return {
    userId: `user-of-${projectId}`, userName: `user-of-${projectId}`,
    projectId, projectName: projectId, domainId: 'default', roles,
    isAdmin: role === 'admin', canWrite: role !== 'reader', expiresAt: '2999-01-01T00:00:00Z',
  };
}
