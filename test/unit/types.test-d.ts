import { describe, expectTypeOf, it } from 'vitest';
import { z } from 'zod';
import {
  builtInEntities,
  builtIns,
  type ChangeKey,
  col,
  createRegistry,
  defineEntity,
  type EntityResult,
  formatKey,
  type JsonNullValue,
  type KeyOf,
  type PgPool,
  performSync,
  type RowOf,
  resultToJSON,
  type SyncResult,
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

declare const pool: PgPool;

describe('sync results are typed by the entities that ran', () => {
  it('has every entity of the run without only, and just those in only with it', async () => {
    const all = await performSync({ source: pool, target: pool, tenantId: 1 });
    expectTypeOf(all).toEqualTypeOf<SyncResult<(typeof builtInEntities)[number]>>();
    expectTypeOf<keyof typeof all.entities>().toEqualTypeOf<
      'device' | 'meter' | 'register' | 'device_register'
    >();
    const some = await performSync({ source: pool, target: pool, tenantId: 1, only: ['register'] });
    expectTypeOf(some.entities).toEqualTypeOf<{
      readonly register: EntityResult<{ readonly register_id: bigint }>;
    }>();
    // @ts-expect-error meter did not run
    some.entities.meter;
    expectTypeOf(resultToJSON(some).entities).toHaveProperty('register');
    // @ts-expect-error not an entity of the registry
    await performSync({ source: pool, target: pool, tenantId: 1, only: ['ghost'] });
  });

  it('types the keys of change lists and warnings by the key columns of each entity', async () => {
    const element = defineEntity({
      name: 'element',
      table: 'element',
      columns: z.object({ meter_id: z.number(), meter_element_id: z.number(), name: z.string() }),
      key: ['meter_id', 'meter_element_id'],
    });
    const result = await performSync({
      source: pool,
      target: pool,
      tenantId: 1,
      entities: [...builtInEntities, element],
      listChanges: true,
    });
    expectTypeOf(result.entities.element.changes)
      .exclude<undefined>()
      .toHaveProperty('inserted')
      .toEqualTypeOf<readonly { readonly meter_id: number; readonly meter_element_id: number }[]>();
    expectTypeOf(result.entities.device_register.changes)
      .exclude<undefined>()
      .toHaveProperty('deleted')
      .toEqualTypeOf<readonly { readonly device_id: bigint; readonly register_id: bigint }[]>();
    const warning = result.entities.device_register.warnings[0];
    if (warning?.code === 'orphaned-rows') {
      expectTypeOf(warning.sampleKeys[0]).toEqualTypeOf<
        { readonly device_id: bigint; readonly register_id: bigint } | undefined
      >();
    }
    if (warning?.code === 'invalid-rows') {
      // An invalid row's key holds the source's text where the schema refuses it.
      expectTypeOf(warning.sampleKeys[0]).toEqualTypeOf<
        { readonly device_id: unknown; readonly register_id: unknown } | undefined
      >();
    }
    // @ts-expect-error name is not a key column
    result.entities.element.changes?.updated[0]?.name;
    expectTypeOf(resultToJSON(result).entities.device_register.changes)
      .exclude<undefined>()
      .toHaveProperty('inserted')
      .toEqualTypeOf<readonly { readonly device_id: string; readonly register_id: string }[]>();
    expectTypeOf(resultToJSON(result).entities.element.changes)
      .exclude<undefined>()
      .toHaveProperty('inserted')
      .toEqualTypeOf<readonly { readonly meter_id: number; readonly meter_element_id: number }[]>();
    expectTypeOf(formatKey).parameter(0).toEqualTypeOf<ChangeKey>();
  });

  it('narrows custom registries too', async () => {
    const thing = defineEntity({ name: 'thing', table: 'thing', columns, key: ['id'] });
    const other = defineEntity({ name: 'other', table: 'other', columns, key: ['id'] });
    const entities = createRegistry([thing, other]);
    const both = await performSync({ source: pool, target: pool, entities });
    expectTypeOf<keyof typeof both.entities>().toEqualTypeOf<'thing' | 'other'>();
    const one = await performSync({ source: pool, target: pool, entities, only: ['other'] });
    expectTypeOf<keyof typeof one.entities>().toEqualTypeOf<'other'>();
  });
});
