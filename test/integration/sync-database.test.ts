import fc from 'fast-check';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { copyOutByteas } from '../../src/db/pg/copy.js';
import { createPgSyncDatabase, defineEntity, LockedError } from '../../src/index.js';
import { createDatabase, openPool, recordingPool } from '../support/postgres.js';
import { onPool, READING_DDL, reading, syncDatabaseSuite } from '../support/sync-database-suite.js';

describe('SyncDatabase on PostgreSQL', () => {
  const open = async () => {
    const { pool } = await createDatabase('syncdb');
    await pool.query(READING_DDL);
    return pool;
  };
  syncDatabaseSuite(async () => onPool(await open()));

  it('reads keys in the transaction where the pool has no connection to spare, and apart where it has', async () => {
    const request = { scope: { tenantId: 1 }, hash: 'sql' as const, keysOnly: true as const };
    const readWithNewRow = async (max: number) => {
      const { url } = await createDatabase('syncdb_keys');
      const setup = openPool(url, 1);
      await setup.query(READING_DDL);
      await setup.query("INSERT INTO reading (meter_id, element, tenant_id) VALUES (1, 'A', 1)");
      await setup.end();
      const db = createPgSyncDatabase(openPool(url, max));
      return db.transaction(async (tx) => {
        const columns = (await tx.describe(reading)) as NonNullable<
          Awaited<ReturnType<typeof tx.describe>>
        >;
        await tx.write(reading, [['2', 'B', '1', null, null, null]], {});
        const read = tx.keySet?.(reading, { ...request, columns });
        const set = await read?.keys;
        // The transaction goes on writing while keys read apart come.
        await tx.write(reading, [['3', 'C', '1', null, null, null]], {});
        return { apart: read?.apart, keys: (set?.hashes.length ?? 0) / 8 };
      });
    };
    // A pool of one would wait for ever for a second connection: the keys are read in the
    // transaction, with its first write; with room for another, on it, without.
    expect(await readWithNewRow(1)).toEqual({ apart: false, keys: 2 });
    expect(await readWithNewRow(2)).toEqual({ apart: true, keys: 1 });
  });

  /**
   * Looks up 3,000 odd keys in key order in a reading table of 5,000 rows made by `ddl`, with
   * `tenantOf` the tenant of each row (an SQL expression of `i`): what it found, the keys asked,
   * the lookup statement sent and its plan.
   */
  const lookUpKeys = async (database: string, ddl: string, tenantOf: string) => {
    const { url } = await createDatabase(database);
    const pool = openPool(url, 2);
    try {
      await pool.query(ddl);
      await pool.query(
        `INSERT INTO reading (meter_id, element, tenant_id) SELECT i, 'A', ${tenantOf} FROM generate_series(1, 5000) AS i`,
      );
      await pool.query('ANALYZE reading');
      const recorded = recordingPool(pool);
      const db = createPgSyncDatabase(recorded.pool as unknown as pg.Pool);
      const columns = (await db.describe(reading)) as NonNullable<
        Awaited<ReturnType<typeof db.describe>>
      >;
      const keys = Array.from({ length: 3000 }, (_, i) => [String(2 * i + 1), 'A']);
      const found = await db.keyHashesOf(
        reading,
        { scope: { tenantId: 1 }, hash: 'sql', columns },
        keys,
      );
      const lookup = recorded.queries.find((query) => query.text.includes('"wanted"'));
      if (!lookup) throw new Error('no lookup sent');
      const { rows } = await pool.query(`EXPLAIN (FORMAT JSON) ${lookup.text}`, lookup.values);
      const plan = (rows[0]['QUERY PLAN'] as { Plan: Record<string, unknown> }[])[0]?.Plan;
      return { found, keys, lookup, plan };
    } finally {
      await pool.end();
    }
  };

  it('looks keys up one index probe a key, in the order they are given, and finds those it holds', async () => {
    // Keys in key order, as a read gives them: some held, some another tenant's, some nowhere.
    const { found, keys, plan } = await lookUpKeys(
      'syncdb_probes',
      READING_DDL,
      'CASE WHEN i % 10 = 0 THEN 2 ELSE 1 END',
    );
    const held = keys.filter(([id]) => Number(id) <= 5000 && Number(id) % 10 !== 0);
    expect(found.map((row) => row.key).sort()).toEqual(held.sort());
    // A nested loop over the keys as given, an index probe each, the keys not hashed first.
    expect(plan?.['Node Type']).toBe('Nested Loop');
    const inner = (plan?.Plans ?? []) as Record<string, unknown>[];
    expect(inner[0]?.['Node Type']).toBe('Function Scan');
    expect(JSON.stringify(plan)).toContain('Index Scan');
    expect(JSON.stringify(plan)).not.toContain('Hash');
  });

  it('looks keys up by hashing them where the table has no unique index on the key, and finds those it holds', async () => {
    // The reading table without its primary key: a probe a key would scan the whole table.
    const { found, lookup, plan } = await lookUpKeys(
      'syncdb_no_index',
      READING_DDL.replace(', PRIMARY KEY (meter_id, element)', ''),
      '1',
    );
    expect(found).toHaveLength(2500);
    expect(lookup.text).not.toContain('LATERAL');
    // One pass of the table, not one a key.
    expect(JSON.stringify(plan)).toContain('Hash');
  });

  it('gives up a second connection that cannot start its transaction, and reads keys in the transaction from then on', async () => {
    const { url } = await createDatabase('syncdb_stuck');
    const real = openPool(url, 4);
    await real.query(READING_DDL);
    await real.query("INSERT INTO reading (meter_id, element, tenant_id) VALUES (1, 'A', 1)");
    // A pooler with one server connection, held by the transaction: a second waits for ever.
    let destroyed = 0;
    let checkedOut = 0;
    const pooler = {
      get totalCount() {
        return checkedOut;
      },
      idleCount: 0,
      options: { max: 4 },
      async connect() {
        const client = await real.connect();
        checkedOut += 1;
        const stuck = checkedOut > 1;
        return {
          query: (config: pg.QueryConfig) =>
            stuck ? new Promise<never>(() => undefined) : client.query(config),
          release: (error?: Error | boolean) => {
            checkedOut -= 1;
            if (error === true) destroyed += 1;
            client.release(error);
          },
          connection: (client as unknown as { connection: unknown }).connection,
        };
      },
    };
    const db = createPgSyncDatabase(pooler as never);
    const request = { scope: { tenantId: 1 }, hash: 'sql' as const, keysOnly: true as const };
    const readKeys = () =>
      db.transaction(async (tx) => {
        const columns = (await tx.describe(reading)) as NonNullable<
          Awaited<ReturnType<typeof tx.describe>>
        >;
        const read = tx.keySet?.(reading, { ...request, columns });
        const set = await read?.keys;
        return { apart: read?.apart, keys: set && set.hashes.length / 8 };
      });
    const started = Date.now();
    expect(await readKeys()).toEqual({ apart: true, keys: undefined });
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(destroyed).toBe(1);
    expect(await readKeys()).toEqual({ apart: false, keys: 1 });
  });

  it('reads the byte strings of a binary COPY whole, the first where 64-bit words read it in place', async () => {
    const { pool } = await createDatabase('syncdb_copy');
    const client = await pool.connect();
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.option(fc.uint8Array({ maxLength: 300_000 }), { nil: null }), {
            minLength: 1,
            maxLength: 3,
          }),
          async (values) => {
            const fields = values
              .map((value) =>
                value === null
                  ? 'NULL::bytea'
                  : `'\\x${Buffer.from(value).toString('hex')}'::bytea`,
              )
              .join(', ');
            const read = await copyOutByteas(
              client as never,
              `COPY (SELECT ${fields}) TO STDOUT (FORMAT binary)`,
            );
            expect(read.map((field) => Buffer.from(field).toString('hex'))).toEqual(
              values.map((value) => Buffer.from(value ?? []).toString('hex')),
            );
            if (values[0]) expect((read[0]?.byteOffset ?? 1) % 8).toBe(0);
          },
        ),
        { numRuns: 40 },
      );
    } finally {
      client.release();
    }
  });

  it('renews the sync lock before an entity unless it took it a moment ago, and stops once it was taken over', async () => {
    const { url, pool } = await createDatabase('syncdb_lease');
    const leaseMs = 2_000;
    const db = createPgSyncDatabase(openPool(url, 2), { lockLeaseMs: leaseMs });
    const expiry = async () =>
      (await pool.query('SELECT expires_at FROM meter_sync_lock')).rows[0]?.expires_at as Date;
    const takeOver = () => pool.query("UPDATE meter_sync_lock SET holder = 'another run'");
    const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    await db.session(async (session) => {
      expect(await session.lock(false)).toBe(true);
      const taken = await expiry();
      // Right after the lock, the lease needs no renewal: the entity's transaction begins.
      await session.transaction(async () => undefined);
      expect(await expiry()).toEqual(taken);
      // A tenth of the lease later, it is renewed first.
      await pause(leaseMs / 10 + 50);
      await session.transaction(async () => undefined);
      expect((await expiry()).getTime()).toBeGreaterThan(taken.getTime());
      // A renewal finds the lock taken over and stops the run; none was due a moment before.
      await takeOver();
      await session.transaction(async () => undefined);
      await pause(leaseMs / 10 + 50);
      await expect(session.transaction(async () => undefined)).rejects.toBeInstanceOf(LockedError);
    });
  });

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
