import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { sourceStatement } from '../../src/db/pg/source.js';
import {
  deleteStatements,
  quoteIdent,
  quoteTable,
  selectStatement,
  upsertStatements,
} from '../../src/db/pg/sql.js';
import { builtIns, col, defineEntity } from '../../src/index.js';

describe('generated SQL', () => {
  it('quotes identifiers, doubling embedded quotes', () => {
    expect(quoteIdent('select')).toBe('"select"');
    expect(quoteIdent('a"; DROP TABLE x; --')).toBe('"a""; DROP TABLE x; --"');
    expect(quoteTable({ schema: 'My Schema', name: 'T' })).toBe('"My Schema"."T"');
  });

  it('binds every value as a parameter', () => {
    const statement = selectStatement({ name: 'register' }, [{ name: 'register_id' }], {
      column: 'tenant_id',
      value: "1'; DROP TABLE register; --",
    });
    expect(statement.text).toBe('SELECT "register_id" FROM "register" WHERE "tenant_id" = $1');
    expect(statement.values).toEqual(["1'; DROP TABLE register; --"]);
  });

  it('upserts by key, guarding rows of other tenants', () => {
    const [statement] = upsertStatements(
      { name: 'register' },
      ['register_id', 'tenant_id', 'unit'],
      ['register_id'],
      [[1, 7, 'kWh']],
      {
        column: 'tenant_id',
        value: 7,
      },
    );
    expect(statement?.text).toBe(
      'INSERT INTO "register" AS "target" ("register_id", "tenant_id", "unit") VALUES ($1, $2, $3) ON CONFLICT ("register_id") DO UPDATE SET "tenant_id" = EXCLUDED."tenant_id", "unit" = EXCLUDED."unit" WHERE "target"."tenant_id" = EXCLUDED."tenant_id"',
    );
  });

  it('does nothing on conflict when every column is in the key', () => {
    const [statement] = upsertStatements(
      { name: 'device_register' },
      ['device_id', 'register_id'],
      ['device_id', 'register_id'],
      [[1, 2]],
    );
    expect(statement?.text).toMatch(/ON CONFLICT \("device_id", "register_id"\) DO NOTHING$/);
  });

  it('deletes composite keys within the tenant, in batches under the parameter limit', () => {
    const keys = Array.from({ length: 1200 }, (_, i) => [i, i + 1]);
    const statements = deleteStatements({ name: 'meter' }, ['meter_id', 'meter_element_id'], keys, {
      column: 'tenant_id',
      value: 1,
    });
    expect(statements).toHaveLength(3);
    expect(
      statements[0]?.text.startsWith(
        'DELETE FROM "meter" WHERE (("meter_id" = $1 AND "meter_element_id" = $2) OR',
      ),
    ).toBe(true);
    expect(statements[0]?.text.endsWith(' AND "tenant_id" = $1001')).toBe(true);
    expect(statements.reduce((n, s) => n + s.values.length, 0)).toBe(2400 + 3);
  });

  it('reads renamed source columns under their target names', () => {
    const entity = defineEntity({
      name: 'site',
      table: 'site',
      columns: z.object({ id: col.int(), tenant: col.int(), label: col.text() }),
      key: ['id'],
      tenantColumn: 'tenant',
      source: { table: 'crm.Site', columns: { id: 'SiteId', tenant: 'OrgId' } },
    });
    expect(sourceStatement(entity, { tenantId: 5n })).toEqual({
      text: 'SELECT "SiteId" AS "id", "OrgId" AS "tenant", "label" FROM "crm"."Site" WHERE "OrgId" = $1',
      values: ['5'],
    });
  });

  it('wraps a source query so only the defined columns come back', () => {
    const statement = sourceStatement(builtIns.meter, { tenantId: 3 });
    expect(
      statement.text.startsWith(
        'SELECT "meter_id", "meter_element_id", "tenant_id", "name", "element", "device_id", "ip", "port", "active" FROM (SELECT',
      ),
    ).toBe(true);
    expect(statement.text.endsWith(') AS "source"')).toBe(true);
    expect(statement.values).toEqual([3]);
  });
});
