import { describe, expect, it } from 'vitest';
import {
  arrayLiteral,
  columnDecoder,
  decodedForms,
  encodeValue,
  sameValue,
} from '../../src/diff/decode.js';
import { col, JsonNull } from '../../src/index.js';

describe('column schemas turn every driver form into one canonical value', () => {
  it('reads int8 exactly as bigint from text, number or bigint', () => {
    expect(col.bigint().parse('9007199254740993')).toBe(9007199254740993n);
    expect(col.bigint().parse(42)).toBe(42n);
    expect(col.bigint().safeParse('12a').success).toBe(false);
    expect(col.bigint().safeParse(1.5).success).toBe(false);
  });

  it("reads an integer from '502' or 502 and rejects out-of-range values", () => {
    expect(col.int().parse('502')).toBe(502);
    expect(col.int().parse(502)).toBe(502);
    expect(col.int().parse(' 502 ')).toBe(502);
    expect(col.int().safeParse('2147483648').success).toBe(false);
    expect(col.int().safeParse('five').success).toBe(false);
  });

  it.each([
    ['1.50', '1.5'],
    ['001.000', '1'],
    ['-0.00', '0'],
    ['12345678901234567890.1234567890', '12345678901234567890.123456789'],
    ['.5', '0.5'],
    ['1e-7', '0.0000001'],
    ['2.5E3', '2500'],
    ['-1.20', '-1.2'],
    ['NaN', 'NaN'],
  ])('reads numeric %s as %s', (input, expected) => {
    expect(col.numeric().parse(input)).toBe(expected);
  });

  it('reads numeric from a JS number without float noise beyond the number itself', () => {
    expect(col.numeric().parse(0.1)).toBe('0.1');
    expect(col.numeric().parse(1.5)).toBe(col.numeric().parse('1.500'));
  });

  it.each([
    ['2024-02-29 23:59:59.123456+00', '2024-02-29T23:59:59.123456Z'],
    ['2024-03-01 05:29:59.123456+05:30', '2024-02-29T23:59:59.123456Z'],
    ['2024-02-29 20:29:59.123456-03:30', '2024-02-29T23:59:59.123456Z'],
    ['1970-01-01 00:00:00+00', '1970-01-01T00:00:00Z'],
    ['2024-01-01T00:00:00.5Z', '2024-01-01T00:00:00.5Z'],
    ['1900-01-01 00:00:00+00:19:32', '1899-12-31T23:40:28Z'],
    ['infinity', 'infinity'],
  ])('reads timestamptz %s as the UTC instant %s', (input, expected) => {
    expect(col.timestamptz().parse(input)).toBe(expected);
  });

  it('reads a timestamptz Date (as pg-mem returns) as the same instant', () => {
    expect(col.timestamptz().parse(new Date('2024-02-29T23:59:59.123Z'))).toBe(
      '2024-02-29T23:59:59.123Z',
    );
  });

  it('keeps timestamp microseconds and ignores the process time zone', () => {
    expect(col.timestamp().parse('1999-12-31 23:59:59.999999')).toBe('1999-12-31T23:59:59.999999');
    expect(col.timestamp().parse('2000-01-01 00:00:00')).toBe('2000-01-01T00:00:00');
    expect(col.timestamp().parse(new Date(Date.UTC(2000, 0, 1, 12)))).toBe('2000-01-01T12:00:00');
  });

  it('reads dates without shifting them', () => {
    expect(col.date().parse('2024-01-01')).toBe('2024-01-01');
    expect(col.date().parse(new Date(Date.UTC(2024, 0, 1)))).toBe('2024-01-01');
    expect(col.date().parse('0001-01-01')).toBe('0001-01-01');
  });

  it('reads booleans from PostgreSQL text', () => {
    expect(col.boolean().parse('t')).toBe(true);
    expect(col.boolean().parse('f')).toBe(false);
    expect(col.boolean().parse(true)).toBe(true);
    expect(col.boolean().safeParse('yes please').success).toBe(false);
  });

  it('reads arrays from literals and JS arrays alike', () => {
    expect(col.array(col.int()).parse('{1,2,3}')).toEqual([1, 2, 3]);
    expect(col.array(col.int()).parse([1, '2'])).toEqual([1, 2]);
    expect(col.array(col.text().nullable()).parse('{a,"b c",NULL}')).toEqual(['a', 'b c', null]);
  });

  it('keeps JSON null apart from SQL NULL', () => {
    expect(col.json().parse(JsonNull)).toBe(JsonNull);
    expect(col.json().parse('null')).toBe(JsonNull);
    expect(JSON.stringify({ a: JsonNull })).toBe('{"a":null}');
  });
});

describe('values handed to schemas and written back', () => {
  const json = { name: 'doc', type: 'jsonb', kind: 'json' } as const;
  const ints = {
    name: 'ids',
    type: 'integer[]',
    typeName: '_int4',
    category: 'A',
    elementTypeName: 'int4',
    kind: 'array',
  } as const;

  it('offers an integer as a number only when the number is exact', () => {
    const int8 = columnDecoder({ name: 'id', type: 'bigint', typeName: 'int8', kind: 'scalar' });
    expect(decodedForms(int8, '42')).toEqual([42, 42n, '42']);
    expect(decodedForms(int8, '9007199254740993')).toEqual([9007199254740993n, '9007199254740993']);
  });

  it('reads ISO timestamps in UTC, BC years included, to the millisecond', () => {
    const tz = columnDecoder({
      name: 't',
      type: 'timestamp with time zone',
      typeName: 'timestamptz',
      kind: 'scalar',
    });
    const [date] = decodedForms(tz, '2024-03-02 10:11:12.123456+00') as Date[];
    expect(date?.toISOString()).toBe('2024-03-02T10:11:12.123Z');
    const [bc] = decodedForms(tz, '0044-03-15 12:00:00+00 BC') as Date[];
    expect(bc?.getUTCFullYear()).toBe(-43);
    expect(decodedForms(tz, 'infinity')).toEqual(['infinity']);
  });

  it('tells an output that is the input from one a schema changed', () => {
    expect(sameValue(new Date(5), new Date(5))).toBe(true);
    expect(sameValue(new Date(5), new Date(6))).toBe(false);
    expect(sameValue({ a: [1, { b: 2 }] }, { a: [1, { b: 2 }] })).toBe(true);
    expect(sameValue({ a: 1 }, { a: '1' })).toBe(false);
    expect(sameValue(Number.NaN, Number.NaN)).toBe(true);
    expect(sameValue(0, -0)).toBe(false);
  });

  it('writes bigints inside JSON as digits and array elements quoted', () => {
    expect(encodeValue({ n: 9007199254740993n }, json)).toBe('{"n":9007199254740993}');
    expect(encodeValue([1, null, 3], ints)).toBe('{"1",NULL,"3"}');
    expect(arrayLiteral(['a"b', 'c\\d', 'x,y'])).toBe('{"a\\"b","c\\\\d","x,y"}');
    expect(encodeValue(-0, undefined)).toBe('-0');
  });
});
