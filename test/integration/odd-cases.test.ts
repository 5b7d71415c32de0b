import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineEntity, performSync } from '../../src/index.js';
import { createDatabase } from '../support/postgres.js';

/** Cases a comparison by the type's equality, or a library's own names, would get wrong. */
describe('cases that look equal, keys that look different, names the library uses', () => {
  it('applies a change of case under a case-insensitive ICU collation', async () => {
    const remote = await createDatabase('odd_icu_remote');
    const local = await createDatabase('odd_icu_local');
    await remote.pool.query(`CREATE TABLE tag (id int PRIMARY KEY, label text);
      INSERT INTO tag VALUES (1, 'abc')`);
    await local.pool.query(`CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
      CREATE TABLE tag (id int PRIMARY KEY, label text COLLATE ci)`);
    const tag = defineEntity({
      name: 'tag',
      table: 'tag',
      columns: z.object({ id: z.number(), label: z.string() }),
      key: ['id'],
    });
    const sync = () => performSync({ source: remote.pool, target: local.pool, entities: [tag] });
    await sync();
    await remote.pool.query("UPDATE tag SET label = 'ABC'");
    expect((await sync()).entities.tag).toMatchObject({ updated: 1 });
    expect((await local.pool.query('SELECT label FROM tag')).rows).toEqual([{ label: 'ABC' }]);
    expect((await sync()).entities.tag).toMatchObject({ updated: 0 });
  });

  it('keeps a json string holding \\u0000 and converges', async () => {
    const remote = await createDatabase('odd_json_remote');
    const local = await createDatabase('odd_json_local');
    const ddl = 'CREATE TABLE doc (id int PRIMARY KEY, body json)';
    await remote.pool.query(`${ddl}; INSERT INTO doc VALUES (1, '{"s": "a\\u0000b", "n": 1.0}')`);
    await local.pool.query(ddl);
    const doc = defineEntity({
      name: 'doc',
      table: 'doc',
      columns: z.object({ id: z.number(), body: z.unknown() }),
      key: ['id'],
    });
    const sync = () => performSync({ source: remote.pool, target: local.pool, entities: [doc] });
    expect((await sync()).entities.doc).toMatchObject({ status: 'ok', inserted: 1 });
    const text = 'SELECT body::text FROM doc';
    expect((await local.pool.query(text)).rows).toEqual((await remote.pool.query(text)).rows);
    expect((await sync()).entities.doc).toMatchObject({ status: 'ok', inserted: 0, updated: 0 });
  });

  it('matches a text key on the source with a uuid key on the target, whatever its case', async () => {
    const remote = await createDatabase('odd_uuid_remote');
    const local = await createDatabase('odd_uuid_local');
    await remote.pool.query(`CREATE TABLE dev (id text PRIMARY KEY, name text);
      INSERT INTO dev VALUES ('A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', 'one')`);
    await local.pool.query('CREATE TABLE dev (id uuid PRIMARY KEY, name text, note text)');
    const dev = defineEntity({
      name: 'dev',
      table: 'dev',
      columns: z.object({ id: z.string(), name: z.string() }),
      key: ['id'],
    });
    const sync = () => performSync({ source: remote.pool, target: local.pool, entities: [dev] });
    expect((await sync()).entities.dev).toMatchObject({ inserted: 1 });
    await local.pool.query("UPDATE dev SET note = 'local'");
    await remote.pool.query("UPDATE dev SET name = 'two'");
    expect((await sync()).entities.dev).toMatchObject({ inserted: 0, updated: 1, deleted: 0 });
    expect((await local.pool.query('SELECT name, note FROM dev')).rows).toEqual([
      { name: 'two', note: 'local' },
    ]);
  });

  it('syncs columns named like everything the library names in its statements', async () => {
    const names = [
      'c0',
      'k0',
      'v',
      't',
      'source',
      'query',
      'wanted',
      'inserted',

      'meter_sync_stage_1',
      'EXCLUDED',
      'g',
      'bucket',
      'h',
    ];
    const remote = await createDatabase('odd_names_remote');
    const local = await createDatabase('odd_names_local');
    const ddl = `CREATE TABLE "source" (${names.map((n) => `"${n}" text`).join(', ')}, PRIMARY KEY ("c0", "t"))`;
    await remote.pool.query(
      `${ddl}; INSERT INTO "source" SELECT ${names.map((_, i) => `'r' || g || '-${i}'`).join(', ')} FROM generate_series(1, 50) AS g`,
    );
    await local.pool.query(ddl);
    const entity = defineEntity({
      name: 'odd',
      table: 'source',
      columns: z.object(Object.fromEntries(names.map((n) => [n, z.string()]))),
      key: ['c0', 't'],
    });
    const sync = () => performSync({ source: remote.pool, target: local.pool, entities: [entity] });
    expect((await sync()).entities.odd).toMatchObject({ status: 'ok', inserted: 50 });
    await remote.pool.query(
      `UPDATE "source" SET "v" = 'changed' WHERE "c0" = 'r7-0'; DELETE FROM "source" WHERE "c0" = 'r9-0'`,
    );
    expect((await sync()).entities.odd).toMatchObject({ status: 'ok', updated: 1, deleted: 1 });
    const all = 'SELECT * FROM "source" ORDER BY "c0", "t"';
    expect((await local.pool.query(all)).rows).toEqual((await remote.pool.query(all)).rows);
  });
});

describe('a global entity read through a query, tied to its tenant by a parent', () => {
  it('keeps its rows whose reference an outer join leaves NULL, though the column is NOT NULL in its table', async () => {
    const remote = await createDatabase('odd_outer_remote');
    const local = await createDatabase('odd_outer_local');
    await remote.pool.query(`CREATE TABLE site (site_id int PRIMARY KEY, tenant_id int NOT NULL);
      CREATE TABLE gauge (gauge_id int PRIMARY KEY);
      CREATE TABLE placement (gauge_id int PRIMARY KEY, site_id int NOT NULL);
      INSERT INTO site VALUES (1, 1), (2, 2);
      INSERT INTO gauge VALUES (10), (20), (30);
      INSERT INTO placement VALUES (10, 1), (20, 2);`);
    await local.pool.query(`CREATE TABLE site (site_id int PRIMARY KEY, tenant_id int NOT NULL);
      CREATE TABLE gauge (gauge_id int PRIMARY KEY, site_id int)`);
    const site = defineEntity({
      name: 'site',
      table: 'site',
      columns: z.object({ site_id: z.number().int(), tenant_id: z.number().int() }),
      key: ['site_id'],
      tenantColumn: 'tenant_id',
    });
    const gauge = defineEntity({
      name: 'gauge',
      table: 'gauge',
      columns: z.object({ gauge_id: z.number().int(), site_id: z.number().int().nullable() }),
      key: ['gauge_id'],
      // placement.site_id is NOT NULL, yet NULL here for a gauge placed nowhere.
      source: {
        query:
          'SELECT g.gauge_id, p.site_id FROM gauge AS g LEFT JOIN placement AS p ON p.gauge_id = g.gauge_id',
      },
      references: [{ entity: 'site', columns: { site_id: 'site_id' } }],
    });
    const result = await performSync({
      source: remote.pool,
      target: local.pool,
      tenantId: 1,
      entities: [site, gauge],
    });
    expect(result.entities.gauge).toMatchObject({ status: 'ok', inserted: 2 });
    const { rows } = await local.pool.query(
      'SELECT gauge_id, site_id FROM gauge ORDER BY gauge_id',
    );
    expect(rows).toEqual([
      { gauge_id: 10, site_id: 1 },
      { gauge_id: 30, site_id: null },
    ]);
  });
});
