import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { builtInEntities, col, DatabaseError, defineEntity, performSync } from '../../src/index.js';
import {
  builtInPairOnPostgres,
  createDatabase,
  databaseUrl,
  idleInTransaction,
  openPool,
  recordingPool,
} from '../support/postgres.js';

const tableCounts = async (
  pool: { query(text: string): Promise<{ rows: { n: number }[] }> },
  table: string,
) => (await pool.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0]?.n;

describe('the source is never modified (PostgreSQL)', () => {
  it('reads every entity from one snapshot, even when the remote changes mid-run', async () => {
    const { remote, local } = await builtInPairOnPostgres([1]);
    let injected = false;
    const source = recordingPool(remote.pool, async (text) => {
      // Commit a change from another session just before the register read.
      if (!injected && text.includes('"register"') && text.startsWith('SELECT')) {
        injected = true;
        await remote.pool.query(
          "INSERT INTO register (register_id, tenant_id, name, register, unit, field_name) VALUES (150, 1, 'Late', 1, 'kWh', 'late')",
        );
      }
    });
    const result = await performSync({ source: source.pool, target: local.pool, tenantId: 1 });
    expect(injected).toBe(true);
    expect(result.entities.register.inserted).toBe(4);
    const next = await performSync({ source: remote.pool, target: local.pool, tenantId: 1 });
    expect(next.entities.register.inserted).toBe(1);
  });

  it('sends only reads and transaction control, in one read-only repeatable-read transaction', async () => {
    const { remote, local } = await builtInPairOnPostgres([1]);
    const source = recordingPool(remote.pool);
    await performSync({ source: source.pool, target: local.pool, tenantId: 1 });
    expect(source.statements).toContain('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    expect(source.statements.filter((s) => s.startsWith('BEGIN'))).toHaveLength(1);
    for (const statement of source.statements) {
      expect(statement).toMatch(
        /^(SELECT|COPY \(SELECT|DECLARE "meter_sync_cursor_\d+" NO SCROLL CURSOR FOR SELECT|FETCH FORWARD \d+ FROM|CLOSE|BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY|COMMIT|SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK TO SAVEPOINT|LOCK TABLE|SET LOCAL statement_timeout)\b/,
      );
      if (statement.startsWith('COPY')) expect(statement).toMatch(/ TO STDOUT$/);
      // The one lock, before the snapshot: what every SELECT takes, against a concurrent TRUNCATE.
      if (statement.startsWith('LOCK'))
        expect(statement).toMatch(/^LOCK TABLE "[a-z_]+"(, "[a-z_]+")* IN ACCESS SHARE MODE$/);
      if (statement.startsWith('SET'))
        expect(statement).toMatch(/^SET LOCAL statement_timeout = \d+$/);
    }
    expect(source.statements.filter((s) => s.startsWith('LOCK'))).toHaveLength(1);
  });

  it('works with a role that may only SELECT the source tables', async () => {
    const { remote, local } = await builtInPairOnPostgres([1]);
    const role = `reader_${remote.name}`;
    await remote.pool.query(`CREATE ROLE ${role} LOGIN`);
    await remote.pool.query(
      `GRANT SELECT ON device, meter, meter_element, register, device_register TO ${role}`,
    );
    const url = new URL(databaseUrl(remote.name));
    url.username = role;
    const readerPool = openPool(url.toString());
    await expect(readerPool.query('DELETE FROM register')).rejects.toThrow(/permission denied/);
    const result = await performSync({ source: readerPool, target: local.pool, tenantId: 1 });
    expect(result.ok).toBe(true);
    expect(result.entities.device_register.inserted).toBe(6);
  });

  it('lets PostgreSQL refuse a source query that writes, and goes on with the next entity', async () => {
    const { remote, local } = await builtInPairOnPostgres([1]);
    const sneaky = defineEntity({
      name: 'sneaky',
      table: 'register',
      columns: z.object({ register_id: col.bigint(), tenant_id: col.bigint() }),
      key: ['register_id'],
      tenantColumn: 'tenant_id',
      // nextval() writes (it advances a sequence): a read-only transaction must refuse it.
      source: {
        query:
          "SELECT register_id, tenant_id FROM register WHERE tenant_id = $1 AND nextval('register_register_id_seq') > 0",
      },
    });
    const device = builtInEntities[0];
    const result = await performSync({
      source: remote.pool,
      target: local.pool,
      tenantId: 1,
      entities: [sneaky, device],
    });
    expect(result.entities.sneaky.status).toBe('failed');
    expect(result.entities.sneaky.error).toBeInstanceOf(DatabaseError);
    expect((result.entities.sneaky.error as DatabaseError).code).toBe('25006');
    expect(result.entities.sneaky.error?.message).toMatch(
      /sneaky: reading the source failed: .*read-only transaction/,
    );
    expect(result.entities.device).toMatchObject({ status: 'ok', inserted: 3 });
    const sequence = await remote.pool.query(
      'SELECT last_value::int AS n, is_called FROM register_register_id_seq',
    );
    expect(sequence.rows[0]).toEqual({ n: 1, is_called: false });
  });

  it('cannot be made to run a data-modifying statement through source.query', async () => {
    const { remote, local } = await builtInPairOnPostgres([1]);
    const deleting = defineEntity({
      name: 'deleting',
      table: 'register',
      columns: z.object({ register_id: col.bigint(), tenant_id: col.bigint() }),
      key: ['register_id'],
      tenantColumn: 'tenant_id',
      source: {
        query:
          'WITH gone AS (DELETE FROM register WHERE tenant_id = $1 RETURNING *) SELECT * FROM gone',
      },
    });
    const result = await performSync({
      source: remote.pool,
      target: local.pool,
      tenantId: 1,
      entities: [deleting],
    });
    expect(result.entities.deleting.status).toBe('failed');
    expect(await tableCounts(remote.pool, 'register')).toBe(4);
  });

  it('leaves no source session idle in a transaction, after success and after failure', async () => {
    const { remote, local } = await builtInPairOnPostgres([1]);
    await performSync({ source: remote.pool, target: local.pool, tenantId: 1 });
    expect(await idleInTransaction(remote.name)).toBe(0);
    await local.pool.query('DROP TABLE device_register');
    const failing = await performSync({ source: remote.pool, target: local.pool, tenantId: 1 });
    expect(failing.entities.device_register.status).toBe('failed');
    expect(await idleInTransaction(remote.name)).toBe(0);
    expect(await idleInTransaction(local.name)).toBe(0);
  });
});

describe('each entity is applied whole or not at all (PostgreSQL)', () => {
  it('rolls back deletes already made when a later write of the same entity fails', async () => {
    const { remote, local } = await builtInPairOnPostgres([1]);
    await performSync({ source: remote.pool, target: local.pool, tenantId: 1 });
    const before = (await local.pool.query('SELECT * FROM register ORDER BY register_id')).rows;
    await local.pool.query(
      "ALTER TABLE register ADD CONSTRAINT unit_known CHECK (unit <> 'bogus')",
    );
    // Register 101 leaves the tenant: its junction rows are deleted in the register's transaction.
    await remote.pool.query(`UPDATE register SET tenant_id = 9 WHERE register_id = 101;
      UPDATE register SET unit = 'kVArh' WHERE register_id = 102;
      INSERT INTO register (register_id, tenant_id, name, register, unit, field_name) VALUES (199, 1, 'Broken', 1, 'bogus', 'x')`);
    const result = await performSync({
      source: remote.pool,
      target: local.pool,
      tenantId: 1,
      only: ['device', 'meter', 'register'],
    });
    expect(result.entities.register.status).toBe('failed');
    expect(result.entities.register.error?.message).toMatch(
      /register: writing (\d+|staged) rows failed: .*unit_known/,
    );
    expect(result.entities.register).toMatchObject({ inserted: 0, updated: 0, deleted: 0 });
    expect((await local.pool.query('SELECT * FROM register ORDER BY register_id')).rows).toEqual(
      before,
    );
    // The junction rows of register 101 were deleted in the same transaction, so they are back.
    expect(await tableCounts(local.pool, 'device_register WHERE register_id = 101')).toBe(2);
    // They left the tenant with their register on the source: the junction's own run takes them.
    const junction = await performSync({
      source: remote.pool,
      target: local.pool,
      tenantId: 1,
      only: ['device_register'],
    });
    expect(junction.entities.device_register).toMatchObject({ status: 'ok', deleted: 2 });
    expect(await tableCounts(local.pool, 'device_register WHERE register_id = 101')).toBe(0);
  });

  it('keeps foreign keys intact when parents and children change together', async () => {
    const { remote, local } = await builtInPairOnPostgres([1]);
    await performSync({ source: remote.pool, target: local.pool, tenantId: 1 });
    await remote.pool.query(`UPDATE meter SET device_id = 3 WHERE device_id = 2;
      DELETE FROM device_register WHERE device_id = 2; DELETE FROM device WHERE device_id = 2;
      INSERT INTO device (device_id, manufacturer, model_number) VALUES (4, 'Janitza', 'UMG 604');
      INSERT INTO device_register (device_id, register_id) VALUES (4, 101), (4, 102);
      DELETE FROM device_register WHERE register_id = 103; DELETE FROM register WHERE register_id = 103;`);
    const result = await performSync({ source: remote.pool, target: local.pool, tenantId: 1 });
    expect(result.ok).toBe(true);
    expect(result.entities.device).toMatchObject({ inserted: 1, deleted: 1 });
    const pairs = async (pool: typeof local.pool) =>
      (
        await pool.query(
          'SELECT device_id::int AS d, register_id::int AS r FROM device_register ORDER BY 1, 2',
        )
      ).rows;
    expect(await pairs(local.pool)).toEqual(await pairs(remote.pool));
    const second = await performSync({ source: remote.pool, target: local.pool, tenantId: 1 });
    expect(
      Object.values(second.entities).every((e) => e.inserted + e.updated + e.deleted === 0),
    ).toBe(true);
  });
});

describe('values round-trip faithfully (PostgreSQL)', () => {
  const sample = defineEntity({
    name: 'sample',
    table: 'sample',
    columns: z.object({
      id: col.bigint(),
      amount: col.numeric().nullable(),
      measured_at: col.timestamptz().nullable(),
      local_time: col.timestamp().nullable(),
      day: col.date().nullable(),
      flag: col.boolean().nullable(),
      payload: col.json().nullable(),
      tags: col.array(col.text().nullable()).nullable(),
      readings: col.array(col.int()).nullable(),
      ratio: col.double().nullable(),
      port: col.int().nullable(),
    }),
    key: ['id'],
  });

  it('keeps bigint, numeric, microseconds, dates, json, arrays and NULLs exact across time zones', async () => {
    const remote = await createDatabase('values_remote');
    const local = await createDatabase('values_local');
    await remote.pool.query(`ALTER DATABASE ${remote.name} SET timezone TO 'America/St_Johns'`);
    await local.pool.query(`ALTER DATABASE ${local.name} SET timezone TO 'Asia/Kathmandu'`);
    const sourcePool = openPool(remote.url);
    const targetPool = openPool(local.url);
    // Column types differ a little on each side, as they do in real systems.
    await sourcePool.query(`CREATE TABLE sample (id bigint PRIMARY KEY, amount numeric, measured_at timestamptz,
      local_time timestamp, day date, flag boolean, payload json, tags varchar(20)[], readings int[], ratio real, port text);
      INSERT INTO sample VALUES
        (9007199254740993, 12345678901234567890.1234567890, '2024-02-29 23:59:59.123456+00', '1999-12-31 23:59:59.999999',
         '2024-01-01', true, '{"b": [1, 2, {"z": null}], "a": "x"}', '{alpha,"with space",NULL}', '{1,2,3}', 0.1, '502'),
        (2, 0.5, NULL, NULL, NULL, false, '"text"', '{}', NULL, NULL, NULL),
        (3, NULL, '1970-01-01 00:00:00+00', '2000-01-01 00:00:00', '0001-01-01', NULL, 'null', NULL, '{}', 1e-7, ' 8080')`);
    await targetPool.query(`CREATE TABLE sample (id bigint PRIMARY KEY, amount numeric(40,12), measured_at timestamptz,
      local_time timestamp, day date, flag boolean, payload jsonb, tags text[], readings bigint[], ratio double precision, port integer)`);
    const previousTz = process.env.TZ;
    process.env.TZ = 'Pacific/Chatham';
    try {
      const first = await performSync({
        source: sourcePool,
        target: targetPool,
        entities: [sample],
      });
      expect(first.entities.sample.error).toBeUndefined();
      expect(first.entities.sample).toMatchObject({ status: 'ok', inserted: 3 });
      const second = await performSync({
        source: sourcePool,
        target: targetPool,
        entities: [sample],
      });
      expect(second.entities.sample).toMatchObject({
        status: 'ok',
        inserted: 0,
        updated: 0,
        deleted: 0,
        unchanged: 3,
      });
    } finally {
      process.env.TZ = previousTz;
    }
    const read = async (pool: typeof sourcePool) =>
      (
        await pool.query(`SELECT id::text, trim_scale(amount)::text AS amount,
          to_char(measured_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') AS measured_at, local_time::text, day::text,
          flag, payload::jsonb::text AS payload, tags::text[]::text AS tags, readings::bigint[]::text AS readings,
          ratio::real::text AS ratio, trim(port::text) AS port FROM sample ORDER BY id`)
      ).rows;
    const target = await read(targetPool);
    expect(target).toEqual(await read(sourcePool));
    expect(target[2]).toMatchObject({
      id: '9007199254740993',
      amount: '12345678901234567890.123456789',
      measured_at: '2024-02-29 23:59:59.123456',
      local_time: '1999-12-31 23:59:59.999999',
      day: '2024-01-01',
    });
  });

  it('counts a meter port stored as text on the remote as unchanged when it equals the local integer', async () => {
    const { remote, local } = await builtInPairOnPostgres([1]);
    await remote.pool.query('ALTER TABLE meter ALTER COLUMN port TYPE text USING port::text');
    await performSync({ source: remote.pool, target: local.pool, tenantId: 1 });
    const second = await performSync({ source: remote.pool, target: local.pool, tenantId: 1 });
    expect(second.entities.meter).toMatchObject({ updated: 0, unchanged: 6 });
    expect((await local.pool.query('SELECT DISTINCT port FROM meter')).rows).toEqual([
      { port: 502 },
    ]);
  });
});
