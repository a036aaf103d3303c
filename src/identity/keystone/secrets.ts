// Identifiers, passwords and token secrets.
import crypto from 'node:crypto';

/** A Keystone-style id: a uuid4 as 32 hex characters. */
export function newId(): string {
  return crypto.randomUUID().replaceAll('-', '');
}

/** Keystone's timestamp format, microseconds included: 2026-11-24T02:09:16.123000Z. */
export function wireTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

// ---- passwords: scrypt with a random salt ----

// N=2^15 costs ~50-100 ms and 32 MiB per hash; that bounds online guessing
// while staying cheap enough for the rare token issue (validation never hashes).
const SCRYPT = { N: 32768, r: 8, p: 1, keyLength: 32, saltLength: 16 };

function scrypt(password: string, salt: Buffer, N: number, r: number, p: number, keyLength: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    crypto.scrypt(password.normalize('NFC'), salt, keyLength, { N, r, p, maxmem: 256 * N * r }, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** Encodes as scrypt$N$r$p$salt$hash (base64url), so the cost can be raised later without breaking old hashes. */
export async function hashPassword(password: string): Promise<string> {
  const salt = crypto.randomBytes(SCRYPT.saltLength);
  const key = await scrypt(password, salt, SCRYPT.N, SCRYPT.r, SCRYPT.p, SCRYPT.keyLength);
  return ['scrypt', SCRYPT.N, SCRYPT.r, SCRYPT.p, salt.toString('base64url'), key.toString('base64url')].join('$');
}

interface ParsedHash { N: number; r: number; p: number; salt: Buffer; key: Buffer }

function parseHash(stored: string): ParsedHash | null {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return null;
  const [N, r, p] = parts.slice(1, 4).map(Number);
  const salt = Buffer.from(parts[4], 'base64url');
  const key = Buffer.from(parts[5], 'base64url');
  const sane = [N, r, p].every((n) => Number.isInteger(n) && n > 0) && N <= 2 ** 20 && r <= 32 && p <= 16;
  return sane && salt.length > 0 && key.length > 0 ? { N, r, p, salt, key } : null;
}

// Hashing something even when there is nothing to compare with keeps an
// unknown user as slow as a wrong password, so timing does not reveal names.
let dummyHash: Promise<string> | undefined;

/** Constant-time check of password against a stored hash; a null hash (no password) never matches. */
export async function verifyPassword(password: string, stored: string | null): Promise<boolean> {
  const parsed = stored === null ? null : parseHash(stored);
  if (!parsed) {
    dummyHash ??= hashPassword('nucleon-dummy');
    await verifyPassword(password, await dummyHash).catch(() => false);
    return false;
  }
  const key = await scrypt(password, parsed.salt, parsed.N, parsed.r, parsed.p, parsed.key.length);
  return crypto.timingSafeEqual(key, parsed.key);
}

/** A password for the bootstrap admin when none was given: 144 random bits, URL-safe. */
export function generatePassword(): string {
  return crypto.randomBytes(18).toString('base64url');
}

// ---- tokens ----

/** The bearer secret handed to the client: 32 random bytes, URL-safe (43 characters). */
export function newTokenSecret(): string {
  return crypto.randomBytes(32).toString('base64url');
}

/** What the database stores instead of the token: a leaked table holds no usable tokens. */
export function hashToken(token: string): string {
  return crypto.createHash('sha256').update(token).digest('hex');
}

/** Keystone's audit id: 16 random bytes, URL-safe base64 without padding (22 characters). */
export function newAuditId(): string {
  return crypto.randomBytes(16).toString('base64url');
}
