import { parseRow } from '../../diff/rows.js';
import type { AnyEntity, KeyOf, RowOf } from '../../entity/types.js';
import { DatabaseError, MeterSyncError, sqlState } from '../../errors.js';
import type {
  ColumnInfo,
  Scope,
  StoredRow,
  SyncDatabase,
  TableDescription,
  TransactionOptions,
} from '../types.js';
import { type Capabilities, detectCapabilities } from './capabilities.js';
import { databaseError } from './errors.js';
import { toParameter } from './params.js';
import { onConnectionLost, type PgClient, type PgPool } from './pool.js';
import {
  BEGIN,
  COMMIT,
  deleteByKeyArrays,
  deleteStatements,
  describeFromCatalog,
  describeFromInformationSchema,
  keysOutsideTenantByArrays,
  keysOutsideTenantStatements,
  quoteTable,
  ROLLBACK,
  RUN_LOCK,
  type Statement,
  selectStatement,
  setLocal,
  type TenantFilter,
  type TypedKey,
  updateByKeyArrays,
  updateStatements,
  upsertStatements,
} from './sql.js';
import { typeParsersFor } from './type-parsers.js';

/** A `SyncDatabase` on a pg-compatible pool, with what only PostgreSQL sessions can do. */
export interface PgSyncDatabase extends SyncDatabase {
  /** What the engine can do (detected on first use). */
  capabilities(): Promise<Capabilities>;
  transaction<T>(
    work: (db: PgSyncDatabase) => Promise<T>,
    options?: TransactionOptions,
  ): Promise<T>;
  /**
   * Runs `work` on one dedicated connection: every operation and transaction inside uses it.
   * A sync runs in one session, so it needs a single target connection.
   */
  session<T>(work: (db: PgSyncDatabase) => Promise<T>): Promise<T>;
  /**
   * Inside a session: takes the sync lock, a session-level advisory lock on the target
   * (`pg_advisory_lock(1836284270, 0)`), so two syncs into one database never overlap. With
   * `wait`, blocks until it is free; otherwise returns false when another session holds it.
   * Returns true without locking on engines without advisory locks (pg-mem).
   */
  lock(wait: boolean): Promise<boolean>;
  /** Releases the sync lock taken by `lock`. */
  unlock(): Promise<void>;
  /** The dedicated connection inside a session or transaction; `undefined` outside one. */
  connection(): PgClient | undefined;
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
    detected ??= detectCapabilities(pool).catch((error: unknown) => {
      detected = undefined;
      throw databaseError(error, undefined, 'connecting to the sync database');
    });
    return detected;
  };
  return makeDatabase({
    pool,
    capabilities,
    client: undefined,
    session: undefined,
    inTransaction: false,
    descriptions: undefined,
  });
}

/** Where a database handle runs its statements. */
interface Connection {
  readonly pool: PgPool;
  readonly capabilities: () => Promise<Capabilities>;
  /** The dedicated connection of a session or transaction; none: a pooled one per operation. */
  readonly client: PgClient | undefined;
  /** Set inside a session: records a connection-level failure so the session destroys it. */
  readonly session: { broken: Error | undefined } | undefined;
  readonly inTransaction: boolean;
  /** Table descriptions, cached for the life of a transaction. */
  readonly descriptions: Map<string, Promise<TableDescription | undefined>> | undefined;
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
  let lost: Error | undefined;
  const stopListening = onConnectionLost(client, (error) => {
    lost ??= error;
  });
  try {
    const result = await work(client);
    stopListening();
    client.release(lost);
    return result;
  } catch (error) {
    stopListening();
    client.release(lost ?? connectionFailure(error));
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

function makeDatabase(connection: Connection): PgSyncDatabase {
  const { pool, capabilities, descriptions } = connection;
  const run = <T>(work: (client: PgClient) => Promise<T>): Promise<T> =>
    connection.client ? work(connection.client) : withClient(pool, work);

  const execute = async (client: PgClient, statement: Statement) =>
    client.query({ ...statement, ...typeParsersFor(await capabilities()) });

  /** Runs statements in order, wrapping a failure with the entity and the action. */
  const executeAll = (
    entity: AnyEntity | undefined,
    action: string,
    statements: readonly Statement[],
  ) =>
    run(async (client) => {
      const rows: StoredRow[] = [];
      let count = 0;
      for (const statement of statements) {
        try {
          const result = await execute(client, statement);
          count += result.rowCount ?? 0;
          rows.push(...(result.rows as StoredRow[]));
        } catch (error) {
          if (connection.session && sqlState(error) === undefined)
            connection.session.broken ??= asError(error);
          throw databaseError(error, entity?.name, action);
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

  /** On PostgreSQL, the key's column types, so keys can travel as one array per column. */
  const typedKey = async (entity: AnyEntity): Promise<TypedKey | undefined> => {
    if ((await capabilities()).engine !== 'postgresql') return undefined;
    const description = await db.describe(entity);
    const types = entity.key.map((column) => description?.get(column)?.type);
    return types.every((type): type is string => type !== undefined)
      ? { columns: entity.key, types }
      : undefined;
  };

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
        const info: ColumnInfo = {
          name,
          type: String(row.type),
          kind: columnKind(row),
          typeName: optionalString(row.type_name),
          category: optionalString(row.category),
          elementTypeName: optionalString(row.element_type_name),
        };
        return [name, info];
      }),
    );
  };

  const db: PgSyncDatabase = {
    capabilities,
    connection: () => connection.client,

    async transaction<T>(
      work: (db: PgSyncDatabase) => Promise<T>,
      options: TransactionOptions = {},
    ) {
      if (connection.inTransaction) return work(db);
      const caps = await capabilities();
      return run(async (client) => {
        await client.query({ text: BEGIN });
        const inner = makeDatabase({
          ...connection,
          client,
          inTransaction: true,
          descriptions: new Map(),
        });
        let result: T;
        try {
          if (caps.engine === 'postgresql') {
            for (const statement of timeoutSettings(options)) await client.query(statement);
          }
          result = await work(inner);
        } catch (error) {
          let connectionError: unknown;
          await client.query({ text: ROLLBACK }).catch((rollbackError: unknown) => {
            connectionError = rollbackError;
          });
          if (!connection.session) throw new TransactionAborted(error, connectionError);
          if (connectionError !== undefined) connection.session.broken ??= asError(connectionError);
          throw error;
        }
        await client.query({ text: COMMIT });
        return result;
      });
    },

    async session<T>(work: (db: PgSyncDatabase) => Promise<T>) {
      if (connection.client) return work(db);
      await capabilities();
      const client = await pool.connect();
      const session = { broken: undefined as Error | undefined };
      const stopListening = onConnectionLost(client, (error) => {
        session.broken ??= error;
      });
      try {
        return await work(makeDatabase({ ...connection, client, session }));
      } catch (error) {
        session.broken ??= connectionFailure(error);
        throw error;
      } finally {
        stopListening();
        client.release(session.broken);
      }
    },

    async lock(wait: boolean) {
      if (!connection.client)
        throw new Error('lock() needs a session: call it inside db.session()');
      if ((await capabilities()).engine !== 'postgresql') return true;
      const { rows } = await executeAll(undefined, 'taking the sync lock', [
        RUN_LOCK[wait ? 'wait' : 'try'],
      ]);
      return wait || rows[0]?.locked === true;
    },

    async unlock() {
      if (!connection.client || (await capabilities()).engine !== 'postgresql') return;
      await executeAll(undefined, 'releasing the sync lock', [RUN_LOCK.release]);
    },

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
      const key = await typedKey(entity);
      const values = keyValues(entity, keys);
      const tenant = tenantFilter(entity, scope);
      const statements = key
        ? deleteByKeyArrays(entity.table, key, values, tenant)
        : deleteStatements(entity.table, entity.key, values, tenant);
      return (await executeAll(entity, `deleting ${keys.length} rows`, statements)).count;
    },

    async updateByKey(entity, keys, set, scope) {
      if (keys.length === 0) return 0;
      const kinds = await columnKinds(db, entity);
      const assignments = Object.entries(set).map(
        ([column, value]) => [column, toParameter(value, kinds.get(column))] as const,
      );
      const key = await typedKey(entity);
      const values = keyValues(entity, keys);
      const tenant = tenantFilter(entity, scope);
      const statements = key
        ? updateByKeyArrays(entity.table, assignments, key, values, tenant)
        : updateStatements(entity.table, assignments, entity.key, values, tenant);
      return (await executeAll(entity, `updating ${keys.length} rows`, statements)).count;
    },

    async keysOutsideScope<E extends AnyEntity>(
      entity: E,
      keys: readonly KeyOf<E>[],
      scope: Scope,
    ) {
      const tenant = tenantFilter(entity, scope);
      if (keys.length === 0 || !tenant) return [];
      const key = await typedKey(entity);
      const values = keyValues(entity, keys);
      const statements = key
        ? keysOutsideTenantByArrays(entity.table, key, values, tenant)
        : keysOutsideTenantStatements(entity.table, entity.key, values, tenant);
      return (await executeAll(entity, 'checking keys held by other tenants', statements))
        .rows as KeyOf<E>[];
    },
  };
  return db;
}

function timeoutSettings(options: TransactionOptions): Statement[] {
  const settings: Statement[] = [];
  if (options.statementTimeoutMs !== undefined) {
    settings.push(setLocal('statement_timeout', options.statementTimeoutMs));
  }
  if (options.lockTimeoutMs !== undefined)
    settings.push(setLocal('lock_timeout', options.lockTimeoutMs));
  return settings;
}

const optionalString = (value: unknown) => (typeof value === 'string' ? value : undefined);

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
