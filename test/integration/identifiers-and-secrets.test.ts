import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { col, DatabaseError, defineEntity, performSync } from '../../src/index.js';
import { recordingLogger } from '../support/pgmem.js';
import { createDatabase, databaseUrl, openPool } from '../support/postgres.js';

describe('identifiers that need quoting, and values that look like SQL', () => {
  // Quotes, spaces, capitals, reserved words, and a name that would end a statement if spliced.
  const table = 't"; DROP TABLE victim; --';
  const ddl = (schema: string) => `CREATE SCHEMA "${schema.replace(/"/g, '""')}";
    CREATE TABLE "${schema.replace(/"/g, '""')}"."${table.replace(/"/g, '""')}" (
      "select" int NOT NULL, "Col X" text NOT NULL, "tenant""Id" text NOT NULL, "order" text, "Value" numeric,
      PRIMARY KEY ("select", "Col X"));
    CREATE TABLE victim (id int)`;
  const tenant = `o'brien"; DELETE FROM victim; --`;

  it.each(['col schemas', 'a refining schema'] as const)(
    'sync with %s and harm nothing',
    async (style) => {
      const remote = await createDatabase('ident_remote');
      const local = await createDatabase('ident_local');
      await remote.pool.query(ddl('Source "Schema"'));
      await local.pool.query(ddl('Sync Data'));
      await remote.pool.query(
        `INSERT INTO "Source ""Schema"""."${table.replace(/"/g, '""')}" VALUES (1, 'a b', $1, 'x''y', 1.5), (2, 'C"D', $1, NULL, NULL), (3, 'e', 'other', 'z', 2)`,
        [tenant],
      );
      await remote.pool.query('INSERT INTO victim VALUES (1)');
      await local.pool.query('INSERT INTO victim VALUES (1)');
      const order =
        style === 'col schemas'
          ? col.text().nullable()
          : col
              .text()
              .nullable()
              .refine(() => true);
      const odd = defineEntity({
        name: 'odd "entity"',
        table: { schema: 'Sync Data', name: table },
        columns: z.object({
          select: col.int(),
          'Col X': col.text(),
          'tenant"Id': col.text(),
          order,
          Value: col.numeric().nullable(),
        }),
        key: ['select', 'Col X'],
        tenantColumn: 'tenant"Id',
        source: { table: { schema: 'Source "Schema"', name: table } },
      });
      const { lines, logger } = recordingLogger();
      const first = await performSync({
        source: remote.pool,
        target: local.pool,
        tenantId: tenant,
        entities: [odd],
        logger,
      });
      expect(first.entities['odd "entity"']).toMatchObject({ status: 'ok', inserted: 2 });
      expect(lines.find((line) => line.message === 'entity compared')?.data.hash).toBe('sql');
      const rows = await local.pool.query(
        `SELECT "select", "Col X", "order", "Value"::text FROM "Sync Data"."${table.replace(/"/g, '""')}" ORDER BY 1`,
      );
      expect(rows.rows).toEqual([
        { select: 1, 'Col X': 'a b', order: "x'y", Value: '1.5' },
        { select: 2, 'Col X': 'C"D', order: null, Value: null },
      ]);
      await remote.pool.query(
        `DELETE FROM "Source ""Schema"""."${table.replace(/"/g, '""')}" WHERE "select" = 2`,
      );
      const second = await performSync({
        source: remote.pool,
        target: local.pool,
        tenantId: tenant,
        entities: [odd],
      });
      expect(second.entities['odd "entity"']).toMatchObject({
        status: 'ok',
        deleted: 1,
        unchanged: 1,
      });
      for (const db of [remote, local])
        expect((await db.pool.query('SELECT count(*)::int AS n FROM victim')).rows[0].n).toBe(1);
    },
  );
});

describe('passwords never reach logs, errors or results', () => {
  const password = 'Sup3r-Secret_Passw0rd';

  it('keeps the password out of a successful run, a failed entity and an unreachable database', async () => {
    const remote = await createDatabase('secret_remote');
    const local = await createDatabase('secret_local');
    await remote.pool.query(`CREATE ROLE secret_reader LOGIN PASSWORD '${password}';
      CREATE TABLE device (device_id int PRIMARY KEY, manufacturer text, model_number text, description text, type text, active boolean);
      INSERT INTO device VALUES (1, 'ABB', 'M4M', NULL, NULL, true);
      GRANT SELECT ON device TO secret_reader;`);
    const withPassword = (database: string) => {
      const url = new URL(databaseUrl(database));
      url.username = 'secret_reader';
      url.password = password;
      return url.toString();
    };
    const { lines, logger } = recordingLogger();
    const source = openPool(withPassword(remote.name));
    const target = openPool(withPassword(local.name).replace('secret_reader', 'postgres'));
    // device's table is missing on the target: that entity fails, with its error in the result.
    const result = await performSync({ source, target, only: ['device'], logger });
    expect(result.entities.device.status).toBe('failed');
    const unreachable = await performSync({
      source: openPool(withPassword('no_such_database')),
      target,
      only: ['device'],
      logger,
    }).catch((error: unknown) => error);
    expect(unreachable).toBeInstanceOf(DatabaseError);

    const everything = JSON.stringify(
      {
        lines,
        result,
        unreachable: describeError(unreachable),
        failure: describeError(result.entities.device.error),
      },
      (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value),
    );
    expect(everything).toContain('no_such_database');
    expect(everything).not.toContain(password);
  });
});

/** An error's message, stack and causes, all the text a logger could print. */
function describeError(error: unknown): unknown {
  if (!(error instanceof Error)) return error;
  return { ...error, text: error.message, stack: error.stack, cause: describeError(error.cause) };
}
