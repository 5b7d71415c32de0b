import { describe, expectTypeOf, it } from 'vitest';
import { z } from 'zod';
import {
  builtIns,
  col,
  createRegistry,
  defineEntity,
  type JsonNullValue,
  type KeyOf,
  type RowOf,
} from '../../src/index.js';

const columns = z.object({
  id: col.bigint(),
  tenant_id: col.int(),
  label: col.text().nullable(),
  data: col.json(),
});

describe('entity definitions are checked by the compiler', () => {
  it('infers the row and key types from the schema', () => {
    const thing = defineEntity({
      name: 'thing',
      table: 'thing',
      columns,
      key: ['id'],
      tenantColumn: 'tenant_id',
    });
    expectTypeOf<RowOf<typeof thing>>().toHaveProperty('id').toEqualTypeOf<bigint>();
    expectTypeOf<RowOf<typeof thing>>().toHaveProperty('label').toEqualTypeOf<string | null>();
    expectTypeOf<KeyOf<typeof thing>>().toEqualTypeOf<{ id: bigint }>();
    expectTypeOf(thing.name).toEqualTypeOf<'thing'>();
    expectTypeOf(thing.tenantColumn).toEqualTypeOf<'tenant_id'>();
  });

  it('rejects key, tenant, reference and soft-delete columns that are not in the schema', () => {
    const base = { name: 'a', table: 'a', columns } as const;
    // @ts-expect-error 'nope' is not a column
    defineEntity({ ...base, key: ['nope'] });
    // @ts-expect-error the key must not be empty
    defineEntity({ ...base, key: [] });
    // @ts-expect-error 'tenant' is not a column
    defineEntity({ ...base, key: ['id'], tenantColumn: 'tenant' });
    // @ts-expect-error 'nope' is not a column
    defineEntity({ ...base, key: ['id'], references: [{ entity: 'p', columns: { nope: 'id' } }] });
    // @ts-expect-error 'nope' is not a column
    defineEntity({ ...base, key: ['id'], source: { columns: { nope: 'x' } } });
    // @ts-expect-error label is a string, not a number
    defineEntity({ ...base, key: ['id'], onMissing: { set: { label: 5 } } });
    // @ts-expect-error a source is either a table mapping or a query
    defineEntity({ ...base, key: ['id'], source: { query: 'SELECT 1', table: 'x' } });
  });

  it('types registry lookups by name', () => {
    const thing = defineEntity({
      name: 'thing',
      table: 'thing',
      columns,
      key: ['id', 'tenant_id'],
    });
    const registry = createRegistry([builtIns.register, thing]);
    expectTypeOf(registry.get('thing')).toEqualTypeOf<typeof thing>();
    expectTypeOf<KeyOf<ReturnType<typeof registry.get<'thing'>>>>().toEqualTypeOf<{
      id: bigint;
      tenant_id: number;
    }>();
    // @ts-expect-error no such entity
    registry.get('ghost');
  });

  it('types the built-in rows', () => {
    expectTypeOf<KeyOf<typeof builtIns.device_register>>().toEqualTypeOf<{
      device_id: bigint;
      register_id: bigint;
    }>();
    expectTypeOf<RowOf<typeof builtIns.meter>>()
      .toHaveProperty('port')
      .toEqualTypeOf<number | null>();
    expectTypeOf<RowOf<typeof thingWithJson>>()
      .toHaveProperty('data')
      .toExtend<JsonNullValue | string | number | boolean | null | object>();
  });
});

const thingWithJson = defineEntity({ name: 'j', table: 'j', columns, key: ['id'] });
