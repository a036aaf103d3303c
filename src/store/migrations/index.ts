import type { Migration } from 'kysely';
import * as m0001 from './0001-networking.ts';
import * as m0002identity from './0002-identity.ts';

// Append new migrations here; never edit one that has shipped.
export const migrations: Record<string, Migration> = {
  '0001-networking': m0001,
  '0002-identity': m0002identity,
};
