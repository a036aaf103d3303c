import type { Migration } from 'kysely';
import * as m0001 from './0001-networking.ts';

// Append new migrations here; never edit one that has shipped.
export const migrations: Record<string, Migration> = {
  '0001-networking': m0001,
};
