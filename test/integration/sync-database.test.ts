import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { createPgSyncDatabase, defineEntity } from '../../src/index.js';
import { createDatabase, openPool } from '../support/postgres.js';
import { onPool, READING_DDL, reading, syncDatabaseSuite } from '../support/sync-database-suite.js';

describe('SyncDatabase on PostgreSQL', () => {
  const open = async () => {
    const { pool } = await createDatabase('syncdb');
    await pool.query(READING_DDL);
    return pool;
  };
  syncDatabaseSuite(async () => onPool(await open()));

  it('rolls back a transaction that throws', async () => {
    const pool = await open();
    const db = createPgSyncDatabase(pool);
    await expect(
      db.transaction(async (tx) => {
        await tx.write(reading, [['1', 'A', '1', '1', null, null]], {});
        throw new Error('changed my mind');
      }),
    ).rejects.toThrow('changed my mind');
    expect(await db.query(reading)).toEqual([]);
    const open_ = await pool.query(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'",
    );
    expect(open_.rows[0].n).toBe(0);
  });

  it('finds tables through the search_path, or by an explicit schema', async () => {
    const { pool, name, url } = await createDatabase('syncdb_schema');
    await pool.query(
      `CREATE SCHEMA "Sync Data"; ${READING_DDL.replace('TABLE reading', 'TABLE "Sync Data".reading')}`,
    );
    expect(await createPgSyncDatabase(pool).describe(reading)).toBeUndefined();
    const qualified = defineEntity({
      ...reading,
      table: { schema: 'Sync Data', name: 'reading' },
      key: ['meter_id', 'element'],
    });
    const written = await createPgSyncDatabase(pool).transaction((tx) =>
      tx.write(qualified, [['1', 'A', '1', '1', null, null]], {}),
    );
    expect(written.inserted).toEqual([['1', 'A']]);
    await pool.query(`ALTER DATABASE ${name} SET search_path = "Sync Data", public`);
    expect(await createPgSyncDatabase(openPool(url)).query(reading)).toEqual([
      { meter_id: 1n, element: 'A', tenant_id: 1, value: '1', tags: null, extra: null },
    ]);
  });

  it("names the entity when the session's connection is lost and a new one cannot be made", async () => {
    const { url, pool: admin } = await createDatabase('syncdb');
    const application = `reconnect_${process.pid}`;
    const sessions = new pg.Pool({ connectionString: url, application_name: application, max: 2 });
    sessions.on('error', () => undefined);
    let refuse = false;
    const pool = {
      async connect() {
        if (refuse)
          throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), {
            code: 'ECONNREFUSED',
          });
        return sessions.connect();
      },
    };
    try {
      await createPgSyncDatabase(pool).session(async (db) => {
        await db.transaction(async () => undefined, { entity: 'meter' });
        await admin.query(
          'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1',
          [application],
        );
        await new Promise((resolve) => setTimeout(resolve, 200));
        refuse = true;
        await expect(db.transaction(async () => undefined, { entity: 'meter' })).rejects.toThrow(
          /^meter: connecting to the sync database again failed: connect ECONNREFUSED/,
        );
      });
    } finally {
      await sessions.end();
    }
  });
});
