import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { type AnyEntity, defineEntity, performSync } from '../../src/index.js';
import { createDatabase } from '../support/postgres.js';

/**
 * Whatever a `source.query` holds, the source receives it as part of one read-only statement:
 * stacked statements, a COMMIT, SET, or a function that writes never take effect there.
 */
const attempts: [string, string][] = [
  ['stacked statements', 'SELECT 1 AS id; CREATE TABLE pwned (x int); SELECT 1 AS id'],
  [
    'a way out of the wrapping parentheses',
    'SELECT 1 AS id) AS q; COMMIT; CREATE TABLE pwned (x int); SELECT * FROM (SELECT 1 AS id',
  ],
  ['a comment hiding the rest', 'SELECT 1 AS id -- ) AS x; CREATE TABLE pwned (x int)'],
  [
    'a function that writes',
    'SELECT id FROM (SELECT 1 AS id, (SELECT count(*) FROM (SELECT write_pwned()) AS w) AS n) AS s',
  ],
  [
    'a session setting',
    "SELECT 1 AS id FROM (SELECT set_config('default_transaction_read_only', 'off', false)) AS s; CREATE TABLE pwned (x int)",
  ],
  [
    'a data-modifying WITH',
    'WITH w AS (INSERT INTO victim VALUES (2) RETURNING 1) SELECT 1 AS id FROM w',
  ],
];

describe('a source.query can never modify the source', () => {
  it.each(attempts)('%s', async (_label, query) => {
    const remote = await createDatabase('stmt_remote');
    const local = await createDatabase('stmt_local');
    await remote.pool.query(`CREATE TABLE victim (x int); INSERT INTO victim VALUES (1);
      CREATE FUNCTION write_pwned() RETURNS int LANGUAGE sql AS 'CREATE TABLE pwned (x int); SELECT 1'`);
    await local.pool.query('CREATE TABLE probe (id int PRIMARY KEY)');
    let entity: AnyEntity | undefined;
    try {
      entity = defineEntity({
        name: 'probe',
        table: 'probe',
        columns: z.object({ id: z.number() }),
        key: ['id'],
        source: { query },
      });
    } catch {
      // Refused at definition: nothing reached the source.
    }
    if (entity) {
      for (const dryRun of [true, false]) {
        const result = await performSync({
          source: remote.pool,
          target: local.pool,
          entities: [entity],
          dryRun,
        });
        expect(result.entities.probe?.status).toBe('failed');
      }
    }
    const pwned = await remote.pool.query("SELECT to_regclass('pwned') IS NOT NULL AS exists");
    expect(pwned.rows[0].exists).toBe(false);
    expect((await remote.pool.query('SELECT x FROM victim')).rows).toEqual([{ x: 1 }]);
  });
});
