import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineEntity, performSync } from '../../src/index.js';
import { createMemorySyncDatabase } from '../support/memory-sync-database.js';
import { memDatabase } from '../support/pgmem.js';
import { syncDatabaseSuite } from '../support/sync-database-suite.js';

const READING_COLUMNS = {
  meter_id: { type: 'bigint', typeName: 'int8', kind: 'scalar' },
  element: { type: 'text', typeName: 'text', kind: 'scalar' },
  tenant_id: { type: 'integer', typeName: 'int4', kind: 'scalar' },
  value: { type: 'numeric', typeName: 'numeric', kind: 'scalar' },
  tags: {
    type: 'text[]',
    typeName: '_text',
    category: 'A',
    elementTypeName: 'text',
    kind: 'array',
  },
  extra: { type: 'jsonb', typeName: 'jsonb', kind: 'json' },
} as const;

describe('a SyncDatabase that is not PostgreSQL (in memory)', () => {
  syncDatabaseSuite(async () => {
    const db = createMemorySyncDatabase({ reading: READING_COLUMNS });
    return { db, insertRaw: async (row) => db.insertRaw('reading', row) };
  });

  it('takes a whole performSync: inserts, updates, deletes within the tenant, then nothing', async () => {
    const site = defineEntity({
      name: 'site',
      table: 'site',
      columns: z.object({ id: z.number().int(), tenant_id: z.number(), label: z.string() }),
      key: ['id'],
      tenantColumn: 'tenant_id',
    });
    const source = memDatabase(`CREATE TABLE site (id int PRIMARY KEY, tenant_id int, label text);
      INSERT INTO site VALUES (1, 1, 'North'), (2, 1, 'South'), (3, 2, 'Other')`);
    const target = createMemorySyncDatabase({
      site: {
        id: { type: 'integer', typeName: 'int4', kind: 'scalar' },
        tenant_id: { type: 'integer', typeName: 'int4', kind: 'scalar' },
        label: { type: 'text', typeName: 'text', kind: 'scalar' },
      },
    });
    target.insertRaw('site', { id: '9', tenant_id: '1', label: 'Gone' });
    target.insertRaw('site', { id: '8', tenant_id: '2', label: 'Kept' });
    const sync = () => performSync({ source: source.pool, target, tenantId: 1, entities: [site] });
    expect((await sync()).entities.site).toMatchObject({ status: 'ok', inserted: 2, deleted: 1 });
    expect(
      target
        .rows('site')
        .map((row) => row.id)
        .sort(),
    ).toEqual(['1', '2', '8']);
    source.db.public.none("UPDATE site SET label = 'Nord' WHERE id = 1");
    expect((await sync()).entities.site).toMatchObject({ inserted: 0, updated: 1, unchanged: 1 });
    expect((await sync()).entities.site).toMatchObject({ inserted: 0, updated: 0, deleted: 0 });
  });
});
