// Typed errors of the Identity API, rendered once (see app.ts) as Keystone's
// body {"error": {"code", "message", "title"}}. They are separate from the
// Neutron errors in src/errors.ts because the two APIs use different bodies.
export abstract class KeystoneError extends Error {
  abstract readonly code: number;
  abstract readonly title: string;
}

/** 400: the body or query is malformed (Keystone's ValidationError). */
export class ValidationError extends KeystoneError {
  readonly code = 400;
  readonly title = 'Bad Request';
}

/** 401: missing, bad or expired credentials. The message never says which, like Keystone. */
export class Unauthorized extends KeystoneError {
  readonly code = 401;
  readonly title = 'Unauthorized';
  constructor(message = 'The request you have made requires authentication.') {
    super(message);
  }
}

/** 403 with the policy rule that refused, e.g. identity:create_project. */
export class Forbidden extends KeystoneError {
  readonly code = 403;
  readonly title = 'Forbidden';
  constructor(action: string) {
    super(`You are not authorized to perform the requested action: ${action}.`);
  }
}

export class NotFound extends KeystoneError {
  readonly code = 404;
  readonly title = 'Not Found';
  constructor(message = 'The resource could not be found.') {
    super(message);
  }
  /** Keystone's wording: `Could not find project: abc.` */
  static of(kind: string, id: string): NotFound {
    return new NotFound(`Could not find ${kind}: ${id}.`);
  }
}

export class Conflict extends KeystoneError {
  readonly code = 409;
  readonly title = 'Conflict';
  constructor(kind: string, detail: string) {
    super(`Conflict occurred attempting to store ${kind} - ${detail}.`);
  }
}

export interface ErrorBody {
  error: { code: number; message: string; title: string };
}

export function errorBody(code: number, title: string, message: string): ErrorBody {
  return { error: { code, message, title } };
}
