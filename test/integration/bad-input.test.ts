import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  col,
  DataError,
  DefinitionError,
  defineEntity,
  type PgPool,
  performSync,
  SchemaError,
} from '../../src/index.js';
import { recordingLogger } from '../support/pgmem.js';
import { createDatabase } from '../support/postgres.js';

/**
 * Each case runs on both paths: the set-based one (plain `col` schemas) and the in-memory one
 * (the same columns with a refinement that accepts everything, which keeps it in memory).
 */
const paths = ['set-based', 'in-memory'] as const;

function readingEntity(path: (typeof paths)[number], invalidRows: 'fail' | 'skip' = 'fail') {
  const unit = path === 'set-based' ? col.text() : col.text().refine(() => true);
  return defineEntity({
    name: 'reading',
    table: 'reading',
    columns: z.object({ id: col.int(), tenant_id: col.int(), unit }),
    key: ['id'],
    tenantColumn: 'tenant_id',
    source: {
      query: 'SELECT id, tenant_id, unit FROM remote_reading WHERE tenant_id = $1 OR id >= 90',
    },
    invalidRows,
  });
}

async function databases(rows: string) {
  const remote = await createDatabase('bad_remote');
  const local = await createDatabase('bad_local');
  await remote.pool.query(`CREATE TABLE remote_reading (id int, tenant_id int, unit text);
    INSERT INTO remote_reading VALUES ${rows}`);
  await local.pool.query(
    'CREATE TABLE reading (id int PRIMARY KEY, tenant_id int NOT NULL, unit varchar(5), note text)',
  );
  return { remote, local };
}

const stored = async (pool: { query(text: string): Promise<{ rows: unknown[] }> }) =>
  (await pool.query('SELECT id, unit FROM reading ORDER BY id')).rows;

describe.each(paths)('bad source rows on the %s path', (path) => {
  const cases: [string, string, RegExp, string | undefined][] = [
    [
      'a value too long for its column',
      "(1, 1, 'kWh'), (2, 1, 'kilowatt-hours')",
      /source row \(id=2\) column "unit" holds 14 characters, more than the 5 its target column allows/,
      'unit',
    ],
    [
      'a NULL key',
      "(1, 1, 'kWh'), (NULL, 1, 'V')",
      /has NULL in key column "id"|column "id" is NULL|column "id" \(value NULL\)|with NULL in the key \(id\)/,
      'id',
    ],
    [
      'a repeated key',
      "(1, 1, 'kWh'), (2, 1, 'V'), (2, 1, 'A')",
      /returned key \(id=2\) more than once/,
      undefined,
    ],
    [
      'a row of another tenant',
      "(1, 1, 'kWh'), (95, 2, 'V')",
      /source row \(id=95\) has tenant_id=2, outside/,
      'tenant_id',
    ],
  ];

  it.each(cases)(
    'fails the entity on %s, naming the row, and writes none of it',
    async (_label, rows, message, column) => {
      for (const filled of [false, true]) {
        const { remote, local } = await databases(rows);
        if (filled) await local.pool.query("INSERT INTO reading VALUES (50, 1, 'W', 'local')");
        const before = await stored(local.pool);
        const result = await performSync({
          source: remote.pool,
          target: local.pool,
          tenantId: 1,
          entities: [readingEntity(path)],
        });
        const failure = result.entities.reading;
        expect(failure.status).toBe('failed');
        expect(failure.error).toBeInstanceOf(DataError);
        expect(failure.error?.message).toMatch(message);
        expect(failure.error?.message.startsWith('reading: ')).toBe(true);
        if (column) expect(failure.error?.column).toBe(column);
        expect(await stored(local.pool)).toEqual(before);
      }
    },
  );

  it.each(cases)(
    'with invalidRows: skip, leaves out %s and applies the rest',
    async (_label, rows, message) => {
      const { remote, local } = await databases(rows);
      const { lines, logger } = recordingLogger();
      const result = await performSync({
        source: remote.pool,
        target: local.pool,
        tenantId: 1,
        entities: [readingEntity(path, 'skip')],
        logger,
      });
      const entity = result.entities.reading;
      expect(entity.status).toBe('ok');
      expect(entity.warnings.map((w) => w.code)).toEqual(['invalid-rows']);
      expect(entity.warnings[0]?.message).toMatch(message);
      expect(entity.skipped).toBe(entity.warnings[0]?.count);
      expect(await stored(local.pool)).toContainEqual({ id: 1, unit: 'kWh' });
      expect(lines.filter((line) => line.level === 'warn')).toHaveLength(1);
      const again = await performSync({
        source: remote.pool,
        target: local.pool,
        tenantId: 1,
        entities: [readingEntity(path, 'skip')],
      });
      expect(again.entities.reading).toMatchObject({ inserted: 0, updated: 0, deleted: 0 });
    },
  );

  it('reports a column missing on the source before writing, naming it', async () => {
    const { remote, local } = await databases("(1, 1, 'kWh')");
    await local.pool.query("INSERT INTO reading VALUES (50, 1, 'W', 'local')");
    const missing = defineEntity({
      ...readingEntity(path),
      source: { table: 'remote_reading' },
      name: 'reading',
      key: ['id'],
      tenantColumn: 'tenant_id',
    });
    await remote.pool.query('ALTER TABLE remote_reading RENAME COLUMN unit TO units');
    const result = await performSync({
      source: remote.pool,
      target: local.pool,
      tenantId: 1,
      entities: [missing],
    });
    expect(result.entities.reading.error).toBeInstanceOf(SchemaError);
    expect(result.entities.reading.error?.message).toMatch(
      /reading: source table "remote_reading" has no column "unit"/,
    );
    expect(await stored(local.pool)).toEqual([{ id: 50, unit: 'W' }]);
  });
});

describe('invalid definitions are rejected before any I/O', () => {
  const noConnection: PgPool = {
    connect: async () => {
      throw new Error('must not connect');
    },
  };
  const columns = z.object({ id: col.int(), parent_id: col.int().nullable() });

  it.each([
    [
      'duplicate names',
      () => [
        defineEntity({ name: 'a', table: 'a', columns, key: ['id'] }),
        defineEntity({ name: 'a', table: 'b', columns, key: ['id'] }),
      ],
    ],
    [
      'a reference cycle',
      () => [
        defineEntity({
          name: 'a',
          table: 'a',
          columns,
          key: ['id'],
          references: [{ entity: 'b', columns: { parent_id: 'id' } }],
        }),
        defineEntity({
          name: 'b',
          table: 'b',
          columns,
          key: ['id'],
          references: [{ entity: 'a', columns: { parent_id: 'id' } }],
        }),
      ],
    ],
    [
      'a reference to an unknown entity',
      () => [
        defineEntity({
          name: 'a',
          table: 'a',
          columns,
          key: ['id'],
          references: [{ entity: 'ghost', columns: { parent_id: 'id' } }],
        }),
      ],
    ],
  ])('rejects %s', async (_label, entities) => {
    await expect(
      performSync({ source: noConnection, target: noConnection, entities: entities() }),
    ).rejects.toThrow(DefinitionError);
  });
});
