import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { schemaFitsType, schemaShape } from '../../src/cli/column-schema.js';
import { findConfigFile, loadConfigFile } from '../../src/cli/config-file.js';
import type { CatalogColumn } from '../../src/db/pg/catalog.js';
import { col, defineConfig } from '../../src/index.js';

describe('column schemas, read from their zod definitions', () => {
  it.each([
    ['col.bigint()', col.bigint(), { kind: 'bigint', nullable: false }],
    ['col.int().nullable()', col.int().nullable(), { kind: 'number', nullable: true }],
    ['col.numeric()', col.numeric(), { kind: 'string', nullable: false }],
    [
      'col.timestamptz().nullable()',
      col.timestamptz().nullable(),
      { kind: 'string', nullable: true },
    ],
    ['col.boolean()', col.boolean(), { kind: 'boolean', nullable: false }],
    ['col.array(col.text())', col.array(col.text()), { kind: 'array', nullable: false }],
    ['z.number().optional()', z.number().optional(), { kind: 'number', nullable: false }],
    [
      'z.date().nullable().default(null)',
      z.date().nullable().default(null),
      { kind: 'date', nullable: true },
    ],
    ['z.coerce.date()', z.coerce.date(), { kind: 'date', coerce: true }],
    ['z.string().transform(Number)', z.string().transform(Number), { kind: 'string' }],
    ['z.string().pipe(z.coerce.number())', z.string().pipe(z.coerce.number()), { kind: 'number' }],
    ['col.json()', col.json(), { kind: 'union' }],
  ] as const)('%s', (_, schema, expected) => {
    expect(schemaShape(schema as z.ZodType)).toMatchObject(expected);
  });

  const column = (typeName: string, type = typeName, category = 'N'): CatalogColumn => ({
    name: 'c',
    type,
    typeName,
    category,
    notNull: true,
  });
  const never = async (): Promise<string | null> => {
    throw new Error('the data is not needed here');
  };

  it('judges a schema against a column type, asking for the data only when it matters', async () => {
    const fits = (schema: z.ZodType, sqlType: CatalogColumn, maxAbs = never) =>
      schemaFitsType(schemaShape(schema), sqlType, maxAbs);
    expect(await fits(z.number(), column('int4', 'integer'))).toBeUndefined();
    expect(await fits(z.number(), column('float8', 'double precision'))).toBeUndefined();
    expect(
      await fits(z.number(), column('int8', 'bigint'), async () => '9007199254740992'),
    ).toMatchObject({
      level: 'error',
    });
    expect(
      await fits(z.number(), column('int8', 'bigint'), async () => '9007199254740991'),
    ).toMatchObject({
      level: 'warning',
    });
    expect(await fits(z.number(), column('int8', 'bigint'), async () => null)).toMatchObject({
      level: 'warning',
    });
    expect(await fits(z.number(), column('text', 'text', 'S'))).toMatchObject({ level: 'error' });
    expect(await fits(z.date(), column('text', 'text', 'S'))).toMatchObject({ level: 'warning' });
    expect(
      await fits(z.coerce.date(), column('timestamptz', 'timestamp with time zone', 'D')),
    ).toBeUndefined();
    expect(await fits(z.boolean(), column('int4', 'integer'))).toMatchObject({ level: 'error' });
    expect(await fits(col.bigint(), column('int8', 'bigint'))).toBeUndefined();
    expect(await fits(col.text(), column('varchar', 'character varying(10)', 'S'))).toBeUndefined();
    expect(await fits(col.text(), column('int4', 'integer'))).toMatchObject({ level: 'error' });
    expect(await fits(col.array(col.text()), column('_text', 'text[]', 'A'))).toBeUndefined();
  });
});

describe('config files', () => {
  const trees: string[] = [];
  afterAll(() => {
    for (const root of trees) rmSync(root, { recursive: true, force: true });
  });
  const tree = (files: Record<string, string>) => {
    const root = mkdtempSync(join(tmpdir(), 'meter-sync-config-'));
    trees.push(root);
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(join(root, path, '..'), { recursive: true });
      writeFileSync(join(root, path), text);
    }
    return root;
  };

  it('is looked for from the working directory up to the package root, .ts first', () => {
    const root = tree({
      'meter-sync.config.ts': '',
      'app/package.json': '{}',
      'app/meter-sync.config.mjs': '',
      'app/meter-sync.config.js': '',
      'app/src/deep/.keep': '',
      'lib/package.json': '{}',
      'lib/src/.keep': '',
    });
    expect(findConfigFile(join(root, 'app', 'src', 'deep'))).toBe(
      join(root, 'app', 'meter-sync.config.js'),
    );
    // The package root has no config: the search stops there.
    expect(findConfigFile(join(root, 'lib', 'src'))).toBeUndefined();
    expect(findConfigFile(join(root, 'lib'), '../meter-sync.config.ts')).toBe(
      join(root, 'meter-sync.config.ts'),
    );
    expect(() => findConfigFile(root, 'missing.ts')).toThrow(/--config: no file at/);
  });

  it('loads .cjs, .mts and functions, and names a wrong field without its value', async () => {
    const root = tree({
      'a.config.cjs': 'module.exports = { tenantId: 3, schedule: 60000 };',
      'b.config.mts':
        "const level: 'info' = 'info';\nexport default { tenantId: 'x', logLevel: level };",
      'c.config.mjs': 'export default async () => ({ lockTimeoutMs: 500 });',
      'd.config.js': "export default { target: { host: 'h', port: 'hunter22' }, tenant: 1 };",
    });
    expect((await loadConfigFile(join(root, 'a.config.cjs'))).config).toEqual({
      tenantId: 3,
      schedule: 60000,
    });
    expect((await loadConfigFile(join(root, 'b.config.mts'))).config).toEqual({
      tenantId: 'x',
      logLevel: 'info',
    });
    expect((await loadConfigFile(join(root, 'c.config.mjs'))).config).toEqual({
      lockTimeoutMs: 500,
    });
    const failure = loadConfigFile(join(root, 'd.config.js'));
    await expect(failure).rejects.toThrow(/d\.config\.js: target: .*; unknown field tenant/);
    await expect(loadConfigFile(join(root, 'd.config.js'))).rejects.not.toThrow(/hunter22/);
  });

  it('defineConfig returns its argument', () => {
    const config = { tenantId: 1, schedule: '@hourly' };
    expect(defineConfig(config)).toBe(config);
  });
});
