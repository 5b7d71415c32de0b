import { parse as parseArray } from 'postgres-array';
import { JsonNull } from '../../entity/json-null.js';
import type { Capabilities } from './capabilities.js';
import type { PgTypeParsers } from './pool.js';

/**
 * Type parsers sent with every query, so decoding never depends on global `pg.types` settings
 * (a common `setTypeParser(20, parseInt)` would silently round big ids). Types a JS number or
 * Date cannot hold exactly (int8, numeric, date, time and timestamp types, interval, money) stay
 * PostgreSQL's exact text; the entity's schema turns them into canonical values.
 */
type Parser = (text: string) => unknown;

const asText: Parser = (text) => text;
const asInteger: Parser = (text) => Number.parseInt(text, 10);
const asFloat: Parser = (text) => Number(text);
const asBoolean: Parser = (text) => text === 't' || text === 'true';
// JSON null must not turn into SQL NULL.
const asJson: Parser = (text) => (text === 'null' ? JsonNull : JSON.parse(text));
const asBytes: Parser = (text) =>
  text.startsWith('\\x') ? Buffer.from(text.slice(2), 'hex') : Buffer.from(text, 'latin1');

const arrayOf =
  (element: Parser): Parser =>
  (text) =>
    parseArray(text, element);

// OIDs from PostgreSQL's pg_type.dat; stable across versions.
const SCALARS: Record<number, Parser> = {
  16: asBoolean,
  17: asBytes,
  21: asInteger,
  23: asInteger,
  26: asInteger,
  114: asJson,
  700: asFloat,
  701: asFloat,
  3802: asJson,
};

const ARRAYS: Record<number, Parser> = {
  1000: arrayOf(asBoolean),
  1001: arrayOf(asBytes),
  1005: arrayOf(asInteger),
  1007: arrayOf(asInteger),
  1028: arrayOf(asInteger),
  1021: arrayOf(asFloat),
  1022: arrayOf(asFloat),
  199: arrayOf(asJson),
  3807: arrayOf(asJson),
  // Arrays whose elements stay text: strings, and the exact types above.
  1002: arrayOf(asText),
  1009: arrayOf(asText),
  1014: arrayOf(asText),
  1015: arrayOf(asText),
  1016: arrayOf(asText),
  1041: arrayOf(asText),
  1115: arrayOf(asText),
  1182: arrayOf(asText),
  1183: arrayOf(asText),
  1185: arrayOf(asText),
  1187: arrayOf(asText),
  1231: arrayOf(asText),
  1270: arrayOf(asText),
  2951: arrayOf(asText),
};

function getTypeParser(oid: number, format?: string): Parser {
  if (format === 'binary') return asText;
  return SCALARS[oid] ?? ARRAYS[oid] ?? asText;
}

/**
 * node-postgres also hands a query's `types` to its Parse message as the list of parameter
 * types. An empty array that carries `getTypeParser` reads as "no parameter types" there, in
 * node-postgres's serializer and in PGlite's adapter alike (which rejects a plain object).
 */
export const exactTypeParsers: PgTypeParsers = Object.freeze(
  Object.assign([] as unknown[], { getTypeParser }),
);

/** The query-config part that selects these parsers, on drivers that take them. */
export function typeParsersFor(capabilities: Capabilities): { types?: PgTypeParsers } {
  return capabilities.typeParsers ? { types: exactTypeParsers } : {};
}
