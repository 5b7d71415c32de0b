import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { performSync, type SyncEvent, syncSchemaSql } from '../../src/index.js';
import { clientSystemSchemaSql } from '../../src/sample/index.js';
import { createDatabase, recordingPool } from '../support/postgres.js';

const REGISTERS_PER_TENANT = 1_000;
const DEVICES = 4;

/**
 * A Client System with `tenants` tenants of equal size: each has the same number of registers,
 * each register wired to two of the shared devices. Tenant 1's rows are the same in every one.
 */
async function clientSystem(tenants: number) {
  const remote = await createDatabase('cost_remote');
  await remote.pool.query(clientSystemSchemaSql);
  await remote.pool.query(
    `INSERT INTO device (device_id, manufacturer, model_number, description, type, active)
     SELECT d, 'Acme', 'M' || d, 'meter ' || d, 'meter', true FROM generate_series(1, $1::int) AS d`,
    [DEVICES],
  );
  await remote.pool.query(
    `INSERT INTO register (register_id, tenant_id, name, register, unit, field_name)
     SELECT t * 100000 + r, t, 'register ' || r, r, 'kWh', 'f' || r
       FROM generate_series(1, $1::int) AS t, generate_series(1, $2::int) AS r`,
    [tenants, REGISTERS_PER_TENANT],
  );
  await remote.pool.query(
    `INSERT INTO device_register (device_id, register_id)
     SELECT 1 + (r.register_id + k) % $1::int, r.register_id FROM register AS r, generate_series(0, 1) AS k`,
    [DEVICES],
  );
  await remote.pool.query('ANALYZE');
  return remote;
}

/** A pool whose connections count the bytes they receive. */
function countingPool(pool: pg.Pool) {
  const sockets: { bytesRead: number }[] = [];
  return {
    received: () => sockets.reduce((sum, socket) => sum + socket.bytesRead, 0),
    pool: {
      async connect() {
        const client = await pool.connect();
        sockets.push(
          (client as unknown as { connection: { stream: { bytesRead: number } } }).connection
            .stream,
        );
        return client;
      },
    },
  };
}

/** Bytes received from the source and rows streamed while device_register synced, per run. */
async function junctionCost(tenants: number) {
  const remote = await clientSystem(tenants);
  const local = await createDatabase('cost_local');
  await local.pool.query(syncSchemaSql);
  const counting = countingPool(remote.pool);
  const run = async () => {
    let startBytes = 0;
    const cost = { bytes: 0, rows: 0 };
    const onEvent = (event: SyncEvent) => {
      if (!('entity' in event) || event.entity !== 'device_register') return;
      if (event.type === 'entity-start') startBytes = counting.received();
      if (event.type === 'entity-progress' && event.phase === 'reading')
        cost.rows = Math.max(cost.rows, event.rows);
      if (event.type === 'entity-end') cost.bytes = counting.received() - startBytes;
    };
    const result = await performSync({
      source: counting.pool,
      target: local.pool,
      tenantId: 1,
      onEvent,
    });
    expect(result.ok).toBe(true);
    return { ...cost, result: result.entities.device_register };
  };
  const initial = await run();
  const unchanged = await run();
  await remote.pool.query(
    'DELETE FROM device_register WHERE register_id % 10 = 0 AND register_id < 200000',
  );
  const changed = await run();
  return { initial, unchanged, changed };
}

describe("a global junction costs what the tenant's rows cost, not the table's (PostgreSQL)", () => {
  it('reads as many junction rows and about as many bytes with ten tenants on the source as with one', async () => {
    const one = await junctionCost(1);
    const ten = await junctionCost(10);
    const tenantRows = REGISTERS_PER_TENANT * 2;

    expect(one.initial.result).toMatchObject({ status: 'ok', inserted: tenantRows, skipped: 0 });
    expect(ten.initial.result).toMatchObject({ status: 'ok', inserted: tenantRows, skipped: 0 });
    // Rows streamed: the tenant's, whatever else the table holds.
    expect(one.initial.rows).toBe(tenantRows);
    expect(ten.initial.rows).toBe(tenantRows);
    expect(ten.changed.result).toMatchObject({ deleted: tenantRows / 10, skipped: 0 });
    expect(ten.changed.rows).toBe(one.changed.rows);

    const ratios = {
      initial: ten.initial.bytes / one.initial.bytes,
      unchanged: ten.unchanged.bytes / one.unchanged.bytes,
      changed: ten.changed.bytes / one.changed.bytes,
    };
    console.info('[parent-scope cost]', JSON.stringify({ one, ten, ratios }));
    // Reading the whole table would make these about 10.
    expect(ratios.initial).toBeLessThan(1.2);
    expect(ratios.unchanged).toBeLessThan(1.2);
    expect(ratios.changed).toBeLessThan(1.2);
  });

  it('searches the whole junction for rows whose register is missing only where no validated foreign key on the source rules them out', async () => {
    const remote = await clientSystem(3);
    const local = await createDatabase('cost_local');
    await local.pool.query(syncSchemaSql);
    const recording = recordingPool(remote.pool);
    // The search for dangling rows is the one statement with a window count over the scope.
    const searches = () => recording.statements.filter((text) => text.includes('count(*) OVER ()'));
    const sync = async () => {
      recording.statements.length = 0;
      const result = await performSync({ source: recording.pool, target: local.pool, tenantId: 1 });
      expect(result.ok).toBe(true);
      return result.entities.device_register;
    };
    // The Client System's schema has device_register.register_id REFERENCES register.
    expect(await sync()).toMatchObject({ inserted: REGISTERS_PER_TENANT * 2, skipped: 0 });
    expect(searches()).toEqual([]);

    // A row naming no register, let in before a foreign key added NOT VALID: it is searched for,
    // and counted as an orphan.
    await remote.pool.query(`ALTER TABLE device_register DROP CONSTRAINT device_register_register_id_fkey;
      INSERT INTO device_register (device_id, register_id) VALUES (1, 999999);
      ALTER TABLE device_register ADD CONSTRAINT device_register_register_id_fkey
        FOREIGN KEY (register_id) REFERENCES register NOT VALID`);
    const dangling = await sync();
    expect(dangling).toMatchObject({ skipped: 1 });
    expect(dangling.warnings.find((w) => w.code === 'orphaned-rows')?.count).toBe(1);
    expect(searches()).toHaveLength(1);

    // Validated once the row is gone: the search is spared again.
    await remote.pool.query(`DELETE FROM device_register WHERE register_id = 999999;
      ALTER TABLE device_register VALIDATE CONSTRAINT device_register_register_id_fkey`);
    expect(await sync()).toMatchObject({ skipped: 0 });
    expect(searches()).toEqual([]);
  });
});
