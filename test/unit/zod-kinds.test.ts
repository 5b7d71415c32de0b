import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import * as zm from 'zod/mini';
import { isExactColumn } from '../../src/entity/columns.js';
import { col, DefinitionError, defineEntity } from '../../src/index.js';

// zod/mini builds schemas from other classes than zod's classic API: what holds for both is
// recognised by the schema's kind, not by the class it was made with.
describe('column schemas are recognised by kind, whichever zod API built them', () => {
  it("recognises col's own schemas, nullable or optional, in either API's wrappers", () => {
    expect(isExactColumn(col.bigint())).toBe(true);
    expect(isExactColumn(col.text().nullable())).toBe(true);
    expect(isExactColumn(col.timestamptz().optional())).toBe(true);
    expect(isExactColumn(zm.nullable(col.text()))).toBe(true);
    expect(isExactColumn(zm.optional(zm.nullable(col.numeric())))).toBe(true);
  });

  it("takes the user's own schemas, and refined col schemas, for schemas to hand decoded values", () => {
    expect(isExactColumn(z.string())).toBe(false);
    expect(isExactColumn(z.boolean().nullable())).toBe(false);
    expect(isExactColumn(zm.string())).toBe(false);
    expect(isExactColumn(col.text().refine((text) => text !== ''))).toBe(false);
    expect(isExactColumn(z.string().transform((text) => text.trim()))).toBe(false);
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
