import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  builtInEntities,
  col,
  createRegistry,
  defineEntity,
  performSync,
} from '../../src/index.js';
import {
  createMemoryDatabase,
  createTestClientSystem,
  createTestDatabases,
  createTestSyncDatabase,
} from '../../src/testing/index.js';

describe('meter-sync/testing', () => {
  it('gives a seeded Client System and an empty sync database that performSync fills', async () => {
    const { source, target } = await createTestDatabases({ tenants: [1, 2] });
    expect(target.db.public.many('SELECT * FROM register')).toEqual([]);

    const result = await performSync({ source: source.pool, target: target.pool, tenantId: 2 });
    expect(result.ok).toBe(true);
    expect(result.entities.meter.inserted).toBe(6);
    const { rows } = await target.pool.query(
      'SELECT register_id FROM register ORDER BY register_id',
    );
    expect(rows.map((row) => Number(row.register_id))).toEqual([201, 202, 203, 204]);
  });

  it('seeds only the tenants asked for, or nothing', async () => {
    const three = await createTestClientSystem({ tenants: [3] });
    expect(three.db.public.many('SELECT register_id FROM register ORDER BY 1')).toEqual([
      { register_id: 301 },
      { register_id: 302 },
      { register_id: 303 },
      { register_id: 304 },
    ]);
    expect(three.db.public.many('SELECT count(*)::int AS n FROM meter_element')).toEqual([
      { n: 6 },
    ]);
    const empty = await createTestClientSystem({ seed: false });
    expect(empty.db.public.many('SELECT * FROM device')).toEqual([]);
  });

  it("runs extra SQL on either side for a custom entity's tables", async () => {
    const alarm = defineEntity({
      name: 'alarm',
      table: 'alarm',
      columns: z.object({ alarm_id: col.bigint(), tenant_id: col.bigint(), level: col.text() }),
      key: ['alarm_id'],
      tenantColumn: 'tenant_id',
    });
    const { source, target } = await createTestDatabases({
      tenants: [1],
      sql: "CREATE TABLE alarm (alarm_id int PRIMARY KEY, tenant_id int, level text); INSERT INTO alarm VALUES (1, 1, 'high')",
      targetSql: 'CREATE TABLE alarm (alarm_id bigint PRIMARY KEY, tenant_id bigint, level text)',
    });
    const result = await performSync({
      source: source.pool,
      target: target.pool,
      tenantId: 1,
      entities: createRegistry([...builtInEntities, alarm]),
    });
    expect(result.entities.alarm).toMatchObject({ status: 'ok', inserted: 1 });
    const sync = await createTestSyncDatabase({ sql: 'CREATE TABLE notes (id int)' });
    expect(sync.db.public.many('SELECT * FROM notes')).toEqual([]);
  });

  it('makes an empty in-memory database with optional SQL', async () => {
    const { db, pool } = await createMemoryDatabase(
      'CREATE TABLE t (id int); INSERT INTO t VALUES (7)',
    );
    expect(db.public.many('SELECT id FROM t')).toEqual([{ id: 7 }]);
    expect((await pool.query('SELECT id FROM t WHERE id = $1', [7])).rows).toEqual([{ id: 7 }]);
  });
});
