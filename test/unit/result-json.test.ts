import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  builtIns,
  col,
  DatabaseError,
  DataError,
  defineEntity,
  formatKey,
  JsonNull,
  performSync,
  resultToJSON,
} from '../../src/index.js';
import { createTestDatabases } from '../../src/testing/index.js';

describe('errors serialise to what they say', () => {
  it('keeps name, message, entity, key, column, SQLSTATE and the cause', () => {
    const error = new DatabaseError('register: writing 1 row failed', {
      entity: 'register',
      key: { register_id: 9007199254740993n, at: new Date('2024-02-29T23:59:59.123Z') },
      column: 'name',
      code: '22001',
      cause: new Error('value too long for type character varying(10)'),
    });
    expect(JSON.parse(JSON.stringify(error))).toEqual({
      name: 'DatabaseError',
      message: 'register: writing 1 row failed',
      entity: 'register',
      key: { register_id: '9007199254740993', at: '2024-02-29T23:59:59.123Z' },
      column: 'name',
      code: '22001',
      cause: 'value too long for type character varying(10)',
    });
  });

  it('leaves out what is not known and turns nested and JSON null values into JSON', () => {
    const error = new DataError('thing: bad row', {
      key: { id: [1n, 2n], doc: { when: new Date(0), nothing: JsonNull, skip: undefined } },
      cause: 'a string thrown',
    });
    expect(error.toJSON()).toEqual({
      name: 'DataError',
      message: 'thing: bad row',
      key: { id: ['1', '2'], doc: { when: '1970-01-01T00:00:00.000Z', nothing: null } },
      cause: 'a string thrown',
    });
    expect(new DataError('plain').toJSON()).toEqual({ name: 'DataError', message: 'plain' });
  });
});

describe('resultToJSON', () => {
  // pg-mem holds int8 as a JS number: the keys stay within 2^53.
  it('turns a run with a bigint tenant and a failed entity into JSON without losing either', async () => {
    const gadget = defineEntity({
      name: 'gadget',
      table: 'gadget',
      columns: z.object({
        id: col.bigint(),
        tenant_id: col.bigint(),
        label: col.text().min(1),
      }),
      key: ['id'],
      tenantColumn: 'tenant_id',
    });
    const table = 'CREATE TABLE gadget (id bigint PRIMARY KEY, tenant_id bigint, label text);';
    const { source, target } = await createTestDatabases({
      tenants: [1],
      sql: `${table} INSERT INTO gadget VALUES (9007199254740990, 1, 'fine'), (9007199254740991, 1, '');`,
      targetSql: table,
    });
    const tenantId = 1n;
    const result = await performSync({
      source: source.pool,
      target: target.pool,
      tenantId,
      entities: [gadget],
    });
    expect(result.ok).toBe(false);
    expect(JSON.parse(JSON.stringify(result))).toEqual(
      JSON.parse(JSON.stringify(resultToJSON(result))),
    );

    const json = JSON.parse(JSON.stringify(resultToJSON(result)));
    expect(json).toMatchObject({
      ok: false,
      dryRun: false,
      tenantId: '1',
      startedAt: result.startedAt.toISOString(),
      finishedAt: result.finishedAt.toISOString(),
      entities: {
        gadget: {
          status: 'failed',
          inserted: 0,
          error: {
            name: 'DataError',
            entity: 'gadget',
            key: { id: '9007199254740991' },
            column: 'label',
          },
        },
      },
    });
    expect(json.entities.gadget.error.message).toBe(result.entities.gadget.error?.message);
    expect(json.entities.gadget.durationMs).toBe(result.entities.gadget.durationMs);
    // The error alone, as a logger serialising it would: the bigint key survives.
    expect(JSON.parse(JSON.stringify(result.entities.gadget.error)).key).toEqual({
      id: '9007199254740991',
    });
  });

  it('turns the keys of change lists and warnings into JSON: bigints and dates as strings', async () => {
    const reading = defineEntity({
      name: 'reading',
      table: 'reading',
      columns: z.object({
        register_id: col.bigint(),
        at: z.coerce.date(),
        code: z.string(),
        value: z.number(),
      }),
      key: ['register_id', 'at', 'code'],
      references: [{ entity: 'register', columns: { register_id: 'register_id' } }],
    });
    const table =
      'CREATE TABLE reading (register_id bigint, at timestamptz, code text, value int, PRIMARY KEY (register_id, at, code));';
    const { source, target } = await createTestDatabases({
      tenants: [1],
      sql: `${table} INSERT INTO reading VALUES (101, '2024-02-29T23:59:59.123Z', 'a', 1), (999, '2024-03-01T00:00:00Z', 'b', 2);`,
      targetSql: `${table} INSERT INTO register (register_id, tenant_id, name, register, unit, field_name) VALUES (101, 1, 'r', 1, 'kWh', 'f');`,
    });
    const result = await performSync({
      source: source.pool,
      target: target.pool,
      entities: [builtIns.register, reading],
      only: ['reading'],
      listChanges: true,
    });
    expect(result.entities.reading.changes?.inserted).toEqual([
      { register_id: 101n, at: new Date('2024-02-29T23:59:59.123Z'), code: 'a' },
    ]);
    expect(result.entities.reading.warnings[0]?.sampleKeys).toEqual([
      { register_id: 999n, at: new Date('2024-03-01T00:00:00Z'), code: 'b' },
    ]);
    const json = JSON.parse(JSON.stringify(result));
    expect(json).toEqual(JSON.parse(JSON.stringify(resultToJSON(result))));
    expect(json.entities.reading.changes).toEqual({
      inserted: [{ register_id: '101', at: '2024-02-29T23:59:59.123Z', code: 'a' }],
      updated: [],
      deleted: [],
    });
    expect(json.entities.reading.warnings[0].sampleKeys).toEqual([
      { register_id: '999', at: '2024-03-01T00:00:00.000Z', code: 'b' },
    ]);
  });
});

describe('formatKey', () => {
  it('prints a key as the CLI and log lines do: numbers bare, text quoted, dates in ISO', () => {
    expect(formatKey({ device_id: 1n, register_id: 203n })).toBe('(device_id=1, register_id=203)');
    expect(formatKey({ meter_id: 1, element: 'A', amount: '1.50' })).toBe(
      '(meter_id=1, element="A", amount=1.50)',
    );
    expect(formatKey({ at: new Date('2024-02-29T23:59:59.123Z'), gone: null })).toBe(
      '(at="2024-02-29T23:59:59.123Z", gone=NULL)',
    );
  });
});
