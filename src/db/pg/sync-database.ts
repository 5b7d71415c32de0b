import { parseRow } from '../../diff/rows.js';
import type { AnyEntity, KeyOf, RowOf } from '../../entity/types.js';
import { DatabaseError, MeterSyncError, sqlState } from '../../errors.js';
import type { ColumnInfo, Scope, StoredRow, SyncDatabase, TableDescription } from '../types.js';
import { type Capabilities, detectCapabilities } from './capabilities.js';
import { databaseError } from './errors.js';
import { toParameter } from './params.js';
import type { PgClient, PgPool } from './pool.js';
import {
  BEGIN,
  COMMIT,
  deleteStatements,
  describeFromCatalog,
  describeFromInformationSchema,
  keysOutsideTenantStatements,
  quoteTable,
  ROLLBACK,
  type Statement,
  selectStatement,
  type TenantFilter,
  updateStatements,
  upsertStatements,
} from './sql.js';
import { typeParsersFor } from './type-parsers.js';

/** A `SyncDatabase` on PostgreSQL that also tells what engine it runs on. */
export interface PgSyncDatabase extends SyncDatabase {
  /** What the engine can do (detected on first use). */
  capabilities(): Promise<Capabilities>;
  transaction<T>(work: (db: PgSyncDatabase) => Promise<T>): Promise<T>;
}

/**
 * Creates a `SyncDatabase` over any pg-compatible pool: `pg.Pool`, pg-mem's
 * `adapters.createPg()` pool, or an embedded Postgres adapter.
 *
 * On pg-mem, ROLLBACK does not undo writes (an emulator limit): a transaction that fails
 * part-way keeps what it wrote before the failure. On PostgreSQL it never does.
 *
 * @example
 * ```ts
 * const db = createPgSyncDatabase(new pg.Pool({ connectionString }));
 * const registers = await db.query(builtIns.register, { tenantId: 42n });
 * ```
 */
export function createPgSyncDatabase(pool: PgPool): PgSyncDatabase {
  let detected: Promise<Capabilities> | undefined;
  const capabilities = () => {
    detected ??= withClient(pool, detectCapabilities).catch((error: unknown) => {
      detected = undefined;
      throw databaseError(error, undefined, 'connecting to the sync database');
    });
    return detected;
  };
  const transaction = async <T>(work: (db: PgSyncDatabase) => Promise<T>): Promise<T> => {
    await capabilities();
    return withClient(pool, async (client) => {
      await client.query({ text: BEGIN });
      const inner: PgSyncDatabase = makeDatabase(
        capabilities,
        (w) => w(client),
        (w) => w(inner),
        new Map(),
      );
      let result: T;
      try {
        result = await work(inner);
      } catch (error) {
        let connectionError: unknown;
        await client.query({ text: ROLLBACK }).catch((rollbackError: unknown) => {
          connectionError = rollbackError;
        });
        throw new TransactionAborted(error, connectionError);
      }
      await client.query({ text: COMMIT });
      return result;
    });
  };
  return makeDatabase(capabilities, (work) => withClient(pool, work), transaction, undefined);
}

/** A transaction's failure, with the ROLLBACK's own failure if the connection was lost. */
class TransactionAborted {
  constructor(
    readonly error: unknown,
    readonly connectionError: unknown,
  ) {}
}

/**
 * Runs `work` on a pooled connection. A connection that failed at the connection level is
 * destroyed rather than returned to the pool, where the next user would inherit it.
 */
async function withClient<T>(pool: PgPool, work: (client: PgClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    const result = await work(client);
    client.release();
    return result;
  } catch (error) {
    client.release(connectionFailure(error));
    throw error instanceof TransactionAborted ? error.error : error;
  }
}

function connectionFailure(error: unknown): Error | undefined {
  if (error instanceof TransactionAborted) {
    return error.connectionError === undefined ? undefined : asError(error.connectionError);
  }
  // A server-reported error carries a SQLSTATE; anything else from the driver is the connection.
  const driverError =
    error instanceof DatabaseError
      ? error.cause
      : error instanceof MeterSyncError
        ? undefined
        : error;
  return driverError !== undefined && sqlState(driverError) === undefined
    ? asError(driverError)
    : undefined;
}

const asError = (value: unknown) => (value instanceof Error ? value : new Error(String(value)));

type Run = <T>(work: (client: PgClient) => Promise<T>) => Promise<T>;

function makeDatabase(
  capabilities: () => Promise<Capabilities>,
  run: Run,
  transaction: <T>(work: (db: PgSyncDatabase) => Promise<T>) => Promise<T>,
  /** Table descriptions, cached for the life of a transaction; not cached outside one. */
  descriptions: Map<string, Promise<TableDescription | undefined>> | undefined,
): PgSyncDatabase {
  const execute = async (client: PgClient, statement: Statement) =>
    client.query({ ...statement, ...typeParsersFor(await capabilities()) });

  /** Runs statements in order, wrapping a failure with the entity and the action. */
  const executeAll = (entity: AnyEntity, action: string, statements: readonly Statement[]) =>
    run(async (client) => {
      const rows: StoredRow[] = [];
      let count = 0;
      for (const statement of statements) {
        try {
          const result = await execute(client, statement);
          count += result.rowCount ?? 0;
          rows.push(...(result.rows as StoredRow[]));
        } catch (error) {
          throw databaseError(error, entity.name, action);
        }
      }
      return { count, rows };
    });

  const tenantFilter = (entity: AnyEntity, scope: Scope | undefined): TenantFilter | undefined =>
    entity.tenantColumn !== undefined && scope?.tenantId !== undefined
      ? { column: entity.tenantColumn, value: toParameter(scope.tenantId, 'scalar') }
      : undefined;

  const keyValues = (entity: AnyEntity, keys: readonly Record<string, unknown>[]) =>
    keys.map((key) => entity.key.map((column) => toParameter(key[column], 'scalar')));

  const describeTable = async (entity: AnyEntity): Promise<TableDescription | undefined> => {
    const caps = await capabilities();
    const statement = caps.catalog
      ? describeFromCatalog(entity.table)
      : describeFromInformationSchema(entity.table);
    const { rows } = await executeAll(entity, `describing table ${quoteTable(entity.table)}`, [
      statement,
    ]);
    if (rows.length === 0) return undefined;
    return new Map(
      rows.map((row): [string, ColumnInfo] => {
        const name = String(row.name);
        return [name, { name, type: String(row.type), kind: columnKind(row) }];
      }),
    );
  };

  const db: PgSyncDatabase = {
    capabilities,
    transaction,

    async scan(entity, options = {}) {
      const columns = options.columns ?? entity.columnNames;
      const statement = selectStatement(
        entity.table,
        columns.map((name) => ({ name })),
        tenantFilter(entity, options.scope),
      );
      return (await executeAll(entity, `reading table ${quoteTable(entity.table)}`, [statement]))
        .rows;
    },

    async query<E extends AnyEntity>(entity: E, scope?: Scope): Promise<RowOf<E>[]> {
      const rows = await db.scan(entity, { scope: scope ?? {} });
      return rows.map((row) => parseRow(entity, row, 'stored'));
    },

    describe(entity) {
      const cacheKey = quoteTable(entity.table);
      const cached = descriptions?.get(cacheKey);
      if (cached) return cached;
      const described = describeTable(entity);
      descriptions?.set(cacheKey, described);
      return described;
    },

    async upsert(entity, rows, scope) {
      if (rows.length === 0) return 0;
      const kinds = await columnKinds(db, entity);
      const columns = entity.columnNames;
      const values = rows.map((row) =>
        columns.map((column: string) => toParameter(row[column], kinds.get(column))),
      );
      const statements = upsertStatements(
        entity.table,
        columns,
        entity.key,
        values,
        tenantFilter(entity, scope),
      );
      return (await executeAll(entity, `writing ${rows.length} rows`, statements)).count;
    },

    async deleteByKey(entity, keys, scope) {
      if (keys.length === 0) return 0;
      const statements = deleteStatements(
        entity.table,
        entity.key,
        keyValues(entity, keys),
        tenantFilter(entity, scope),
      );
      return (await executeAll(entity, `deleting ${keys.length} rows`, statements)).count;
    },

    async updateByKey(entity, keys, set, scope) {
      if (keys.length === 0) return 0;
      const kinds = await columnKinds(db, entity);
      const assignments = Object.entries(set).map(
        ([column, value]) => [column, toParameter(value, kinds.get(column))] as const,
      );
      const statements = updateStatements(
        entity.table,
        assignments,
        entity.key,
        keyValues(entity, keys),
        tenantFilter(entity, scope),
      );
      return (await executeAll(entity, `updating ${keys.length} rows`, statements)).count;
    },

    async keysOutsideScope<E extends AnyEntity>(
      entity: E,
      keys: readonly KeyOf<E>[],
      scope: Scope,
    ) {
      const tenant = tenantFilter(entity, scope);
      if (keys.length === 0 || !tenant) return [];
      const statements = keysOutsideTenantStatements(
        entity.table,
        entity.key,
        keyValues(entity, keys),
        tenant,
      );
      return (await executeAll(entity, 'checking keys held by other tenants', statements))
        .rows as KeyOf<E>[];
    },
  };
  return db;
}

function columnKind(row: StoredRow): ColumnInfo['kind'] {
  const type = String(row.type).toLowerCase();
  const typeName = String(row.type_name ?? type).toLowerCase();
  if (typeName === 'json' || typeName === 'jsonb') return 'json';
  if (row.category === 'A' || type === 'array' || type.endsWith('[]')) return 'array';
  return 'scalar';
}

async function columnKinds(
  db: SyncDatabase,
  entity: AnyEntity,
): Promise<ReadonlyMap<string, ColumnInfo['kind']>> {
  const description = await db.describe(entity);
  return new Map([...(description?.values() ?? [])].map((column) => [column.name, column.kind]));
}
