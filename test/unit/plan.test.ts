import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { planChanges } from '../../src/diff/plan.js';
import { prepareSourceRows, prepareTargetRows } from '../../src/diff/rows.js';
import { col, DataError, defineEntity } from '../../src/index.js';

const reading = defineEntity({
  name: 'reading',
  table: 'reading',
  columns: z.object({
    meter_id: col.bigint(),
    element: col.text(),
    tenant_id: col.int(),
    value: col.numeric(),
    unit: col.text().nullable(),
  }),
  key: ['meter_id', 'element'],
  tenantColumn: 'tenant_id',
});

const source = (rows: Record<string, unknown>[]) =>
  prepareSourceRows(reading, rows, { tenant: '1' });
const target = (rows: Record<string, unknown>[]) => prepareTargetRows(reading, rows);
const row = (meter_id: number, element: string, value: string, unit: string | null = 'kWh') => ({
  meter_id,
  element,
  tenant_id: 1,
  value,
  unit,
});

describe('planChanges', () => {
  it('inserts source-only rows, updates differing rows, deletes target-only rows', () => {
    const plan = planChanges(
      source([row(1, 'A', '10'), row(1, 'B', '20'), row(2, 'A', '30')]),
      target([row(1, 'A', '10'), row(1, 'B', '21'), row(3, 'A', '40')]),
    );
    expect(plan.inserts.map((r) => r.row)).toEqual([{ ...row(2, 'A', '30'), meter_id: 2n }]);
    expect(plan.updates.map((r) => r.row.value)).toEqual(['20']);
    expect(plan.deletes.map((r) => r.row.meter_id)).toEqual([3n]);
    expect(plan.unchanged).toBe(1);
  });

  it('matches composite keys on every key column', () => {
    const plan = planChanges(source([row(1, 'A', '1')]), target([row(1, 'B', '1')]));
    expect(plan.inserts).toHaveLength(1);
    expect(plan.deletes).toHaveLength(1);
  });

  it('treats equal values in different driver forms as unchanged', () => {
    const plan = planChanges(
      source([{ meter_id: '1', element: 'A', tenant_id: '1', value: '1.50', unit: null }]),
      target([{ meter_id: 1, element: 'A', tenant_id: 1, value: 1.5, unit: null }]),
    );
    expect(plan).toMatchObject({ inserts: [], updates: [], deletes: [], unchanged: 1 });
  });

  it('tells NULL from empty text', () => {
    const plan = planChanges(source([row(1, 'A', '1', '')]), target([row(1, 'A', '1', null)]));
    expect(plan.updates).toHaveLength(1);
  });

  it('rewrites a stored row the schema cannot read instead of failing', () => {
    const plan = planChanges(
      source([row(1, 'A', '1')]),
      target([{ ...row(1, 'A', '1'), value: 'garbage' }]),
    );
    expect(plan.updates).toHaveLength(1);
  });

  it('soft-deletes a missing row once, and leaves an already soft-deleted row alone', () => {
    const softDelete = { positions: [4], values: [null] };
    const first = planChanges(source([]), target([row(1, 'A', '1')]), softDelete);
    expect(first.softDeletes).toHaveLength(1);
    expect(first.deletes).toHaveLength(0);
    const again = planChanges(source([]), target([row(1, 'A', '1', null)]), softDelete);
    expect(again).toMatchObject({ softDeletes: [], deletes: [], unchanged: 1 });
  });
});

describe('source rows are validated before anything is written', () => {
  it('rejects a NULL key, naming the column', () => {
    expect(() => source([{ ...row(1, 'A', '1'), element: null }])).toThrow(
      /reading: source row .* column "element"/,
    );
  });

  it('rejects a duplicate key', () => {
    expect(() => source([row(1, 'A', '1'), { ...row(1, 'A', '2'), meter_id: '1' }])).toThrow(
      /reading: the source returned key \(meter_id=1, element="A"\) more than once/,
    );
  });

  it('rejects a row of another tenant', () => {
    const error = (() => {
      try {
        source([{ ...row(1, 'A', '1'), tenant_id: 2 }]);
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(DataError);
    expect(error).toMatchObject({ entity: 'reading', column: 'tenant_id' });
    expect((error as Error).message).toMatch(/has tenant_id=2, outside tenant 1/);
  });
});
