import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import * as zm from 'zod/mini';
import { comparesExactly } from '../../src/entity/columns.js';
import { col, DefinitionError, defineEntity } from '../../src/index.js';

// zod/mini builds schemas from other classes than zod's classic API: what holds for both is
// recognised by the schema's kind, not by the class it was made with.
describe('column schemas are recognised by kind, whichever zod API built them', () => {
  it('compares col schemas and plain strings and booleans in SQL, nullable or optional', () => {
    expect(comparesExactly(col.bigint())).toBe(true);
    expect(comparesExactly(col.text().nullable())).toBe(true);
    expect(comparesExactly(col.timestamptz().optional())).toBe(true);
    expect(comparesExactly(z.string())).toBe(true);
    expect(comparesExactly(z.boolean().nullable().optional())).toBe(true);
    expect(comparesExactly(zm.string())).toBe(true);
    expect(comparesExactly(zm.nullable(zm.boolean()))).toBe(true);
    expect(comparesExactly(zm.optional(zm.nullable(zm.string())))).toBe(true);
  });

  it('compares in memory whatever transforms, refines or is not a string or boolean', () => {
    expect(comparesExactly(z.number())).toBe(false);
    expect(comparesExactly(z.string().min(1))).toBe(false);
    expect(comparesExactly(z.string().min(1).nullable())).toBe(false);
    expect(comparesExactly(col.text().refine((text) => text !== ''))).toBe(false);
    expect(comparesExactly(z.string().transform((text) => text.trim()))).toBe(false);
    expect(comparesExactly(zm.number())).toBe(false);
    expect(comparesExactly(zm.nullable(zm.string().check(zm.minLength(1))))).toBe(false);
  });

  it('defines an entity from a zod/mini object', () => {
    const note = defineEntity({
      name: 'note',
      table: 'note',
      columns: zm.object({ id: col.bigint(), body: zm.nullable(zm.string()) }),
      key: ['id'],
      onMissing: { set: { body: null } },
    });
    expect(note.columnNames).toEqual(['id', 'body']);
    expect(() =>
      defineEntity({
        name: 'note',
        table: 'note',
        columns: zm.object({ id: col.bigint(), body: zm.string() }),
        key: ['id'],
        // @ts-expect-error body is a string
        onMissing: { set: { body: 5 } },
      }),
    ).toThrow(DefinitionError);
  });
});
