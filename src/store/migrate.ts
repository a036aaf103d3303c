// Versioned migrations, applied at start-up and by `nucleon db migrate`.
// Each migration is a module under ./migrations listed in ./migrations/index.ts
// (a static list, so nothing depends on reading the source tree at run time).
import { Migrator, type Kysely, type MigrationResultSet } from 'kysely';
import { migrations } from './migrations/index.ts';

export async function migrateToLatest(db: Kysely<any>): Promise<MigrationResultSet> {
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => migrations },
    migrationTableName: 'nucleon_migration',
    migrationLockTableName: 'nucleon_migration_lock',
  });
  const result = await migrator.migrateToLatest();
  if (result.error) throw result.error;
  return result;
}
