/**
 * A `SyncDatabase` that is not PostgreSQL: tables of text rows in memory. It runs the same
 * contract suite and the same `performSync` as the PostgreSQL implementation, which is what
 * keeps the engine honest about depending on the interface alone.
 */
import { parentTenants, standingOf } from '../../src/db/parent-scope.js';
import { textHash } from '../../src/db/text-hash.js';
import type {
  ColumnInfo,
  Features,
  ReferencingRow,
  Scope,
  SyncDatabase,
  TableDescription,
  TextKey,
  TextRow,
  TextValue,
  Watermark,
} from '../../src/db/types.js';
import { compareKeys, keyOrders } from '../../src/diff/merge.js';
import { rowParser } from '../../src/diff/parse-row.js';
import type { AnyEntity, RowOf } from '../../src/entity/types.js';
import { DataError } from '../../src/errors.js';

type StoredRow = Record<string, TextValue>;

export interface MemorySyncDatabase extends SyncDatabase {
  /** Every row of a table, as stored. */
  rows(table: string): StoredRow[];
  /** Stores a row as it is, without any check (as a hand-made change on a database would). */
  insertRaw(table: string, row: StoredRow): void;
}

const tableName = (entity: AnyEntity) =>
  entity.table.schema === undefined
    ? entity.table.name
    : `${entity.table.schema}.${entity.table.name}`;

/** Tables by name, each with its columns' types (`type` as format_type prints it). */
export function createMemorySyncDatabase(
  tables: Record<string, Record<string, Pick<ColumnInfo, 'type' | 'kind'> & Partial<ColumnInfo>>>,
): MemorySyncDatabase {
  let data = new Map<string, StoredRow[]>(Object.keys(tables).map((name) => [name, []]));
  let inTransaction = false;
  const watermarks = new Map<string, Watermark[]>();

  const describe = (entity: AnyEntity): TableDescription | undefined => {
    const columns = tables[tableName(entity)];
    if (!columns) return undefined;
    return new Map(Object.entries(columns).map(([name, info]) => [name, { name, ...info }]));
  };
  const table = (entity: AnyEntity) => {
    const rows = data.get(tableName(entity));
    if (!rows) throw new Error(`no table ${tableName(entity)}`);
    return rows;
  };
  const ofTenant = (entity: AnyEntity, scope: Scope) => (row: StoredRow) =>
    entity.tenantColumn === undefined ||
    scope.tenantId === undefined ||
    row[entity.tenantColumn] === String(scope.tenantId);
  /** Where a global entity's row stands by the parent rows it names, as stored now. */
  const standing = (entity: AnyEntity, scope: Scope) => {
    if (entity.tenantColumn !== undefined || scope.tenantId === undefined || !scope.parents)
      return () => 'within' as const;
    const parentTenant = parentTenants((reference) =>
      table(reference.parent).map((row) => ({
        key: keyOf(reference.parent, row),
        tenant: row[reference.parent.tenantColumn as string] ?? null,
      })),
    );
    return (row: StoredRow) => standingOf(scope, (column) => row[column] ?? null, parentTenant);
  };
  /** The rows reads cover. */
  const inScope = (entity: AnyEntity, scope: Scope) => {
    const of = standing(entity, scope);
    return (row: StoredRow) => ofTenant(entity, scope)(row) && of(row) === 'within';
  };
  /** The rows writes may change or delete. */
  const mayTouch = (entity: AnyEntity, scope: Scope) => {
    const of = standing(entity, scope);
    return (row: StoredRow) => ofTenant(entity, scope)(row) && of(row) !== 'other-tenant';
  };
  const keyOf = (entity: AnyEntity, row: StoredRow): TextKey =>
    entity.key.map((column) => row[column] as string);
  const sameKey = (a: TextKey, b: TextKey) => a.every((value, i) => value === b[i]);
  const find = (entity: AnyEntity, key: TextKey) =>
    table(entity).find((row) => sameKey(keyOf(entity, row), key));
  const textRow = (entity: AnyEntity, row: StoredRow): TextRow =>
    entity.columnNames.map((column: string) => row[column] ?? null);

  const db: MemorySyncDatabase = {
    rows: (name) => [...(data.get(name) ?? [])],
    insertRaw: (name, row) => {
      data.get(name)?.push({ ...row });
    },
    async features(): Promise<Features> {
      return { sqlHash: false, rollback: true };
    },
    async describe(entity) {
      return describe(entity);
    },
    async query<E extends AnyEntity>(entity: E, scope: Scope = {}) {
      const parser = rowParser(entity, describe(entity) ?? new Map(), undefined, 'stored');
      return table(entity)
        .filter(inScope(entity, scope))
        .map((row) => {
          const parsed = parser.parse(textRow(entity, row));
          if (parsed instanceof DataError) throw parsed;
          return parsed.row as RowOf<E>;
        });
    },
    async isEmpty(entity) {
      return table(entity).length === 0;
    },
    async estimateRows(entity, scope) {
      return table(entity).filter(inScope(entity, scope)).length;
    },
    async fingerprints() {
      throw new Error('no fingerprints: this database compares text');
    },
    async *keyHashes(entity, request) {
      const orders = keyOrders(entity, request.columns);
      yield table(entity)
        .filter(inScope(entity, request.scope))
        .map((row) => ({ key: keyOf(entity, row), hash: textHash(textRow(entity, row)) }))
        .sort((a, b) => compareKeys(a.key, b.key, orders));
    },
    async keyHashesOf(entity, request, keys) {
      return keys.flatMap((key) => {
        const row = find(entity, key);
        if (!row || !inScope(entity, request.scope)(row)) return [];
        return [{ key, hash: request.keysOnly ? '0' : textHash(textRow(entity, row)) }];
      });
    },
    async count(entity, request) {
      const { softDeleted } = request;
      return table(entity)
        .filter(inScope(entity, request.scope))
        .filter(
          (row) =>
            !(
              softDeleted &&
              Object.entries(softDeleted).every(
                ([column, value]) => (row[column] ?? null) === value,
              )
            ),
        ).length;
    },
    async tableIdentity(entity) {
      return tableName(entity);
    },
    async watermarks(entity, scope) {
      return [...(watermarks.get(`${entity.name}\u0000${scope}`) ?? [])];
    },
    async saveWatermark(entity, scope, watermark) {
      const key = `${entity.name}\u0000${scope}`;
      if (watermark) watermarks.set(key, [watermark]);
      else watermarks.delete(key);
    },
    async existingKeys(entity, keys) {
      return keys.filter((key) => find(entity, key) !== undefined);
    },
    async keysOutsideScope(entity, keys, scope) {
      const touchable = mayTouch(entity, scope);
      return keys.filter((key) => {
        const row = find(entity, key);
        return row !== undefined && !touchable(row);
      });
    },
    async referencing(child, columns, parentKeys, scope): Promise<ReferencingRow[]> {
      const touchable = mayTouch(child, scope);
      return table(child).flatMap((row) => {
        const parentKey = columns.map((column) => row[column] as string);
        if (!parentKeys.some((key) => sameKey(key, parentKey))) return [];
        return [{ key: keyOf(child, row), parentKey, inScope: touchable(row) }];
      });
    },
    async write(entity, rows, scope) {
      const inserted: TextKey[] = [];
      const updated: TextKey[] = [];
      for (const values of rows) {
        const row = Object.fromEntries(
          entity.columnNames.map((column: string, i: number) => [column, values[i] ?? null]),
        );
        const key = keyOf(entity, row);
        const stored = find(entity, key);
        if (!stored) {
          table(entity).push(row);
          inserted.push(key);
        } else if (
          mayTouch(entity, scope)(stored) &&
          textHash(textRow(entity, stored)) !== textHash(values)
        ) {
          Object.assign(stored, row);
          updated.push(key);
        }
      }
      return { inserted, updated };
    },
    async deleteKeys(entity, keys, scope) {
      const rows = table(entity);
      const touchable = mayTouch(entity, scope);
      const keep = rows.filter(
        (row) => !(touchable(row) && keys.some((key) => sameKey(key, keyOf(entity, row)))),
      );
      const deleted = rows.length - keep.length;
      data.set(tableName(entity), keep);
      return deleted;
    },
    async setColumns(entity, keys, set, scope) {
      let changed = 0;
      for (const key of keys) {
        const row = find(entity, key);
        if (!row || !mayTouch(entity, scope)(row)) continue;
        if (Object.entries(set).every(([column, value]) => row[column] === value)) continue;
        Object.assign(row, set);
        changed++;
      }
      return changed;
    },
    async transaction(work) {
      if (inTransaction) return work(db);
      const before = new Map(
        [...data].map(([name, rows]) => [name, rows.map((row) => ({ ...row }))]),
      );
      const watermarksBefore = new Map(watermarks);
      inTransaction = true;
      try {
        return await work(db);
      } catch (error) {
        data = before;
        watermarks.clear();
        for (const [key, value] of watermarksBefore) watermarks.set(key, value);
        throw error;
      } finally {
        inTransaction = false;
      }
    },
    session: (work) => work(db),
    lock: async () => true,
    unlock: async () => undefined,
  };
  return db;
}
