// Secrets at rest (VPN pre-shared keys): AES-256-GCM with one key per
// deployment, kept beside the database in <dataDir>/secret.key (32 random
// bytes, mode 0600, made on first start). A dump of the database alone never
// reveals a PSK; the key file and the database together do, which is the
// point: the agent must be able to decrypt.
//
// Sealed form: "v1:" + base64(iv ‖ tag ‖ ciphertext), so a later key or
// algorithm change can be told apart by its prefix.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

const VERSION = 'v1:';
const IV_BYTES = 12;
const TAG_BYTES = 16;
export const KEY_BYTES = 32;

export class SecretBox {
  private readonly key: Buffer;

  constructor(key: Buffer) {
    if (key.length !== KEY_BYTES) throw new Error(`secret key must be ${KEY_BYTES} bytes, not ${key.length}`);
    this.key = Buffer.from(key);
  }

  /** A box with a fresh key that lives only in memory (tests, stores without a data dir). */
  static ephemeral(): SecretBox {
    return new SecretBox(crypto.randomBytes(KEY_BYTES));
  }

  encrypt(plain: string): string {
    const iv = crypto.randomBytes(IV_BYTES);
    const cipher = crypto.createCipheriv('aes-256-gcm', this.key, iv);
    const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return VERSION + Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64');
  }

  /** Throws when the value was sealed with another key or was tampered with (GCM's tag). */
  decrypt(sealed: string): string {
    if (!sealed.startsWith(VERSION)) throw new Error('not a sealed secret');
    const raw = Buffer.from(sealed.slice(VERSION.length), 'base64');
    const iv = raw.subarray(0, IV_BYTES);
    const tag = raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES);
    const decipher = crypto.createDecipheriv('aes-256-gcm', this.key, iv);
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8');
  }
}

export const SECRET_KEY_FILE = 'secret.key';

/**
 * The deployment's key from <dataDir>/secret.key, created (0600, exclusive, so
 * two processes starting at once agree on one key) when absent.
 */
export function loadOrCreateKey(dataDir: string): Buffer {
  const file = path.join(dataDir, SECRET_KEY_FILE);
  fs.mkdirSync(dataDir, { recursive: true });
  try {
    fs.writeFileSync(file, crypto.randomBytes(KEY_BYTES), { mode: 0o600, flag: 'wx' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  const key = fs.readFileSync(file);
  if (key.length !== KEY_BYTES) throw new Error(`${file} must hold ${KEY_BYTES} bytes`);
  return key;
}
