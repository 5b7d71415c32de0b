import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  builtInEntities,
  col,
  createRegistry,
  DefinitionError,
  defineEntity,
} from '../../src/index.js';

const columns = z.object({
  id: col.bigint(),
  tenant_id: col.bigint(),
  parent_id: col.bigint().nullable(),
  name: col.text(),
});

// Definitions typed loosely on purpose: these inputs are what a JS caller (or a cast) can pass.
// biome-ignore lint/suspicious/noExplicitAny: invalid on purpose
const defineLoosely = (definition: any) => defineEntity(definition);

describe('defineEntity rejects invalid definitions, naming entity and field', () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['an empty name', { name: '' }, /entity name must be a non-empty string/],
    [
      'columns that are not a zod object',
      { columns: { id: 'bigint' } },
      /entity "thing": columns must be a zod object schema/,
    ],
    ['an empty key', { key: [] }, /entity "thing": key must list at least one column/],
    [
      'a key column not in columns',
      { key: ['nope'] },
      /entity "thing": key names "nope", which is not in columns \(id, tenant_id, parent_id, name\)/,
    ],
    ['a key listing a column twice', { key: ['id', 'id'] }, /key lists a column twice/],
    ['an unknown tenant column', { tenantColumn: 'tenant' }, /tenantColumn names "tenant"/],
    [
      'an unknown source column mapping',
      { source: { columns: { nope: 'x' } } },
      /source.columns names "nope"/,
    ],
    [
      'a source query that is not a SELECT',
      { source: { query: 'DELETE FROM thing' } },
      /source.query must be a read-only SELECT/,
    ],
    [
      'a tenant-scoped query without $1',
      { tenantColumn: 'tenant_id', source: { query: 'SELECT * FROM thing' } },
      /must filter by the tenant with \$1/,
    ],
    [
      'a global query with $1',
      { source: { query: 'SELECT * FROM thing WHERE id = $1' } },
      /uses \$1, but the entity has no tenantColumn/,
    ],
    [
      'a query with a second parameter',
      { tenantColumn: 'tenant_id', source: { query: 'SELECT * FROM t WHERE a = $1 AND b = $2' } },
      /may use only the parameter \$1/,
    ],
    [
      'a reference from an unknown column',
      { references: [{ entity: 'p', columns: { nope: 'id' } }] },
      /references\[0\].columns names "nope"/,
    ],
    [
      'a reference without columns',
      { references: [{ entity: 'p', columns: {} }] },
      /references\[0\].columns must map at least one column/,
    ],
    [
      'a soft delete of an unknown column',
      { onMissing: { set: { nope: 1 } } },
      /onMissing.set names "nope"/,
    ],
    [
      'a soft delete that changes the key',
      { onMissing: { set: { id: 1n } } },
      /cannot change the key or tenant column "id"/,
    ],
    [
      'a soft delete with a value the column rejects',
      { onMissing: { set: { name: 5 } } },
      /onMissing.set.name is not a valid value/,
    ],
    ['an empty table name', { table: '' }, /entity "thing": table must be non-empty/],
  ];
  it.each(cases)('rejects %s', (_label, override, message) => {
    const definition = { name: 'thing', table: 'thing', columns, key: ['id'], ...override };
    expect(() => defineLoosely(definition)).toThrow(DefinitionError);
    expect(() => defineLoosely(definition)).toThrow(message);
  });

  it('accepts a schema-qualified table and a statement with leading comments', () => {
    const entity = defineEntity({
      name: 'thing',
      table: 'sync.thing',
      columns,
      key: ['id'],
      tenantColumn: 'tenant_id',
      source: {
        query: '-- things of a tenant\n/* all */ SELECT * FROM thing WHERE tenant_id = $1;',
      },
    });
    expect(entity.table).toEqual({ schema: 'sync', name: 'thing' });
    expect(entity.source).toEqual({
      kind: 'query',
      query: '-- things of a tenant\n/* all */ SELECT * FROM thing WHERE tenant_id = $1',
    });
  });
});

describe('createRegistry', () => {
  const parent = defineEntity({ name: 'parent', table: 'parent', columns, key: ['id'] });
  const child = defineEntity({
    name: 'child',
    table: 'child',
    columns,
    key: ['id'],
    references: [{ entity: 'parent', columns: { parent_id: 'id' } }],
  });

  it('orders parents before children whatever the given order', () => {
    expect(createRegistry([child, parent]).names).toEqual(['parent', 'child']);
  });

  it('orders the built-ins device, meter, register, device_register', () => {
    expect(createRegistry(builtInEntities).names).toEqual([
      'device',
      'meter',
      'register',
      'device_register',
    ]);
    expect(createRegistry([...builtInEntities].reverse()).names).toEqual([
      'register',
      'device',
      'device_register',
      'meter',
    ]);
  });

  it('rejects duplicate names', () => {
    expect(() => createRegistry([parent, { ...parent, table: { name: 'other' } }])).toThrow(
      /two entities are named "parent"/,
    );
  });

  it('rejects two entities writing one table', () => {
    const twin = defineEntity({ name: 'twin', table: 'parent', columns, key: ['id'] });
    expect(() => createRegistry([parent, twin])).toThrow(
      /entities "parent" and "twin" both write table "parent"/,
    );
  });

  it('rejects a reference to an unknown entity', () => {
    expect(() => createRegistry([child])).toThrow(
      /entity "child": reference to "parent" names an entity that is not registered/,
    );
  });

  it('rejects a reference to a parent column that is not its key', () => {
    const wrong = defineEntity({
      name: 'wrong',
      table: 'wrong',
      columns,
      key: ['id'],
      references: [{ entity: 'parent', columns: { parent_id: 'name' } }],
    });
    expect(() => createRegistry([parent, wrong])).toThrow(
      /must map onto the parent's whole key \(id\), got \(name\)/,
    );
  });

  it('rejects a reference to a column the parent does not have', () => {
    const wrong = defineEntity({
      name: 'wrong',
      table: 'wrong',
      columns,
      key: ['id'],
      references: [{ entity: 'parent', columns: { parent_id: 'ghost' } }],
    });
    expect(() => createRegistry([parent, wrong])).toThrow(
      /names parent column "ghost", which "parent" does not have/,
    );
  });

  it('rejects a cycle and shows it', () => {
    const a = defineEntity({
      name: 'a',
      table: 'a',
      columns,
      key: ['id'],
      references: [{ entity: 'b', columns: { parent_id: 'id' } }],
    });
    const b = defineEntity({
      name: 'b',
      table: 'b',
      columns,
      key: ['id'],
      references: [{ entity: 'a', columns: { parent_id: 'id' } }],
    });
    expect(() => createRegistry([a, b])).toThrow(/references form a cycle: a → b → a/);
  });

  it('rejects a self reference', () => {
    const self = defineEntity({
      name: 'self',
      table: 'self',
      columns,
      key: ['id'],
      references: [{ entity: 'self', columns: { parent_id: 'id' } }],
    });
    expect(() => createRegistry([self])).toThrow(/self references are not supported/);
  });

  it('looks entities up by name and lists children', () => {
    const registry = createRegistry([parent, child]);
    expect(registry.get('child')).toBe(child);
    expect(registry.childrenOf('parent').map((c) => c.child.name)).toEqual(['child']);
    expect(() => registry.get('ghost' as 'child')).toThrow(
      /unknown entity "ghost" \(known: parent, child\)/,
    );
    expect(registry.select(['child', 'parent']).map((e) => e.name)).toEqual(['parent', 'child']);
  });

  it('adds definitions with with() and validates the whole', () => {
    const registry = createRegistry([parent]).with(child);
    expect(registry.names).toEqual(['parent', 'child']);
    expect(() => createRegistry([child]).with()).toThrow(DefinitionError);
  });
});
