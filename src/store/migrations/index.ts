import type { Migration } from 'kysely';
import * as m0001 from './0001-networking.ts';
import * as m0002identity from './0002-identity.ts';
import * as m0003 from './0003-change-feed.ts';
import * as m0004 from './0004-security-groups.ts';
import * as m0005 from './0005-l3.ts';
import * as m0006 from './0006-agents.ts';
import * as m0007 from './0007-vpnaas.ts';

// Append new migrations here; never edit one that has shipped.
export const migrations: Record<string, Migration> = {
  '0001-networking': m0001,
  '0002-identity': m0002identity,
  '0003-change-feed': m0003,
  '0004-security-groups': m0004,
  '0005-l3': m0005,
  '0006-agents': m0006,
  '0007-vpnaas': m0007,
};
