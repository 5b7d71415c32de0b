/**
 * The statements that read an entity on either side: rows (or keys and hashes) in key order,
 * bucket fingerprints, rows with a NULL key. Both sides read values of the TARGET's column types
 * (the source casts to them where its own differ), as text, so equal content gives equal text
 * and equal hashes on both servers. Identifiers are quoted; values are bound parameters.
 */
import { type KeyOrder, keyOrders } from '../../diff/merge.js';
import type { AnyEntity } from '../../entity/types.js';
import type {
  BucketSelection,
  ParentReference,
  Scope,
  TableDescription,
  TextValue,
} from '../types.js';
import { columnOf, combinedHash, type SqlType, type TypeClass, typeClass } from './column-types.js';
import { packedKeySql, widerThan } from './packed-key.js';
import { tenantParameter, textArrayParameter } from './params.js';
import { quoteIdent, quoteTable, type Statement } from './sql.js';

/** One column as a read sees it: a typed SQL expression and its hash class. */
interface ColumnSql {
  readonly name: string;
  readonly value: string;
  /** The value before a cast to the target's type: integers order alike either way. */
  readonly plain: string;
  readonly cls: TypeClass;
  /** The target type's `typname`. */
  readonly typeName: string;
  /** The target type as `format_type` prints it. */
  readonly type: string;
}

/** How to read one entity on one side. */
export interface ReadShape {
  readonly entity: AnyEntity;
  /** The FROM item, aliased. */
  readonly from: string;
  /** Conditions every read applies (the tenant). */
  readonly where: readonly string[];
  /** Parameters of `from` and `where`: `$1` is the tenant where the entity is scoped. */
  readonly params: readonly unknown[];
  readonly columns: readonly ColumnSql[];
  readonly key: readonly ColumnSql[];
  readonly orders: readonly KeyOrder[];
  /** A boolean: the row changed since the request's watermark (source reads with `changedSince`). */
  readonly changed?: string | undefined;
  /**
   * The row's `ctid`, where changed rows can be read again by it within the snapshot (a table's
   * rows; a partitioned table's partitions share ctids).
   */
  readonly place?: string | undefined;
  /** Every key column is NOT NULL in the table read: no row has a NULL in its key. */
  readonly keyNotNull?: boolean | undefined;
}

const SOURCE = 'source';
const TARGET = 't';

/** A column's type from a target description, for hashing. */
export function targetType(description: TableDescription, column: string): SqlType {
  const info = description.get(column);
  return {
    typeName: info?.typeName ?? 'text',
    category: info?.category ?? 'S',
    elementTypeName: info?.elementTypeName,
    formatted: info?.type ?? 'text',
  };
}

function shapeOf(
  entity: AnyEntity,
  description: TableDescription,
  from: string,
  where: readonly string[],
  params: readonly unknown[],
  value: (column: string) => string,
  plain: (column: string) => string = value,
): ReadShape {
  const columns = entity.columnNames.map((name: string) => ({
    name,
    value: value(name),
    plain: plain(name),
    cls: typeClass(targetType(description, name)),
    typeName: targetType(description, name).typeName,
    type: targetType(description, name).formatted,
  }));
  const key = entity.key.map(
    (name) => columns.find((c: ColumnSql) => c.name === name) as ColumnSql,
  );
  return { entity, from, where, params, columns, key, orders: keyOrders(entity, description) };
}

const PARENT = 'parent';

/** Whether a scope ties a global entity's rows to a tenant through its parents. */
const tiedToParents = (entity: AnyEntity, scope: Scope) =>
  entity.tenantColumn === undefined &&
  scope.tenantId !== undefined &&
  (scope.parents?.length ?? 0) > 0;

/** The conditions matching a reference's columns of `alias` to the key of `PARENT`. */
const matchesParent = (alias: string, reference: ParentReference) =>
  reference.parent.key
    .map(
      (key, i) => `${columnOf(PARENT, key)} = ${columnOf(alias, reference.columns[i] as string)}`,
    )
    .join(' AND ');

/**
 * Per reference to a tenant-scoped parent: the row of `alias` has a NULL in the reference, or
 * names a row of `parentRows` (the parent's rows of the tenant, as a FROM item).
 */
function withinParent(
  alias: string,
  reference: ParentReference,
  parentRows: (parent: AnyEntity) => string,
  /** Columns that hold no NULL (NOT NULL in their table): no test for one is needed. */
  notNull: ReadonlySet<string> = new Set(),
): string {
  // A bare EXISTS becomes a semi-join the planner can drive from the tenant's parent rows; an
  // OR beside it is a filter on every row of the table.
  const nulls = reference.columns
    .filter((column) => !notNull.has(column))
    .map((column) => `${columnOf(alias, column)} IS NULL`);
  const named = `EXISTS (SELECT 1 FROM ${parentRows(reference.parent)} AS ${quoteIdent(PARENT)} WHERE ${matchesParent(alias, reference)})`;
  return `(${[...nulls, named].join(' OR ')})`;
}

/** Where a COPY finds the tenant, which it cannot take as a parameter: set with `setLocal`. */
export const TENANT_SETTING = 'meter_sync.tenant';

/**
 * The tenant read back from `TENANT_SETTING`, as `type`: an expression for a shape's tenant. A
 * scalar subquery, so it is read once: `current_setting` is only stable, and a scan would call
 * it (and cast its text) for every row, some 0.1 µs a row.
 */
export function tenantFromSetting(type: string): string {
  return `(SELECT CAST(current_setting('${TENANT_SETTING}') AS ${type}))`;
}

/**
 * The target table's rows in scope. The tenant is the parameter `$1`, or with `tenant` an SQL
 * expression for the tenant of this entity or a parent (no parameter then, as COPY needs).
 */
export function targetShape(
  entity: AnyEntity,
  description: TableDescription,
  scope: Scope,
  tenant?: (scoped: AnyEntity) => string,
): ReadShape {
  const scoped = entity.tenantColumn !== undefined && scope.tenantId !== undefined;
  const tied = tiedToParents(entity, scope);
  const tenantOf = tenant ?? (() => '$1');
  const shape = shapeOf(
    entity,
    description,
    `${quoteTable(entity.table)} AS ${quoteIdent(TARGET)}`,
    scoped
      ? [`${columnOf(TARGET, entity.tenantColumn as string)} = ${tenantOf(entity)}`]
      : tied
        ? (scope.parents ?? []).map((reference) =>
            withinParent(TARGET, reference, (parent) => targetParentRows(parent, tenantOf(parent))),
          )
        : [],
    (scoped || tied) && tenant === undefined ? [tenantParameter(scope.tenantId)] : [],
    (column) => columnOf(TARGET, column),
  );
  return { ...shape, keyNotNull: entity.key.every((column) => description.get(column)?.notNull) };
}

/** A tenant-scoped entity's target rows of the tenant `tenant`, as a FROM item. */
function targetParentRows(parent: AnyEntity, tenant: string): string {
  const key = parent.key.map((column) => quoteIdent(column)).join(', ');
  return `(SELECT ${key} FROM ${quoteTable(parent.table)} WHERE ${quoteIdent(parent.tenantColumn as string)} = ${tenant})`;
}

/**
 * SQL that tells whether a global entity's target row (alias `t`) names a parent row of
 * another tenant than `tenant` (a parameter), through any of `parents`: the rows a tenant's run
 * leaves alone.
 */
export function namesOtherTenantsParent(
  parents: readonly ParentReference[],
  tenant: string,
): string {
  return `(${parents
    .map((reference) => {
      const { parent } = reference;
      const other = `${columnOf(PARENT, parent.tenantColumn as string)} IS DISTINCT FROM ${tenant}`;
      return `EXISTS (SELECT 1 FROM ${quoteTable(parent.table)} AS ${quoteIdent(PARENT)} WHERE ${matchesParent(TARGET, reference)} AND ${other})`;
    })
    .join(' OR ')})`;
}

/**
 * The source's rows in scope, with target column names, each cast to the target column's type
 * where the source's type differs and the target's type exists on the source (`castable`).
 */
export function sourceShape(
  entity: AnyEntity,
  description: TableDescription,
  scope: Scope,
  sourceTypes: ReadonlyMap<string, string>,
  castable: ReadonlySet<string>,
  options: {
    /**
     * An SQL expression for the tenant of an entity (this one, or a parent it is read through)
     * instead of the parameter `$1` (table sources only).
     */
    readonly tenantExpression?: ((entity: AnyEntity) => string) | undefined;
    /**
     * How many transactions back the watermark is from the xid `age()` counts from: the shape
     * then tells the rows changed since (table sources only).
     */
    readonly changedWithin?: string | undefined;
    /** Columns NOT NULL in the source table. */
    readonly notNull?: ReadonlySet<string> | undefined;
    /** With `changedWithin`: the table's rows can be read again by `ctid` (`ReadShape.place`). */
    readonly placed?: boolean | undefined;
    /** With `changedWithin`: the changed rows are at these ctids (a `tid[]` as text) alone. */
    readonly changedAt?: string | undefined;
  } = {},
): ReadShape {
  const { tenantExpression, changedWithin, notNull, placed, changedAt } = options;
  const tied = tiedToParents(entity, scope);
  const scoped = (entity.tenantColumn !== undefined || tied) && tenantExpression === undefined;
  const params: unknown[] = scoped ? [tenantParameter(scope.tenantId)] : [];
  const value = (column: string) => {
    const target = description.get(column)?.type;
    const plain = columnOf(SOURCE, column);
    return target !== undefined && sourceTypes.get(column) !== target && castable.has(target)
      ? `CAST(${plain} AS ${withoutLength(target)})`
      : plain;
  };
  let changed:
    | { readonly alias: string; readonly within: string; readonly place?: string | undefined }
    | undefined;
  if (changedWithin !== undefined) {
    params.push(changedWithin);
    changed = {
      alias: unusedName(entity.columnNames, 'changed'),
      within: `$${params.length}`,
      place: placed ? unusedName(entity.columnNames, 'place') : undefined,
    };
  }
  const read = shapeOf(
    entity,
    description,
    `(${sourceSelect(entity, tenantExpression?.(entity), changed)}) AS ${quoteIdent(SOURCE)}`,
    tied
      ? (scope.parents ?? []).map((reference) =>
          withinParent(
            SOURCE,
            reference,
            (parent) => `(${sourceSelect(parent, tenantExpression?.(parent))})`,
            notNull,
          ),
        )
      : [],
    params,
    value,
    (column) =>
      INTEGER_TYPES.has(sourceTypes.get(column) ?? '') ? columnOf(SOURCE, column) : value(column),
  );
  const place = changed?.place === undefined ? undefined : columnOf(SOURCE, changed.place);
  const shape = {
    ...read,
    keyNotNull: entity.key.every((column) => notNull?.has(column)),
    place,
  };
  if (!changed) return shape;
  // Where the census found the changed rows, a TID scan reads those rows alone.
  let at = '';
  if (place !== undefined && changedAt !== undefined) {
    params.push(changedAt);
    at = ` AND ${place} = ANY($${params.length}::tid[])`;
  }
  const own = columnOf(SOURCE, changed.alias);
  if (!tied) return { ...shape, changed: `(${own}${at})` };
  // A row also comes into the tenant's scope when a parent it names does (a parent moved to
  // this tenant, or inserted after the row): the row's own version is older than the watermark
  // then, its parent's is not.
  const within = changed.within;
  // Uncorrelated IN: the changed parents are read once into a hash, not looked up row by row.
  const parentChanged = (scope.parents ?? []).map((reference) => {
    const { parent } = reference;
    const alias = unusedName(parent.columnNames, 'changed');
    const rows = sourceSelect(parent, tenantExpression?.(parent), { alias, within });
    const columns = reference.columns.map((column) => columnOf(SOURCE, column)).join(', ');
    const keys = parent.key.map((column) => columnOf(PARENT, column)).join(', ');
    return `(${columns}) IN (SELECT ${keys} FROM (${rows}) AS ${quoteIdent(PARENT)} WHERE ${columnOf(PARENT, alias)})`;
  });
  return { ...shape, changed: `((${[own, ...parentChanged].join(' OR ')})${at})` };
}

/** `base`, or `base` with underscores before it, whichever no column of the entity is named. */
function unusedName(columns: readonly string[], base: string): string {
  let name = base;
  while (columns.includes(name)) name = `_${name}`;
  return name;
}

const INTEGER_TYPES = new Set(['smallint', 'integer', 'bigint']);

/**
 * A type without the length of a character or bit string: an explicit cast to `varchar(5)`
 * would cut a longer value silently, where writing it refuses it (and the length check names the
 * row). `character` alone means `character(1)`: bpchar. Numeric precision and time precision
 * stay: the target rounds to them on every write, so values compare as they will be stored.
 */
export function withoutLength(type: string): string {
  return type
    .replace(/^(character varying|character|bit varying|bit)\(\d+\)/, '$1')
    .replace(/^character(?! varying)/, 'bpchar')
    .replace(/^bit(?! varying)/, 'bit varying');
}

/**
 * The entity's SELECT on the source, target column names out; `$1` is the tenant (`null`: every
 * tenant's rows, table sources only). A `source.query` is wrapped, so only its named columns
 * come out.
 */
export function sourceSelect(
  entity: AnyEntity,
  tenant: string | null = '$1',
  /**
   * Adds a boolean column `alias`: whether the row version was written `within` xids of now;
   * and the row's ctid as `place`, if given.
   */
  changed?: {
    readonly alias: string;
    readonly within: string;
    readonly place?: string | undefined;
  },
): string {
  const source = entity.source;
  if (source.kind === 'query') {
    if (changed) throw new Error(`${entity.name}: rows of a query carry no xmin`);
    const columns = entity.columnNames.map((c: string) => quoteIdent(c)).join(', ');
    return `SELECT ${columns} FROM (${source.query}) AS ${quoteIdent('query')}`;
  }
  const remote = (column: string) => source.columns[column] ?? column;
  const select = entity.columnNames
    .map((column: string) => `${quoteIdent(remote(column))} AS ${quoteIdent(column)}`)
    .concat(
      // age() of a row version: how many xids back from now it was written (int4, as oid unsigned).
      changed ? [`(age(xmin)::oid <= ${changed.within}::oid) AS ${quoteIdent(changed.alias)}`] : [],
      changed?.place === undefined ? [] : [`ctid AS ${quoteIdent(changed.place)}`],
    )
    .join(', ');
  const where =
    entity.tenantColumn === undefined || tenant === null
      ? ''
      : ` WHERE ${quoteIdent(remote(entity.tenantColumn))} = ${tenant}`;
  return `SELECT ${select} FROM ${quoteTable(source.table)}${where}`;
}

/** Appends parameters after a shape's own. */
class Parameters {
  readonly values: unknown[];
  constructor(initial: readonly unknown[]) {
    this.values = [...initial];
  }
  add(value: unknown): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }
}

const keyHash = (shape: ReadShape) => combinedHash(shape.key, 0, shape.keyNotNull);
const rowHash = (shape: ReadShape) => combinedHash(shape.columns, 100);
/** The row has a complete key: `TRUE` (which the planner drops) where no key column holds NULL. */
const notNullKey = (shape: ReadShape) =>
  shape.keyNotNull ? 'TRUE' : shape.key.map((c) => `${c.value} IS NOT NULL`).join(' AND ');
const asText = (value: string) => `(${value})::text`;
/** Outputs named c0, c1, …: drivers that return rows as objects keep every one, in order. */
const aliased = (outputs: readonly string[]) =>
  outputs.map((output, i) => `${output} AS ${quoteIdent(`c${i}`)}`).join(', ');

/**
 * A key column's text as the target's unique index tells keys apart: `citext` without case,
 * numeric without trailing zeros, a float's -0 as 0. Two keys are one key exactly when these
 * agree, so a change of case or scale updates the row instead of replacing it.
 */
function matchText(column: ColumnSql): string {
  const text = asText(column.value);
  switch (column.typeName) {
    case 'citext':
      return `lower(${text})`;
    case 'numeric':
      return `(CASE WHEN ${text} LIKE '%.%' THEN rtrim(rtrim(${text}, '0'), '.') ELSE ${text} END)`;
    case 'float4':
    case 'float8':
      return `((${column.value}) + CAST(0 AS ${column.typeName}))::text`;
    default:
      return text;
  }
}

function orderBy(shape: ReadShape): string {
  return shape.key
    .map((column, i) =>
      // An integer column orders the same before a cast to a wider integer, and can use its index.
      shape.orders[i] === 'integer' ? column.plain : `${matchText(column)} COLLATE "C"`,
    )
    .join(', ');
}

function bucketFilter(shape: ReadShape, params: Parameters, buckets: BucketSelection | undefined) {
  if (buckets?.only === undefined) return [];
  const mask = params.add(String(buckets.count - 1));
  // IN (SELECT unnest(…)) becomes a hashed semi-join; = ANY(array) would scan the list per row.
  return [
    `((${keyHash(shape)}) & ${mask}::int8) IN (SELECT unnest(${params.add(buckets.only.map(String))}::int8[]))`,
  ];
}

/**
 * The rows in scope with a complete key, in key order (or a `sample` of them): key texts, then
 * (with `hash: 'sql'`) the row hash, then (with `values`) every column's text.
 */
export function rowsStatement(
  shape: ReadShape,
  options: {
    hash: 'sql' | 'text';
    values: boolean;
    buckets?: BucketSelection | undefined;
    /** Every row's hash is 0: keys alone are compared. */
    keysOnly?: boolean | undefined;
    /**
     * With `values`: where every key column's value reads as its key does, the key is not read
     * twice; `keyAt` then tells where in the values each key column is.
     */
    keyFromValues?: boolean | undefined;
    /** At most this many rows, in no order: the scan stops once it has found them. */
    sample?: number | undefined;
  },
): Statement & { readonly keyAt?: readonly number[] } {
  const params = new Parameters(shape.params);
  const keyAt = shape.key.map((key) => shape.columns.findIndex((c) => c.name === key.name));
  const keyInValues =
    options.values &&
    options.keyFromValues === true &&
    keyAt.every(
      (at, i) =>
        at >= 0 &&
        asText((shape.columns[at] as ColumnSql).value) === matchText(shape.key[i] as ColumnSql),
    );
  const outputs = [
    ...(keyInValues ? [] : shape.key.map(matchText)),
    ...(options.hash === 'sql' ? [options.keysOnly ? `'0'` : `(${rowHash(shape)})::text`] : []),
    ...(options.values ? shape.columns.map((c) => asText(c.value)) : []),
  ];
  const where = [
    ...shape.where,
    notNullKey(shape),
    ...(shape.changed ? [shape.changed] : []),
    ...bucketFilter(shape, params, options.buckets),
  ];
  // Changed rows: filtered first, then sorted. The planner cannot estimate the share of changed
  // rows and, guessing a third, walks the key index over the whole table to save a sort.
  const from = shape.changed
    ? `(SELECT * FROM ${shape.from} WHERE ${where.join(' AND ')} OFFSET 0) AS ${quoteIdent(SOURCE)}`
    : `${shape.from} WHERE ${where.join(' AND ')}`;
  const order =
    options.sample === undefined
      ? `ORDER BY ${orderBy(shape)}`
      : `LIMIT ${params.add(String(options.sample))}::int8`;
  return {
    text: `SELECT ${aliased(outputs)} FROM ${from} ${order}`,
    values: params.values,
    ...(keyInValues ? { keyAt } : {}),
  };
}

/**
 * The rows in scope whose key is one of `keys` (key texts as `rowsStatement` gives them), with
 * key, hash and values like `rowsStatement`. Keys are matched by the column types' equality, on
 * the columns as stored where the type allows, so the table's key index serves the lookup.
 *
 * With `inKeysOrder`, the key index is probed once a key in the order of `keys` (distinct keys
 * in key order, as a read gives them), where the planner would probe in the order of a hash
 * table: neighbouring keys then find their index and table pages just read. For a shape whose
 * FROM is a table alone: the subquery it goes into runs once a key.
 */
export function rowsByKeyStatement(
  shape: ReadShape,
  keys: readonly (readonly string[])[],
  values = true,
  inKeysOrder = false,
): Statement {
  const params = new Parameters(shape.params);
  const aliases = shape.key.map((_, i) => quoteIdent(`k${i}`));
  const arrays = shape.key.map(
    (_, i) => `${params.add(textArrayParameter(keys.map((key) => key[i])))}::text[]`,
  );
  const left = shape.key.map((column, i) =>
    shape.orders[i] === 'integer' ? column.plain : column.value,
  );
  const right = shape.key.map(
    (column, i) => `CAST("wanted".${aliases[i]} AS ${withoutLength(column.type)})`,
  );
  const outputs = [
    ...shape.key.map(matchText),
    `(${rowHash(shape)})::text`,
    ...(values ? shape.columns.map((c) => asText(c.value)) : []),
  ];
  const wanted = `unnest(${arrays.join(', ')}) AS "wanted"(${aliases.join(', ')})`;
  if (inKeysOrder) {
    // OFFSET 0 keeps the subquery whole: a nested loop over the keys as they come.
    const probe = [...shape.where, `(${left.join(', ')}) = (${right.join(', ')})`];
    return {
      text: `SELECT ${aliased(outputs)} FROM ${wanted} CROSS JOIN LATERAL (SELECT * FROM ${shape.from} WHERE ${probe.join(' AND ')} OFFSET 0) AS ${quoteIdent(TARGET)}`,
      values: params.values,
    };
  }
  const where = [
    ...shape.where,
    `(${left.join(', ')}) IN (SELECT ${right.join(', ')} FROM ${wanted})`,
  ];
  return {
    text: `SELECT ${aliased(outputs)} FROM ${shape.from} WHERE ${where.join(' AND ')}`,
    values: params.values,
  };
}

/** The values of every row in scope with a complete key, as text, in `entity.columnNames` order. */
export function valuesStatement(shape: ReadShape): Statement {
  return {
    text: `SELECT ${shape.columns.map((c) => asText(c.value)).join(', ')} FROM ${shape.from} WHERE ${[...shape.where, notNullKey(shape)].join(' AND ')}`,
    values: [...shape.params],
  };
}

/** Up to `limit` rows in scope with a NULL in the key, every column as text. */
export function nullKeyRowsStatement(shape: ReadShape, limit: number): Statement {
  const params = new Parameters(shape.params);
  const nullKey = shape.key.map((c) => `${c.value} IS NULL`).join(' OR ');
  const where = [...shape.where, `(${nullKey})`].join(' AND ');
  return {
    text: `SELECT ${aliased(shape.columns.map((c) => asText(c.value)))} FROM ${shape.from} WHERE ${where} LIMIT ${params.add(limit)}`,
    values: params.values,
  };
}

/**
 * One fingerprint per bucket, 8 bytes each in bucket order, as hex: the bucket's row hashes
 * (each mixed first, so one column changed alike in two rows cannot cancel out) and row count
 * folded into 64 bits; 0 for an empty bucket. Rows with a NULL key are counted apart.
 */
export function fingerprintsStatement(
  shape: ReadShape,
  buckets: number,
  xorAggregate: boolean,
  keysOnly = false,
): Statement {
  const params = new Parameters(shape.params);
  const mask = `${params.add(String(buckets - 1))}::int8`;
  const kept = 'FILTER (WHERE NOT null_key)';
  const fold = xorAggregate
    ? `(bit_xor(h) ${kept} # hashint8extended(count(*) ${kept}, 7))`
    : `((mod(mod(sum(h) ${kept} + count(*) ${kept} * 11400714819323198485, 18446744073709551616) + 18446744073709551616, 18446744073709551616) - 9223372036854775808)::int8)`;
  const nullKey = shape.key.map((c) => `${c.value} IS NULL`).join(' OR ');
  const rest = keysOnly ? [] : shape.columns.filter((c) => !shape.entity.key.includes(c.name));
  const hashed = `SELECT (${keyHash(shape)}) AS key_hash, ${rest.length === 0 ? '0::int8' : `(${combinedHash(rest, 100)})`} AS rest_hash, (${nullKey}) AS null_key FROM ${shape.from}${
    shape.where.length > 0 ? ` WHERE ${shape.where.join(' AND ')}` : ''
  }`;
  return {
    text: `SELECT encode(string_agg(int8send(COALESCE(a.fingerprint, 0)), ''::bytea ORDER BY g.bucket), 'hex') AS fingerprints,
  COALESCE(sum(a.rows), 0)::text AS rows, COALESCE(sum(a.null_keys), 0)::text AS null_keys
FROM generate_series(0, ${mask}) AS g(bucket)
LEFT JOIN (
  SELECT bucket, count(*) ${kept} AS rows, count(*) FILTER (WHERE null_key) AS null_keys,
    CASE WHEN count(*) ${kept} = 0 THEN 0 ELSE ${fold} END AS fingerprint
  FROM (SELECT key_hash & ${mask} AS bucket, hashint8extended(key_hash # rest_hash, 3) AS h, null_key FROM (${hashed} OFFSET 0) AS hashed) AS x
  GROUP BY bucket
) AS a ON a.bucket = g.bucket`,
    values: params.values,
  };
}

/** How many rows in scope have a complete key. */
export function countStatement(
  shape: ReadShape,
  softDeleted?: Readonly<Record<string, TextValue>>,
): Statement {
  const params = new Parameters(shape.params);
  const where = [
    ...shape.where,
    notNullKey(shape),
    ...(softDeleted ? [`NOT (${holdsAll(shape, softDeleted, params)})`] : []),
  ];
  return {
    text: `SELECT count(*)::text AS rows FROM ${shape.from} WHERE ${where.join(' AND ')}`,
    values: params.values,
  };
}

/**
 * The row holds every one of `values` (a soft delete's, as text), each compared as the target
 * column's type, NULL matching NULL.
 */
function holdsAll(
  shape: ReadShape,
  values: Readonly<Record<string, TextValue>>,
  params: Parameters,
): string {
  return Object.entries(values)
    .map(([name, value]) => {
      const column = shape.columns.find((c) => c.name === name);
      if (!column) throw new Error(`${shape.entity.name}: no column "${name}" to soft delete by`);
      return `${column.value} IS NOT DISTINCT FROM CAST(${params.add(value)} AS ${column.type})`;
    })
    .join(' AND ');
}

/**
 * In one pass: rows in scope with a complete key, with a NULL key, (for a shape that tells them)
 * changed since the watermark, and with `softDeleted` those of them that do not hold all its
 * values. Keys are tested as stored: a cast changes no NULL.
 */
export function censusStatement(
  shape: ReadShape,
  softDeleted?: Readonly<Record<string, TextValue>>,
  placesUpTo?: { readonly rows: number; readonly share: number },
): Statement {
  const params = new Parameters(shape.params);
  const where = shape.where.length > 0 ? ` WHERE ${shape.where.join(' AND ')}` : '';
  const changed = shape.changed ?? 'false';
  const live = (complete: string) =>
    softDeleted
      ? `count(*) FILTER (WHERE ${complete}NOT (${holdsAll(shape, softDeleted, params)}))::text`
      : 'NULL::text';
  // Nothing to test per row but the change where no key column can be NULL: a third of the work.
  const complete = shape.keyNotNull
    ? undefined
    : shape.key.map((c) => `${c.plain} IS NOT NULL`).join(' AND ');
  const and = complete === undefined ? '' : `${complete} AND `;
  const rows = complete === undefined ? 'count(*)' : `count(*) FILTER (WHERE ${complete})`;
  const nullKeys =
    complete === undefined ? `'0'` : `count(*) FILTER (WHERE NOT (${complete}))::text`;
  if (shape.place === undefined || shape.changed === undefined)
    return {
      text: `SELECT ${rows}::text AS rows, ${nullKeys} AS null_keys, count(*) FILTER (WHERE ${and}${changed})::text AS changed,
  ${live(and)} AS live, NULL::text AS places FROM ${shape.from}${where}`,
      values: params.values,
    };
  // The changed rows' ctids, for their read to fetch them alone rather than scan again; they
  // are counted from the array, so the change is tested once a row. Not sent where too many
  // changed for them to be read one by one.
  const sent = placesUpTo
    ? `CASE WHEN cardinality("census".places) <= GREATEST(${params.add(placesUpTo.rows)}::float8, ${params.add(placesUpTo.share)}::float8 * "census".rows) THEN "census".places::text END`
    : '"census".places::text';
  return {
    text: `SELECT "census".rows::text AS rows, "census".null_keys, coalesce(cardinality("census".places), 0)::text AS changed,
  "census".live, ${sent} AS places
  FROM (SELECT ${rows} AS rows, ${nullKeys} AS null_keys, ${live(and)} AS live,
    array_agg(${shape.place}) FILTER (WHERE ${and}${changed}) AS places FROM ${shape.from}${where}) AS "census"`,
    values: params.values,
  };
}

/**
 * Which of `references` (from `entity` to its parents) the source enforces with a validated
 * foreign key from the same columns of the child's table to the parent's: no row with a complete
 * reference can name a missing parent then. One boolean per reference, in order.
 */
export function enforcedReferencesStatement(
  entity: AnyEntity,
  references: readonly ParentReference[],
): Statement | undefined {
  const child = entity.source;
  if (child.kind !== 'table') return undefined;
  const params = new Parameters([]);
  const checks = references.map((reference) => {
    const parent = reference.parent.source;
    if (parent.kind !== 'table') return 'false';
    // The pairs of source columns, child to parent, as a JSON object: equal whatever the order.
    const pairs = Object.fromEntries(
      reference.columns.map((column, i) => {
        const parentColumn = reference.parent.key[i] as string;
        return [child.columns[column] ?? column, parent.columns[parentColumn] ?? parentColumn];
      }),
    );
    return `EXISTS (SELECT 1 FROM pg_catalog.pg_constraint AS c
      WHERE c.contype = 'f' AND c.convalidated
        AND c.conrelid = to_regclass(${params.add(quoteTable(child.table))})
        AND c.confrelid = to_regclass(${params.add(quoteTable(parent.table))})
        AND (SELECT jsonb_object_agg(ca.attname, pa.attname)
               FROM unnest(c.conkey, c.confkey) AS k(child_column, parent_column)
               JOIN pg_catalog.pg_attribute AS ca ON ca.attrelid = c.conrelid AND ca.attnum = k.child_column
               JOIN pg_catalog.pg_attribute AS pa ON pa.attrelid = c.confrelid AND pa.attnum = k.parent_column)
            = ${params.add(JSON.stringify(pairs))}::jsonb)`;
  });
  return {
    text: `SELECT ${aliased(checks)}`,
    values: params.values,
  };
}

/**
 * The source rows of a global entity read through its tenant's parents (`sourceShape` with
 * `scope.parents`) that only a parent missing on the source keeps out of the scope: every
 * reference has a NULL column, names a parent row of the tenant or names no parent row at all,
 * and one names none. Their count, which parents are missing, and up to `limit` keys, in one
 * statement. A parent read through a `source.query` shows one tenant's rows, so a reference to
 * it is never taken for missing; nor is one in `enforced`. Ignores `shape.where`: it reads
 * around the scope.
 */
export function danglingRowsStatement(
  shape: ReadShape,
  parents: readonly ParentReference[],
  limit: number,
  /** References the source's foreign keys enforce: they never name a missing parent. */
  enforced: ReadonlySet<ParentReference> = new Set(),
): Statement {
  const params = new Parameters(shape.params);
  const within = parents.map((reference) =>
    withinParent(SOURCE, reference, (parent) => `(${sourceSelect(parent)})`),
  );
  const missing = parents.map((reference) => {
    if (reference.parent.source.kind !== 'table' || enforced.has(reference)) return 'false';
    const complete = reference.columns.map((c) => `${columnOf(SOURCE, c)} IS NOT NULL`);
    const none = `NOT EXISTS (SELECT 1 FROM (${sourceSelect(reference.parent, null)}) AS ${quoteIdent(PARENT)} WHERE ${matchesParent(SOURCE, reference)})`;
    return `(${[...complete, none].join(' AND ')})`;
  });
  const conditions = [
    notNullKey(shape),
    ...within.map((condition, i) => `(${condition} OR ${missing[i]})`),
    `(${missing.join(' OR ')})`,
  ];
  const inner = [
    ...shape.key.map((column, i) => `${matchText(column)} AS ${quoteIdent(`k${i}`)}`),
    ...missing.map((condition, i) => `${condition} AS ${quoteIdent(`m${i}`)}`),
  ];
  const outputs = [
    'count(*) OVER ()',
    ...missing.map((_, i) => `bool_or(${quoteIdent(`m${i}`)}) OVER ()`),
    ...shape.key.map((_, i) => `${quoteIdent('dangling')}.${quoteIdent(`k${i}`)}`),
  ];
  return {
    text: `SELECT ${aliased(outputs)} FROM (SELECT ${inner.join(', ')} FROM ${shape.from} WHERE ${conditions.join(' AND ')}) AS ${quoteIdent('dangling')} LIMIT ${params.add(limit)}`,
    values: params.values,
  };
}

/**
 * Every key in scope (rows with a complete key) as one byte string, 8 bytes a row: its hash, or
 * with `packed` the key itself (`packedKeySql`, `bits` a key column; `sourceTypes` where the
 * shape reads the source, whose types gave the bits, so its values fit them). With `places` also
 * the rows' `ctid`s as another, 6 bytes a row in the same order (two aggregates of one scan see
 * its rows in one order), so that the keys behind hashes can be read again. One row, for
 * `COPY … (FORMAT binary)`, which takes no parameters: the shape must carry none (the tenant read
 * from a setting instead).
 */
export function keySetStatement(
  shape: ReadShape,
  places: boolean,
  packed?: { readonly bits: readonly number[]; readonly sourceTypes: boolean },
): Statement {
  if (shape.params.length > 0)
    throw new Error('a key set is read by COPY, which takes no parameters');
  const key = packed
    ? packedKeySql(
        shape.key.map((column, i) =>
          packed.sourceTypes
            ? { value: column.plain, fits: true }
            : { value: column.value, fits: !widerThan(column.typeName, packed.bits[i] as number) },
        ),
        packed.bits,
      )
    : keyHash(shape);
  const outputs = [
    `string_agg(int8send(${key}), ''::bytea)`,
    ...(places ? [`string_agg(tidsend(${quoteIdent(TARGET)}.ctid), ''::bytea)`] : []),
  ];
  return {
    text: `SELECT ${outputs.join(', ')} FROM ${shape.from} WHERE ${[...shape.where, notNullKey(shape)].join(' AND ')}`,
    values: [],
  };
}

/**
 * The target rows in scope at these `ctid`s, with their key (as `rowsStatement` gives keys), key
 * hash and `ctid` as text: the caller keeps those whose hash is the one it found there.
 */
export function keysAtStatement(shape: ReadShape, places: readonly string[]): Statement {
  const params = new Parameters(shape.params);
  const ctid = `${quoteIdent(TARGET)}.ctid`;
  const outputs = [...shape.key.map(matchText), `(${keyHash(shape)})::text`, `${ctid}::text`];
  const where = [...shape.where, notNullKey(shape), `${ctid} = ANY(${params.add(places)}::tid[])`];
  return {
    text: `SELECT ${aliased(outputs)} FROM ${shape.from} WHERE ${where.join(' AND ')}`,
    values: params.values,
  };
}
