// Files of a fresh project: a matrix of sync cases (a plain-zod entity per case), a unit test
// that runs each case on pg-mem through `meter-sync/testing` with node:test, and a script that
// runs the same cases on PostgreSQL.

/** What each case does on PostgreSQL 15, and whether pg-mem refuses it instead of agreeing. */
export const matrix = {
  'z.number() on bigint within 2^53': { postgres: 'passes' },
  'z.number() on bigint beyond 2^53': { postgres: 'fails' },
  'z.bigint() on bigint beyond 2^53': { postgres: 'passes', pgMem: 'refuses' },
  'a value too long for the target varchar': { postgres: 'fails' },
  'NULL into a NOT NULL target column': { postgres: 'fails' },
  'a schema-qualified target table': { postgres: 'passes' },
  'z.date() on timestamptz': { postgres: 'passes' },
  'numeric(10,2) as z.string() keeps its scale': { postgres: 'passes' },
  'numeric(10,2) as z.number().int() with a fraction': { postgres: 'fails' },
  'char(3) as z.string() reads without its padding': { postgres: 'passes' },
  'numeric without a scale as z.string()': { postgres: 'passes', pgMem: 'refuses' },
} as const satisfies Record<string, { postgres: 'passes' | 'fails'; pgMem?: 'refuses' }>;

export const casesSource = (api: string) => `import { z } from '${api}';
import { defineEntity, type PgPool, performSync } from 'meter-sync';

/** One source row (id 1) with a value, synced into a target table through a plain-zod entity. */
export interface MatrixCase {
  readonly name: string;
  readonly source: { readonly type: string; readonly value: string };
  readonly target: { readonly table: string; readonly type: string };
  readonly value: z.ZodType;
}

export const cases: MatrixCase[] = [
  {
    name: 'z.number() on bigint within 2^53',
    source: { type: 'bigint', value: '9007199254740991' },
    target: { table: 'plain', type: 'bigint' },
    value: z.number(),
  },
  {
    name: 'z.number() on bigint beyond 2^53',
    source: { type: 'bigint', value: '9007199254740993' },
    target: { table: 'plain', type: 'bigint' },
    value: z.number(),
  },
  {
    name: 'z.bigint() on bigint beyond 2^53',
    source: { type: 'bigint', value: '9007199254740993' },
    target: { table: 'plain', type: 'bigint' },
    value: z.bigint(),
  },
  {
    name: 'a value too long for the target varchar',
    source: { type: 'text', value: "'seven!!'" },
    target: { table: 'plain', type: 'varchar(5)' },
    value: z.string(),
  },
  {
    name: 'NULL into a NOT NULL target column',
    source: { type: 'text', value: 'NULL' },
    target: { table: 'plain', type: 'text NOT NULL' },
    value: z.string().nullable(),
  },
  {
    name: 'a schema-qualified target table',
    source: { type: 'text', value: "'kWh'" },
    target: { table: 'local_copy.qualified', type: 'text' },
    value: z.string(),
  },
  {
    name: 'z.date() on timestamptz',
    source: { type: 'timestamptz', value: "'2024-02-29 23:59:59.123+01'" },
    target: { table: 'plain', type: 'timestamptz' },
    value: z.date(),
  },
  {
    name: 'numeric(10,2) as z.string() keeps its scale',
    source: { type: 'numeric(10,2)', value: '1.5' },
    target: { table: 'plain', type: 'numeric(10,2)' },
    value: z.string().regex(/^\\d+\\.\\d{2}$/),
  },
  {
    name: 'numeric(10,2) as z.number().int() with a fraction',
    source: { type: 'numeric(10,2)', value: '1.5' },
    target: { table: 'plain', type: 'numeric(10,2)' },
    value: z.number().int(),
  },
  {
    name: 'char(3) as z.string() reads without its padding',
    source: { type: 'char(3)', value: "'ab'" },
    target: { table: 'plain', type: 'char(3)' },
    value: z.string().length(2),
  },
  {
    name: 'numeric without a scale as z.string()',
    source: { type: 'numeric', value: '1.50' },
    target: { table: 'plain', type: 'numeric' },
    value: z.string().regex(/^\\d+\\.\\d{2}$/),
  },
];

// Every case has tables of its own, so the cases can share two PostgreSQL databases.
const sourceTable = (index: number) => \`source_\${index}\`;
const targetTable = (c: MatrixCase, index: number) => {
  const [schema, name] = c.target.table.includes('.') ? c.target.table.split('.') : [undefined, c.target.table];
  return schema === undefined ? \`\${name}_\${index}\` : \`\${schema}_\${index}.\${name}\`;
};

export const sourceSql = (c: MatrixCase, index: number) =>
  \`CREATE TABLE \${sourceTable(index)} (id int PRIMARY KEY, value \${c.source.type});
   INSERT INTO \${sourceTable(index)} VALUES (1, \${c.source.value});\`;

export const targetSql = (c: MatrixCase, index: number) => {
  const table = targetTable(c, index);
  const schema = table.includes('.') ? \`CREATE SCHEMA \${table.split('.')[0]};\` : '';
  return \`\${schema} CREATE TABLE \${table} (id int PRIMARY KEY, value \${c.target.type});\`;
};

/** Syncs the case's table: whether it went through, and the entity's error if not. */
export async function syncCase(c: MatrixCase, index: number, source: PgPool, target: PgPool) {
  const entity = defineEntity({
    name: \`case_\${index}\`,
    table: targetTable(c, index),
    columns: z.object({ id: z.number().int(), value: c.value }),
    key: ['id'],
    source: { table: sourceTable(index) },
  });
  const result = await performSync({ source, target, entities: [entity] });
  const error = result.entities[entity.name]?.error;
  return { ok: result.ok, ...(error ? { error: error.message } : {}) };
}
`;

/** The project's unit test: each case on pg-mem, as an agent codebase would test its wiring. */
export const unitTestSource = `import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createTestDatabases } from 'meter-sync/testing';
import { cases, sourceSql, syncCase, targetSql } from './cases.js';

for (const [index, c] of cases.entries()) {
  test(c.name, async () => {
    const { source, target } = await createTestDatabases({
      seed: false,
      sql: sourceSql(c, index),
      targetSql: targetSql(c, index),
    });
    const outcome = await syncCase(c, index, source.pool, target.pool);
    assert.ok(outcome.ok, outcome.error);
  });
}
`;

/** The same cases on PostgreSQL: the databases come as URLs; prints each case's outcome. */
export const onPostgresSource = `import pg from 'pg';
import { cases, sourceSql, syncCase, targetSql } from './cases.js';

const source = new pg.Pool({ connectionString: process.env.MATRIX_SOURCE_URL });
const target = new pg.Pool({ connectionString: process.env.MATRIX_TARGET_URL });
const outcomes: Record<string, { ok: boolean; error?: string }> = {};
for (const [index, c] of cases.entries()) {
  await source.query(sourceSql(c, index));
  await target.query(targetSql(c, index));
  outcomes[c.name] = await syncCase(c, index, source, target);
}
await Promise.all([source.end(), target.end()]);
console.log(JSON.stringify(outcomes));
`;

/** Outcomes of a node:test TAP report by test name: passed, or the failure's text. */
export function tapOutcomes(tap: string): Record<string, { ok: boolean; detail: string }> {
  const outcomes: Record<string, { ok: boolean; detail: string }> = {};
  let current: { ok: boolean; detail: string } | undefined;
  for (const line of tap.split('\n')) {
    const result = /^(not ok|ok) \d+ - (.+)$/.exec(line);
    if (result) {
      current = { ok: result[1] === 'ok', detail: '' };
      outcomes[result[2] as string] = current;
    } else if (current && line.startsWith('  ')) current.detail += `${line.trim()}\n`;
  }
  return outcomes;
}
