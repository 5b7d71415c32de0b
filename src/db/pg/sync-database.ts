import { keyOrders } from '../../diff/merge.js';
import { rowParser } from '../../diff/parse-row.js';
import type { AnyEntity, RowOf } from '../../entity/types.js';
import {
  DatabaseError,
  DataError,
  LockedError,
  MeterSyncError,
  messageOf,
  SchemaError,
  sqlState,
} from '../../errors.js';
import type { Logger } from '../../logger.js';
import { parentTenants, type Standing, standingOf } from '../parent-scope.js';
import { textHash } from '../text-hash.js';
import type {
  ColumnInfo,
  Fingerprints,
  KeyHash,
  ParentReference,
  Scope,
  StoredRow,
  SyncDatabase,
  TableDescription,
  TargetKeySet,
  TextKey,
  TextRow,
  TextValue,
  TransactionOptions,
} from '../types.js';
import { type Capabilities, detectCapabilities } from './capabilities.js';
import { backsKey, uniqueKeysStatement } from './catalog.js';
import { copyInBytes, copyInRows, copyOutByteas, supportsCopy } from './copy.js';
import { cursorRows, FETCH_ROWS } from './cursor.js';
import { emulatedRows, emulatedText, orderedKeyHashes, sameEmulatedText } from './emulated.js';
import { databaseError } from './errors.js';
import { unpackKey } from './packed-key.js';
import { tenantParameter } from './params.js';
import {
  hasSpareConnection,
  onConnectionLost,
  type PgClient,
  type PgPool,
  rowValues,
} from './pool.js';
import {
  countStatement,
  fingerprintsStatement,
  keySetStatement,
  keysAtStatement,
  namesOtherTenantsParent,
  rowsByKeyStatement,
  rowsStatement,
  TENANT_SETTING,
  targetShape,
  tenantFromSetting,
} from './reads.js';
import { pinTarget } from './settings.js';
import {
  BEGIN,
  BEGIN_READ_ONLY,
  type BoundCondition,
  COMMIT,
  copyIntoStage,
  createStage,
  deleteByKeyArrays,
  deleteStatements,
  describeFromCatalog,
  describeFromInformationSchema,
  quoteIdent,
  quoteTable,
  ROLLBACK,
  RUN_LOCK,
  RUN_LOCK_KEY,
  releaseSavepoint,
  rollbackToSavepoint,
  type Statement,
  savepoint,
  selectByKeyArrays,
  selectStatement,
  setLocal,
  type TenantFilter,
  type TypedColumn,
  updateByKeyArrays,
  updateStatements,
  upsertStatements,
  writeFromStage,
  writeTextRows,
} from './sql.js';
import {
  acquireLock,
  DEFAULT_LOCK_LEASE_MS,
  describeHolder,
  ENTITY_GUARD,
  lockHolder,
  newHolder,
  releaseLock,
  renewLock,
  SYNC_LOCK_TABLE,
  syncLockTableSql,
  TRY_ENTITY_GUARD,
} from './sync-lock.js';
import { isTransientError } from './transient.js';
import {
  readWatermarks,
  saveWatermark,
  WATERMARK_TABLE,
  WATERMARK_TABLE_EXISTS,
  WATERMARK_TABLE_SQL,
  watermarkOf,
} from './watermarks.js';
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
   * Inside a session: takes the sync lock, so two syncs into one database never overlap, also
   * through PgBouncer in transaction pooling: a lease row in `meter_sync_lock` (created on first
   * use when missing and the role may; see `src/db/pg/sync-lock.ts`), renewed while the run
   * goes on, with each of the session's transactions holding `pg_advisory_xact_lock(1836284270,
   * 0)`. Where the table can be neither found nor created, falls back to a session-level
   * advisory lock on that key, and logs a warning. With `wait`, waits until the lock is free;
   * otherwise rejects with a `LockedError` naming the holder. Returns true without locking on
   * engines without advisory locks (pg-mem).
   */
  lock(wait: boolean, options?: { readonly logger?: Logger | undefined }): Promise<boolean>;
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
export function createPgSyncDatabase(
  pool: PgPool,
  options: PgSyncDatabaseOptions = {},
): SyncDatabase {
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
    lockLeaseMs: options.lockLeaseMs ?? DEFAULT_LOCK_LEASE_MS,
    client: undefined,
    session: undefined,
    inTransaction: false,
    descriptions: undefined,
    stages: undefined,
    timeouts: [],
  });
}

/** Options of {@link createPgSyncDatabase}. */
export interface PgSyncDatabaseOptions {
  /**
   * How long the sync lock outlives a holder that stopped renewing it, in ms: the longest a
   * run that died behind a transaction-pooling PgBouncer keeps others out (on a direct
   * connection, the lock is free as soon as the server ends the dead run's session). A running
   * sync renews it every quarter of this time and before each entity (unless it took or
   * renewed it within a tenth of this time). Default 60000.
   */
  readonly lockLeaseMs?: number | undefined;
}

/** The sync lock a session holds. */
type HeldLock =
  | {
      readonly kind: 'row';
      readonly holder: string;
      readonly heartbeat: ReturnType<typeof setInterval>;
      /** When the lease was last taken or renewed on the session's connection (`Date.now()`). */
      renewedAt: number;
    }
  | { readonly kind: 'session' };

/** A session's connection: replaced by a new one after a connection-level failure. */
interface SessionState {
  client: PgClient;
  /** A connection-level failure: the session destroys this connection instead of reusing it. */
  broken: Error | undefined;
  stopListening: () => void;
  lock: HeldLock | undefined;
}

/** Where a database handle runs its statements. */
interface Connection {
  readonly pool: PgPool;
  readonly capabilities: () => Promise<Capabilities>;
  readonly lockLeaseMs: number;
  /** The dedicated connection of a session or transaction; none: a pooled one per operation. */
  readonly client: PgClient | undefined;
  /** Set inside a session: records a connection-level failure so the session replaces it. */
  readonly session: SessionState | undefined;
  readonly inTransaction: boolean;
  /** Table descriptions, cached for the life of a transaction. */
  readonly descriptions: Map<string, Promise<TableDescription | undefined>> | undefined;
  /** Staging tables of a transaction, by entity name. */
  readonly stages: Map<string, string> | undefined;
  /** A transaction's timeouts, for the statements it has run on another connection. */
  readonly timeouts: readonly Statement[];
}

/** Pools that could not start a second transaction beside a first in time: see `keySet`. */
const withoutSpare = new WeakSet<PgPool>();
/** How long a second connection may take to start its transaction. */
const SPARE_WAIT_MS = 2_000;

/**
 * Another connection of `pool`, in a read-only transaction; `undefined` where it cannot have
 * one within `SPARE_WAIT_MS` (behind a pooler whose server connections are all taken, one of
 * them by the caller's own transaction, it would wait for ever). A connection that came too late
 * or failed is destroyed, and what it waited for with it.
 */
async function secondTransaction(pool: PgPool): Promise<PgClient | undefined> {
  let client: PgClient | undefined;
  // Until the caller listens: a connection lost while it waits must not end the process.
  let stopListening: () => void = () => undefined;
  let late = false;
  const begun = (async () => {
    client = await pool.connect();
    stopListening = onConnectionLost(client, () => undefined);
    if (late) return false;
    await client.query({ text: BEGIN_READ_ONLY });
    return true;
  })().catch(() => false);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), SPARE_WAIT_MS);
  });
  const ready = await Promise.race([begun, timedOut]);
  clearTimeout(timer);
  if (ready) {
    stopListening();
    return client;
  }
  late = true;
  const destroy = () => {
    stopListening();
    (client as PgClient | undefined)?.release(true);
  };
  if (client) destroy();
  else void begun.then(destroy);
  return undefined;
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
  return withConnection(await pool.connect(), work);
}

/** `withClient` on a connection already checked out, which it returns to the pool or destroys. */
async function withConnection<T>(
  client: PgClient,
  work: (client: PgClient) => Promise<T>,
): Promise<T> {
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

let stagesMade = 0;

const BULK_SAVEPOINT = 'meter_sync_bulk';
const KEYS_SAVEPOINT = 'meter_sync_keys';
/** numeric_value_out_of_range: a cast to a narrower integer type met a value too wide. */
const OUT_OF_RANGE = '22003';
const WATERMARK_SAVEPOINT = 'meter_sync_watermark';
/** How often a run waiting for the sync lock looks at the lock row between the holder's entities. */
const WAIT_POLL_MS = 200;
/** What a table refuses in a bulk load that the row-by-row path names: keys, NULLs, lengths, checks. */
const BULK_REFUSALS = new Set([
  '23505',
  '23502',
  '22001',
  '23514',
  '23503',
  '22P02',
  '22007',
  '22008',
  '22003',
]);

function makeDatabase(connection: Connection): PgSyncDatabase {
  const { pool, capabilities, descriptions } = connection;
  const run = <T>(work: (client: PgClient) => Promise<T>): Promise<T> =>
    connection.client ? work(connection.client) : withClient(pool, work);

  const brokenBy = (error: unknown) => {
    if (connection.session && sqlState(error) === undefined)
      connection.session.broken ??= asError(error);
  };

  /**
   * Runs statements in order, wrapping a failure with the entity and the action. With
   * `arraysOnly`, rows come as arrays alone (`rows` is empty): no object a row, where many come.
   */
  const executeAll = (
    entity: AnyEntity | undefined,
    action: string,
    statements: readonly Statement[],
    arraysOnly = false,
  ) =>
    run(async (client) => {
      const rows: StoredRow[] = [];
      const arrays: unknown[][] = [];
      let count = 0;
      for (const statement of statements) {
        try {
          const result = await client.query(
            arraysOnly ? { ...statement, rowMode: 'array' } : statement,
          );
          count += result.rowCount ?? 0;
          if (arraysOnly) for (const row of result.rows) arrays.push(rowValues(row));
          else for (const row of result.rows as StoredRow[]) rows.push(row);
        } catch (error) {
          brokenBy(error);
          throw databaseError(error, entity?.name, action);
        }
      }
      if (!arraysOnly) for (const row of rows) arrays.push(Object.values(row));
      return { count, rows, arrays };
    });

  const emulated = async () => (await capabilities()).engine !== 'postgresql';

  /** Whether the entity's table has a unique index on exactly its key, asked once a transaction. */
  const keyIndexes = new Map<string, Promise<boolean>>();
  const keyIndexed = (entity: AnyEntity) => {
    let found = keyIndexes.get(entity.name);
    if (!found) {
      found = executeAll(entity, 'looking at the target table', [
        uniqueKeysStatement(entity.table),
      ]).then(({ rows }) =>
        backsKey(
          rows.map((row) => row.columns as string[]),
          entity.key,
        ),
      );
      if (connection.inTransaction) keyIndexes.set(entity.name, found);
      found.catch(() => keyIndexes.delete(entity.name));
    }
    return found;
  };

  const tenantFilter = (entity: AnyEntity, scope: Scope | undefined): TenantFilter | undefined =>
    entity.tenantColumn !== undefined && scope?.tenantId !== undefined
      ? { column: entity.tenantColumn, value: tenantParameter(scope.tenantId) }
      : undefined;

  const described = async (entity: AnyEntity): Promise<TableDescription> => {
    const description = await db.describe(entity);
    if (!description)
      throw new SchemaError(
        `${entity.name}: target table ${quoteTable(entity.table)} does not exist`,
        {
          entity: entity.name,
        },
      );
    return description;
  };

  const typed = (description: TableDescription, columns: readonly string[]): TypedColumn[] =>
    columns.map((name) => ({ name, type: description.get(name)?.type ?? 'text' }));

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
          notNull: typeof row.not_null === 'boolean' ? row.not_null : undefined,
        };
        return [name, info];
      }),
    );
  };

  /** The parents that tie a global entity's rows to the scope's tenant, if any. */
  const tiesOf = (entity: AnyEntity, scope: Scope | undefined) =>
    entity.tenantColumn === undefined && scope?.tenantId !== undefined && scope.parents?.length
      ? scope.parents
      : undefined;

  /** Leaves alone the rows of a global entity that name another tenant's parent rows. */
  const notOtherTenants = (
    entity: AnyEntity,
    scope: Scope | undefined,
  ): BoundCondition | undefined => {
    const ties = tiesOf(entity, scope);
    return ties
      ? {
          sql: (tenant) => `NOT ${namesOtherTenantsParent(ties, tenant)}`,
          value: tenantParameter(scope?.tenantId),
        }
      : undefined;
  };

  /** pg-mem: every row in scope as text, read whole (it holds little). */
  const emulatedScan = async (entity: AnyEntity, scope: Scope, description: TableDescription) =>
    (await emulatedStanding(entity, scope, description))
      .filter((row) => row.standing === 'within')
      .map((row) => row.row);

  /** pg-mem: the rows (of the tenant, for a tenant-scoped entity) and where each stands. */
  const emulatedStanding = async (
    entity: AnyEntity,
    scope: Scope,
    description: TableDescription,
  ): Promise<{ row: TextRow; standing: Standing }[]> => {
    const statement = selectStatement(
      entity.table,
      entity.columnNames.map((name: string) => ({ name })),
      tenantFilter(entity, scope),
    );
    const { rows } = await executeAll(entity, `reading table ${quoteTable(entity.table)}`, [
      statement,
    ]);
    const texts = emulatedRows(rows, entity.columnNames, description);
    const ties = tiesOf(entity, scope);
    if (!ties) return texts.map((row) => ({ row, standing: 'within' }));
    const loaded = new Map<ParentReference, { key: string[]; tenant: TextValue }[]>();
    for (const reference of ties) {
      const { parent } = reference;
      const tenantColumn = parent.tenantColumn as string;
      const { rows: parents } = await executeAll(entity, 'reading parent rows', [
        selectStatement(
          parent.table,
          [...parent.key, tenantColumn].map((name) => ({ name })),
        ),
      ]);
      loaded.set(
        reference,
        parents.map((row) => ({
          key: parent.key.map(
            (column, i) =>
              emulatedText(row[column], description.get(reference.columns[i] as string)) ?? '',
          ),
          tenant: emulatedText(row[tenantColumn], undefined),
        })),
      );
    }
    const parentTenant = parentTenants((reference) => loaded.get(reference) ?? []);
    return texts.map((row) => ({
      row,
      standing: standingOf(
        scope,
        (column) => row[entity.columnNames.indexOf(column)] ?? null,
        parentTenant,
      ),
    }));
  };

  /** pg-mem: of these keys, those of stored rows that name another tenant's parent rows. */
  const emulatedOtherTenants = async (
    entity: AnyEntity,
    scope: Scope,
    description: TableDescription,
    keys: readonly TextKey[],
  ) => {
    const rows = (await emulatedStanding(entity, scope, description)).filter(
      (row) => row.standing === 'other-tenant',
    );
    return matching(
      entity,
      rows.map((row) => row.row),
      keys,
    ).map((row) => keyTexts(entity, row));
  };

  /**
   * A session whose connection failed at the connection level goes on with a new one (an
   * entity's retry needs it). A session-level advisory lock went with the old connection: then
   * the run cannot go on.
   */
  const reconnectIfBroken = async (entity?: string) => {
    const state = connection.session;
    if (!state?.broken || connection.inTransaction) return;
    if (state.lock?.kind === 'session') {
      throw new LockedError(
        'the sync lock, a session-level advisory lock, was lost with the connection to the sync database; the run stops here',
      );
    }
    let next: PgClient;
    try {
      next = await pool.connect();
    } catch (error) {
      throw databaseError(error, entity, 'connecting to the sync database again');
    }
    state.stopListening();
    state.client.release(state.broken);
    state.client = next;
    state.broken = undefined;
    state.stopListening = onConnectionLost(next, (error) => {
      state.broken ??= error;
    });
  };

  /**
   * One attempt at the lock, in one transaction: the advisory key (a waiter waits for it: the
   * holder's entity transaction holds it), then the row. Says what stood in the way, if anything.
   */
  const takeRowLock = async (holder: string, wait: boolean): Promise<'taken' | 'row' | 'key'> => {
    const statements: Statement[] = [
      { text: BEGIN, values: [] },
      wait ? ENTITY_GUARD : TRY_ENTITY_GUARD,
      acquireLock(holder, connection.lockLeaseMs),
    ];
    const action = wait ? 'waiting for the sync lock' : 'taking the sync lock';
    try {
      return await run(async (client) => {
        for (const [index, statement] of statements.entries()) {
          let result: Awaited<ReturnType<PgClient['query']>>;
          try {
            result = await client.query(statement);
          } catch (error) {
            brokenBy(error);
            throw databaseError(error, undefined, action);
          }
          if (index === 1 && !wait && result.rows[0]?.free !== true) {
            await client.query({ text: ROLLBACK });
            return 'key';
          }
          if (index === 2) {
            const taken = result.rows.some((row) => row.holder === holder);
            await client.query({ text: taken ? COMMIT : ROLLBACK });
            return taken ? 'taken' : 'row';
          }
        }
        return 'row';
      });
    } catch (error) {
      await run((client) => client.query({ text: ROLLBACK })).catch(() => undefined);
      throw error;
    }
  };

  const createLockTable = async (logger: Logger | undefined) => {
    try {
      await executeAll(undefined, 'creating the sync lock table', [
        { text: syncLockTableSql, values: [] },
      ]);
      logger?.info({ table: SYNC_LOCK_TABLE }, 'created the sync lock table');
    } catch {
      // The next attempt at the lock says why, or finds the table another run made.
    }
  };

  const takeSessionLock = async (state: SessionState, wait: boolean): Promise<boolean> => {
    const { rows } = await executeAll(undefined, 'taking the sync lock', [
      RUN_LOCK[wait ? 'wait' : 'try'],
    ]);
    const taken = wait || rows[0]?.locked === true;
    if (taken) state.lock = { kind: 'session' };
    return taken;
  };

  /** Before an entity's transaction: extends the lease, on the connection the run uses now. */
  const renewRowLock = async (holder: string) => {
    const { rows } = await executeAll(undefined, 'renewing the sync lock', [
      renewLock(holder, connection.lockLeaseMs, true),
    ]);
    if (rows.length > 0) return;
    const current = await executeAll(undefined, 'reading the sync lock', [lockHolder()]);
    throw new LockedError(
      `the sync lock on the target database was taken over by another sync (${describeHolder(current.rows[0])}) after this run left it unrenewed past its lease; the run stops here`,
    );
  };

  /** Extends the lease on a pooled connection while a long entity runs; a failure waits for the next. */
  let beating = false;
  const heartbeatOf = async (holder: string) => {
    if (beating) return;
    beating = true;
    try {
      await withClient(pool, (client) =>
        client.query(renewLock(holder, connection.lockLeaseMs, false)),
      );
    } catch {
      // The renewal before the next entity's transaction reports a lock that is lost.
    } finally {
      beating = false;
    }
  };

  const db: PgSyncDatabase = {
    capabilities,
    connection: () => connection.client,

    async features() {
      const caps = await capabilities();
      return {
        sqlHash: caps.engine === 'postgresql' && (caps.serverVersion ?? 0) >= 110000,
        rollback: caps.transactional,
      };
    },

    async transaction<T>(
      work: (db: PgSyncDatabase) => Promise<T>,
      options: TransactionOptions = {},
    ) {
      if (connection.inTransaction) return work(db);
      const caps = await capabilities();
      await reconnectIfBroken(options.entity);
      const held = connection.session?.lock;
      // A lease taken or renewed a moment ago cannot have been taken over: the first entity's
      // transaction follows the lock at once.
      if (held?.kind === 'row' && Date.now() - held.renewedAt >= connection.lockLeaseMs / 10) {
        await renewRowLock(held.holder);
        held.renewedAt = Date.now();
      }
      const timeouts = timeoutSettings(options);
      return run(async (client) => {
        await client.query({ text: BEGIN });
        const inner = makeDatabase({
          ...connection,
          client,
          inTransaction: true,
          descriptions: new Map(),
          stages: new Map(),
          timeouts,
        });
        let result: T;
        try {
          if (caps.engine === 'postgresql') {
            await client.query(pinTarget(caps.serverVersion));
            for (const statement of timeouts) await client.query(statement);
            // Two runs' entity transactions never overlap, even while a stalled holder's lease
            // is being taken over.
            if (held?.kind === 'row') await client.query(ENTITY_GUARD);
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
      const state: SessionState = {
        client: await pool.connect(),
        broken: undefined,
        stopListening: () => undefined,
        lock: undefined,
      };
      state.stopListening = onConnectionLost(state.client, (error) => {
        state.broken ??= error;
      });
      const sessionConnection: Connection = {
        ...connection,
        session: state,
        get client() {
          return state.client;
        },
      };
      try {
        return await work(makeDatabase(sessionConnection));
      } catch (error) {
        state.broken ??= connectionFailure(error);
        throw error;
      } finally {
        if (state.lock?.kind === 'row') clearInterval(state.lock.heartbeat);
        state.stopListening();
        state.client.release(state.broken);
      }
    },

    async lock(wait: boolean, options: { readonly logger?: Logger | undefined } = {}) {
      const state = connection.session;
      if (!state || connection.inTransaction)
        throw new Error('lock() needs a session: call it inside db.session()');
      if (await emulated()) return true;
      await reconnectIfBroken();
      const holder = newHolder();
      let created = false;
      for (;;) {
        let taken: 'taken' | 'row' | 'key';
        try {
          taken = await takeRowLock(holder, wait);
        } catch (error) {
          const code = sqlState(error instanceof DatabaseError ? error.cause : error);
          if (code === '42P01' && !created) {
            // Missing: create it (a race with another run creating it is fine), then again.
            created = true;
            await createLockTable(options.logger);
            continue;
          }
          if (code !== '42P01' && code !== '42501') throw error;
          options.logger?.warn(
            { table: SYNC_LOCK_TABLE, err: error },
            `the sync lock table "${SYNC_LOCK_TABLE}" cannot be used (${messageOf(error)}); using a session-level advisory lock instead, which does not keep two syncs apart through PgBouncer in transaction pooling: create the table with meter-sync init`,
          );
          return takeSessionLock(state, wait);
        }
        if (taken === 'taken') {
          const heartbeat = setInterval(
            () => void heartbeatOf(holder),
            Math.max(1, Math.floor(connection.lockLeaseMs / 4)),
          );
          heartbeat.unref?.();
          state.lock = { kind: 'row', holder, heartbeat, renewedAt: Date.now() };
          return true;
        }
        if (!wait) {
          const { rows } = await executeAll(undefined, 'reading the sync lock', [lockHolder()]);
          const by =
            taken === 'key' && rows.length === 0
              ? `a session holds the advisory lock ${RUN_LOCK_KEY.join(', ')}`
              : describeHolder(rows[0]);
          throw new LockedError(
            `another sync holds the sync lock on the target database (${by}); try again when it has finished`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, WAIT_POLL_MS));
      }
    },

    async unlock() {
      const state = connection.session;
      const held = state?.lock;
      if (!state || !held) return;
      state.lock = undefined;
      if (held.kind === 'session') {
        await executeAll(undefined, 'releasing the sync lock', [RUN_LOCK.release]);
        return;
      }
      clearInterval(held.heartbeat);
      await reconnectIfBroken();
      await executeAll(undefined, 'releasing the sync lock', [releaseLock(held.holder)]);
    },

    isTransient: isTransientError,

    describe(entity) {
      const cacheKey = quoteTable(entity.table);
      const cached = descriptions?.get(cacheKey);
      if (cached) return cached;
      const description = describeTable(entity);
      descriptions?.set(cacheKey, description);
      return description;
    },

    async query<E extends AnyEntity>(entity: E, scope: Scope = {}): Promise<RowOf<E>[]> {
      const description = await described(entity);
      let texts: TextRow[];
      if (await emulated()) texts = await emulatedScan(entity, scope, description);
      else {
        const statement = rowsStatement(targetShape(entity, description, scope), {
          hash: 'text',
          values: true,
        });
        const { arrays } = await executeAll(entity, `reading table ${quoteTable(entity.table)}`, [
          statement,
        ]);
        texts = arrays.map((row) => row.slice(entity.key.length) as TextRow);
      }
      const parser = rowParser(entity, description, undefined, 'stored');
      return texts.map((values) => {
        const parsed = parser.parse(values);
        if (parsed instanceof DataError) throw parsed;
        return parsed.row as RowOf<E>;
      });
    },

    async isEmpty(entity) {
      const { rows } = await executeAll(entity, 'looking at the target table', [
        {
          text: `SELECT NOT EXISTS (SELECT 1 FROM ${quoteTable(entity.table)}) AS empty`,
          values: [],
        },
      ]);
      return rows[0]?.empty === true;
    },

    async estimateRows(entity, scope) {
      const description = await described(entity);
      if (await emulated()) return (await emulatedScan(entity, scope, description)).length;
      const shape = targetShape(entity, description, scope);
      const where = shape.where.length > 0 ? ` WHERE ${shape.where.join(' AND ')}` : '';
      // Whether there is a row at all, then the planner's estimate: no count of a million rows.
      const statements: Statement[] = [
        {
          text: `SELECT EXISTS (SELECT 1 FROM ${shape.from}${where}) AS any`,
          values: [...shape.params],
        },
        {
          text: `EXPLAIN (FORMAT JSON) SELECT 1 FROM ${shape.from}${where}`,
          values: [...shape.params],
        },
      ];
      const { rows } = await executeAll(entity, 'estimating target rows', statements);
      if (rows[0]?.any !== true) return 0;
      const plan = rows[1]?.['QUERY PLAN'];
      const parsed = (typeof plan === 'string' ? JSON.parse(plan) : plan) as
        | { Plan?: { 'Plan Rows'?: number } }[]
        | undefined;
      return Math.max(1, Number(parsed?.[0]?.Plan?.['Plan Rows'] ?? 1));
    },

    async fingerprints(entity, request) {
      const caps = await capabilities();
      const shape = targetShape(entity, request.columns, request.scope);
      const statement = fingerprintsStatement(
        shape,
        request.buckets?.count ?? 1,
        (caps.serverVersion ?? 0) >= 140000,
        request.keysOnly,
      );
      const { rows } = await executeAll(entity, 'summarising target buckets', [statement]);
      return fingerprintsOf(rows[0]);
    },

    async *keyHashes(entity, request) {
      const width = entity.key.length;
      if (await emulated()) {
        const texts = await emulatedScan(entity, request.scope, request.columns);
        const keyIndexes = entity.key.map((column) => entity.columnNames.indexOf(column));
        const ordered = orderedKeyHashes(
          texts,
          keyIndexes,
          keyOrders(entity, request.columns),
          (key, hash) => ({ key, hash }),
        );
        for (let i = 0; i < ordered.length; i += FETCH_ROWS) yield ordered.slice(i, i + FETCH_ROWS);
        return;
      }
      const client = connection.client;
      if (!client) throw new Error('keyHashes() needs a transaction');
      const statement = rowsStatement(targetShape(entity, request.columns, request.scope), {
        hash: request.hash,
        values: request.hash === 'text',
        buckets: request.buckets,
        keysOnly: request.keysOnly,
      });
      try {
        for await (const batch of cursorRows(client, statement)) {
          yield batch.map((row) => ({
            key: row.slice(0, width) as string[],
            hash:
              request.hash === 'sql' ? String(row[width]) : textHash(row.slice(width) as TextRow),
          }));
        }
      } catch (error) {
        brokenBy(error);
        throw databaseError(error, entity.name, 'reading target row hashes');
      }
    },

    async keyHashesOf(entity, request, keys) {
      if (keys.length === 0) return [];
      if (await emulated()) {
        const wanted = new Set(keys.map((key) => JSON.stringify(key)));
        const hashes: KeyHash[] = [];
        for await (const batch of db.keyHashes(entity, request))
          for (const row of batch) if (wanted.has(JSON.stringify(row.key))) hashes.push(row);
        return hashes;
      }
      const shape = targetShape(entity, request.columns, request.scope);
      const width = entity.key.length;
      // Keys come from a read, mostly in key order: probed in the order given, where a unique
      // index on the key serves each probe (without one, each would scan the table).
      const inKeysOrder = await keyIndexed(entity);
      const { arrays } = await executeAll(
        entity,
        'reading target row hashes',
        [rowsByKeyStatement(shape, keys, false, inKeysOrder)],
        true,
      );
      return arrays.map((row) => ({
        key: row.slice(0, width) as string[],
        hash: request.keysOnly ? '0' : String(row[width]),
      }));
    },

    keySet(entity, request) {
      const client = connection.client;
      if (!client || !connection.inTransaction) throw new Error('keySet() needs a transaction');
      // On a connection of its own where the pool has one to spare, so the transaction can
      // write meanwhile: that connection sees none of its writes.
      const apart = hasSpareConnection(connection.pool) && !withoutSpare.has(connection.pool);
      const action = 'reading target keys';
      const packed = request.packedKey;
      const tooWide = (error: unknown) =>
        packed !== undefined &&
        sqlState(error instanceof TransactionAborted ? error.error : error) === OUT_OF_RANGE;
      const read = async (reader: PgClient): Promise<[Uint8Array, Uint8Array] | undefined> => {
        if (!supportsCopy(reader)) return undefined;
        // COPY takes no parameters: the tenant comes from a setting, cast to each table's type.
        const types = new Map<AnyEntity, string>();
        const scoped = [entity, ...(request.scope.parents ?? []).map(({ parent }) => parent)];
        for (const table of scoped)
          if (table.tenantColumn !== undefined)
            types.set(table, (await described(table)).get(table.tenantColumn)?.type ?? 'text');
        if (request.scope.tenantId !== undefined)
          await reader.query(
            setLocal(TENANT_SETTING, String(tenantParameter(request.scope.tenantId))),
          );
        const shape = targetShape(entity, request.columns, request.scope, (scopedEntity) =>
          tenantFromSetting(types.get(scopedEntity) ?? 'text'),
        );
        const statement = keySetStatement(
          shape,
          packed === undefined,
          packed && { bits: packed, sourceTypes: false },
        );
        const copy = `COPY (${statement.text}) TO STDOUT (FORMAT binary)`;
        // A value too wide for its bits fails the read: in the transaction, only back to here.
        const savepointed = packed !== undefined && reader === client;
        if (savepointed) await reader.query({ text: savepoint(KEYS_SAVEPOINT) });
        try {
          const [hashes = new Uint8Array(), places = new Uint8Array()] = await copyOutByteas(
            reader,
            copy,
          );
          if (savepointed) await reader.query({ text: releaseSavepoint(KEYS_SAVEPOINT) });
          return [hashes, places];
        } catch (error) {
          if (savepointed && tooWide(error))
            await reader.query({ text: rollbackToSavepoint(KEYS_SAVEPOINT) });
          throw error;
        }
      };
      const readApart = async () => {
        const spare = await secondTransaction(connection.pool);
        if (!spare) {
          // The keys are compared another way; this pool's are read in the transaction from now on.
          withoutSpare.add(connection.pool);
          return undefined;
        }
        return withConnection(spare, async (client) => {
          try {
            await client.query(pinTarget((await capabilities()).serverVersion));
            for (const statement of connection.timeouts) await client.query(statement);
            const wholly = await read(client);
            await client.query({ text: COMMIT });
            return wholly;
          } catch (error) {
            let connectionError: unknown;
            await client.query({ text: ROLLBACK }).catch((rollbackError: unknown) => {
              connectionError = rollbackError;
            });
            throw new TransactionAborted(error, connectionError);
          }
        });
      };
      const keys = (async (): Promise<TargetKeySet | undefined> => {
        if (await emulated()) return undefined;
        let hashes: Uint8Array;
        let places: Uint8Array;
        try {
          const wholly = await (apart ? readApart() : read(client));
          if (!wholly) return undefined;
          [hashes, places] = wholly;
        } catch (error) {
          // A key the source cannot hold: the engine compares keys another way.
          if (tooWide(error)) return undefined;
          // A spare connection that failed is the pool's to replace, not the transaction's.
          if (!apart) brokenBy(error);
          throw databaseError(error, entity.name, action);
        }
        const rowsShape = targetShape(entity, request.columns, request.scope);
        return {
          hashes,
          async keysAt(positions) {
            if (positions.length === 0) return [];
            // Packed, the keys are there to read.
            if (packed) return positions.map((position) => unpackKey(hashes, position, packed));
            // Each row's ctid (block, then line: tidsend's 6 bytes) and the key hash read there.
            const expected = new Map<string, string>();
            const hashView = new DataView(hashes.buffer, hashes.byteOffset, hashes.byteLength);
            const placeView = new DataView(places.buffer, places.byteOffset, places.byteLength);
            for (const position of positions) {
              const tid = `(${placeView.getUint32(position * 6)},${placeView.getUint16(position * 6 + 4)})`;
              expected.set(tid, hashView.getBigInt64(position * 8).toString());
            }
            const width = entity.key.length;
            const { arrays } = await executeAll(entity, action, [
              keysAtStatement(rowsShape, [...expected.keys()]),
            ]);
            // A partition's rows share ctids with another's: the hash tells the row read before.
            return arrays
              .filter((row) => expected.get(String(row[width + 1])) === String(row[width]))
              .map((row) => row.slice(0, width) as string[]);
          },
        };
      })();
      return { apart, keys };
    },

    async count(entity, request) {
      const { softDeleted } = request;
      if (await emulated()) {
        const at = (row: TextRow, column: string) =>
          row[entity.columnNames.indexOf(column)] ?? null;
        return (await emulatedScan(entity, request.scope, request.columns)).filter(
          (row) =>
            entity.key.every((column) => at(row, column) !== null) &&
            !(
              softDeleted &&
              Object.entries(softDeleted).every(([column, value]) =>
                sameEmulatedText(at(row, column), value, request.columns.get(column)),
              )
            ),
        ).length;
      }
      const { rows } = await executeAll(entity, 'counting target rows', [
        countStatement(targetShape(entity, request.columns, request.scope), softDeleted),
      ]);
      return Number(rows[0]?.rows ?? 0);
    },

    async tableIdentity(entity) {
      if (await emulated()) return quoteTable(entity.table);
      const { rows } = await executeAll(entity, 'reading the target table identity', [
        {
          // TRUNCATE, VACUUM FULL and CLUSTER give a table a new file; a new table has a new oid.
          text: "SELECT concat_ws('/', c.oid, pg_relation_filenode(c.oid)) AS identity FROM pg_class AS c WHERE c.oid = to_regclass($1)",
          values: [quoteTable(entity.table)],
        },
      ]);
      return String(rows[0]?.identity ?? '');
    },

    async watermarks(entity, scope) {
      if (await emulated())
        return { unavailable: 'this engine keeps no row versions, so no watermarks' };
      const { rows } = await executeAll(entity, 'reading the watermark', [WATERMARK_TABLE_EXISTS]);
      if (rows[0]?.present === true && rows[0]?.usable !== true)
        return {
          unavailable: `this role may not read and replace the rows of "${WATERMARK_TABLE}": GRANT SELECT, INSERT, DELETE ON "${WATERMARK_TABLE}" TO the role the sync connects as`,
        };
      if (rows[0]?.present !== true) {
        // Databases set up before watermarks were kept: create the table, if the role may.
        const created = await executeAll(entity, 'creating the watermark table', [
          { text: savepoint(WATERMARK_SAVEPOINT), values: [] },
          { text: WATERMARK_TABLE_SQL, values: [] },
          { text: releaseSavepoint(WATERMARK_SAVEPOINT), values: [] },
        ]).then(
          () => true,
          () =>
            executeAll(entity, 'creating the watermark table', [
              { text: rollbackToSavepoint(WATERMARK_SAVEPOINT), values: [] },
            ]).then(() => false),
        );
        if (!created)
          return {
            unavailable: `the sync database has no "${WATERMARK_TABLE}" table, and this role may not create it: run \`meter-sync init\`, or apply syncSchemaSql, as a role that may`,
          };
      }
      const stored = await executeAll(entity, 'reading the watermark', [
        readWatermarks(entity, scope),
      ]);
      return stored.rows.map(watermarkOf);
    },

    async saveWatermark(entity, scope, watermark) {
      if (await emulated()) return;
      await executeAll(entity, 'storing the watermark', saveWatermark(entity, scope, watermark));
    },

    async existingKeys(entity, keys) {
      if (keys.length === 0) return [];
      const description = await described(entity);
      if (await emulated()) {
        const all = await emulatedScan(entity, {}, description);
        return matching(entity, all, keys).map((row) => keyTexts(entity, row));
      }
      const outputs = entity.key.map((c) => `("t".${quoteIdent(c)})::text`);
      const statements = selectByKeyArrays(
        entity.table,
        typed(description, entity.key),
        keys,
        outputs,
      );
      return (await executeAll(entity, 'looking up keys', statements)).arrays as string[][];
    },

    async keysOutsideScope(entity, keys, scope) {
      const tenant = tenantFilter(entity, scope);
      const ties = tiesOf(entity, scope);
      if (keys.length === 0 || (!tenant && !ties)) return [];
      const description = await described(entity);
      if (!tenant && ties) {
        if (await emulated()) return emulatedOtherTenants(entity, scope, description, keys);
        const width = entity.key.length;
        // Only the rows that name another tenant's parent come back: most runs find none.
        const statements = selectByKeyArrays(
          entity.table,
          typed(description, entity.key),
          keys,
          entity.key.map((c) => `("t".${quoteIdent(c)})::text`),
          namesOtherTenantsParent(ties, `$${width + 1}`),
        ).map((statement) => ({
          ...statement,
          values: [...statement.values, tenantParameter(scope.tenantId)],
        }));
        const { arrays } = await executeAll(
          entity,
          'checking keys held by other tenants',
          statements,
          true,
        );
        return arrays as string[][];
      }
      if (!tenant) return [];
      if (await emulated()) {
        const all = await emulatedScan(entity, {}, description);
        const tenantIndex = entity.columnNames.indexOf(tenant.column);
        const wanted = String(tenant.value);
        return matching(entity, all, keys)
          .filter((row) => row[tenantIndex] !== wanted)
          .map((row) => keyTexts(entity, row));
      }
      // The tenant is one more parameter after the key arrays. Only the rows another tenant
      // holds come back: most runs find none.
      const statements = selectByKeyArrays(
        entity.table,
        typed(description, entity.key),
        keys,
        entity.key.map((c) => `("t".${quoteIdent(c)})::text`),
        `"t".${quoteIdent(tenant.column)} IS DISTINCT FROM CAST($${entity.key.length + 1} AS ${description.get(tenant.column)?.type ?? 'text'})`,
      ).map((statement) => ({ ...statement, values: [...statement.values, tenant.value] }));
      const { arrays } = await executeAll(
        entity,
        'checking keys held by other tenants',
        statements,
        true,
      );
      return arrays as string[][];
    },

    async referencing(child, columns, parentKeys, scope) {
      if (parentKeys.length === 0) return [];
      const description = await described(child);
      const tenant = tenantFilter(child, scope);
      const ties = tiesOf(child, scope);
      if (await emulated()) {
        const all = await emulatedStanding(child, ties ? scope : {}, description);
        const positions = columns.map((column) => child.columnNames.indexOf(column));
        const wanted = new Set(parentKeys.map((key) => JSON.stringify(key)));
        const tenantIndex = tenant ? child.columnNames.indexOf(tenant.column) : -1;
        return all
          .filter(({ row }) => wanted.has(JSON.stringify(positions.map((p) => row[p]))))
          .map(({ row, standing }) => ({
            key: keyTexts(child, row),
            parentKey: positions.map((p) => row[p] as string),
            inScope:
              (tenantIndex < 0 || row[tenantIndex] === String(tenant?.value)) &&
              standing !== 'other-tenant',
          }));
      }
      const outputs = [
        ...child.key.map((c) => `("t".${quoteIdent(c)})::text`),
        ...columns.map((c) => `("t".${quoteIdent(c)})::text`),
        tenant
          ? `("t".${quoteIdent(tenant.column)} IS NOT DISTINCT FROM CAST($${columns.length + 1} AS ${description.get(tenant.column)?.type ?? 'text'}))`
          : ties
            ? `NOT ${namesOtherTenantsParent(ties, `$${columns.length + 1}`)}`
            : 'true',
      ];
      const bound = tenant?.value ?? (ties ? tenantParameter(scope.tenantId) : undefined);
      const statements = selectByKeyArrays(
        child.table,
        typed(description, columns),
        parentKeys,
        outputs,
      ).map((statement) =>
        bound !== undefined ? { ...statement, values: [...statement.values, bound] } : statement,
      );
      const { arrays } = await executeAll(
        child,
        'finding rows that reference deleted rows',
        statements,
      );
      const width = child.key.length;
      return arrays.map((row) => ({
        key: row.slice(0, width) as string[],
        parentKey: row.slice(width, width + columns.length) as string[],
        inScope: row[width + columns.length] === true,
      }));
    },

    async write(entity, rows, scope, options = {}) {
      if (rows.length === 0) return { inserted: [], updated: [] };
      const description = await described(entity);
      const keyIndexes = entity.key.map((column) => entity.columnNames.indexOf(column));
      if (await emulated()) {
        const stored = await emulatedScan(entity, {}, description);
        const byKey = new Map(
          stored.map((row) => [JSON.stringify(keyIndexes.map((i) => row[i])), row]),
        );
        const tenantIndex =
          entity.tenantColumn === undefined ? -1 : entity.columnNames.indexOf(entity.tenantColumn);
        const inserted: TextKey[] = [];
        const updated: TextKey[] = [];
        const changed: TextRow[] = [];
        for (const row of rows) {
          const key = keyIndexes.map((i) => row[i] as string);
          const existing = byKey.get(JSON.stringify(key));
          if (!existing) inserted.push(key);
          else if (tenantIndex >= 0 && existing[tenantIndex] !== row[tenantIndex]) continue;
          else if (
            entity.columnNames.every((column: string, i: number) =>
              sameEmulatedText(existing[i] ?? null, row[i] ?? null, description.get(column)),
            )
          )
            continue;
          else updated.push(key);
          changed.push(row);
        }
        const statements = upsertStatements(
          entity.table,
          entity.columnNames,
          entity.key,
          changed as unknown[][],
          tenantFilter(entity, scope),
        );
        await executeAll(entity, `writing ${changed.length} rows`, statements);
        return { inserted, updated };
      }
      const columns = typed(description, entity.columnNames);
      const client = connection.client;
      const action = `writing ${rows.length} rows`;
      let statements: Statement[];
      if (options.allNew && client && supportsCopy(client)) {
        // Keys nobody stores: straight into the table, as a bulk load does.
        const copy = `COPY ${quoteTable(entity.table)} (${entity.columnNames.map((c: string) => quoteIdent(c)).join(', ')}) FROM STDIN`;
        await copyInRows(client, copy, rows).catch((error: unknown) => {
          brokenBy(error);
          throw databaseError(error, entity.name, action);
        });
        return {
          inserted: rows.map((row) =>
            entity.key.map((c) => row[entity.columnNames.indexOf(c)] as string),
          ),
          updated: [],
        };
      }
      if (client && connection.stages && supportsCopy(client)) {
        // Bulk: the rows COPY into a staging table, then one upsert from it.
        let stage = connection.stages.get(entity.name);
        if (stage === undefined) {
          stage = `meter_sync_stage_${++stagesMade}`;
          await executeAll(entity, action, [
            { text: createStage(entity.table, stage, entity.columnNames), values: [] },
          ]);
          connection.stages.set(entity.name, stage);
        } else {
          await executeAll(entity, action, [{ text: `TRUNCATE ${quoteIdent(stage)}`, values: [] }]);
        }
        await copyInRows(client, copyIntoStage(stage, entity.columnNames), rows).catch(
          (error: unknown) => {
            brokenBy(error);
            throw databaseError(error, entity.name, action);
          },
        );
        statements = [
          writeFromStage(entity.table, stage, columns, entity.key, entity.tenantColumn),
        ];
      } else {
        statements = writeTextRows(entity.table, columns, entity.key, rows, entity.tenantColumn);
      }
      const { arrays } = await executeAll(entity, action, statements);
      const inserted: TextKey[] = [];
      const updated: TextKey[] = [];
      for (const row of arrays)
        (row[0] === true ? inserted : updated).push(row.slice(1) as string[]);
      return { inserted, updated };
    },

    async bulkLoad(entity, text, scope, required) {
      const client = connection.client;
      if (!client || !supportsCopy(client) || (await emulated())) return undefined;
      const action = 'loading rows';
      const columns = entity.columnNames.map((c: string) => quoteIdent(c)).join(', ');
      await executeAll(entity, action, [{ text: savepoint(BULK_SAVEPOINT), values: [] }]);
      const undo = () =>
        executeAll(entity, action, [{ text: rollbackToSavepoint(BULK_SAVEPOINT), values: [] }]);
      let loaded: number;
      try {
        loaded = await copyInBytes(
          client,
          `COPY ${quoteTable(entity.table)} (${columns}) FROM STDIN`,
          text,
        );
      } catch (error) {
        if (error instanceof MeterSyncError || !BULK_REFUSALS.has(sqlState(error) ?? '')) {
          if (!(error instanceof MeterSyncError)) brokenBy(error);
          await undo().catch(() => undefined);
          throw error instanceof MeterSyncError ? error : databaseError(error, entity.name, action);
        }
        await undo();
        return undefined;
      }
      const tenant = tenantFilter(entity, scope);
      const conditions = required.map((column) => `${quoteIdent(column)} IS NULL`);
      const values: unknown[] = [];
      if (tenant) {
        values.push(tenant.value);
        const type = (await described(entity)).get(tenant.column)?.type ?? 'text';
        conditions.push(`${quoteIdent(tenant.column)} IS DISTINCT FROM CAST($1 AS ${type})`);
      }
      if (conditions.length > 0) {
        const { rows } = await executeAll(entity, action, [
          {
            text: `SELECT EXISTS (SELECT 1 FROM ${quoteTable(entity.table)} WHERE ${conditions.join(' OR ')}) AS refused`,
            values,
          },
        ]);
        if (rows[0]?.refused === true) {
          await undo();
          return undefined;
        }
      }
      await executeAll(entity, action, [{ text: releaseSavepoint(BULK_SAVEPOINT), values: [] }]);
      // Statistics of the empty table would have the planner hash the whole table to change a
      // few rows by key, until autovacuum analyzes it; PostgreSQL's advice after a bulk load.
      // The columns the library looks rows up by are enough, and cost less to analyze. A role
      // that does not own the table gets a warning, not an error.
      const lookedUpBy = [...entity.key, ...(tenant ? [tenant.column] : [])];
      await executeAll(entity, 'analyzing the loaded rows', [
        {
          text: `ANALYZE ${quoteTable(entity.table)} (${lookedUpBy.map((c) => quoteIdent(c)).join(', ')})`,
          values: [],
        },
      ]);
      return loaded;
    },

    async deleteKeys(entity, keys, scope) {
      if (keys.length === 0) return 0;
      const description = await described(entity);
      const tenant = tenantFilter(entity, scope);
      let statements: Statement[];
      if (await emulated()) {
        const others = new Set(
          tiesOf(entity, scope)
            ? (await emulatedOtherTenants(entity, scope, description, keys)).map((key) =>
                JSON.stringify(key),
              )
            : [],
        );
        const allowed = keys.filter((key) => !others.has(JSON.stringify(key)));
        statements = deleteStatements(entity.table, entity.key, allowed as unknown[][], tenant);
      } else {
        statements = deleteByKeyArrays(
          entity.table,
          { columns: entity.key, types: typed(description, entity.key).map((c) => c.type) },
          keys as unknown[][],
          tenant,
          notOtherTenants(entity, scope),
        );
      }
      return (await executeAll(entity, `deleting ${keys.length} rows`, statements)).count;
    },

    async setColumns(entity, keys, set, scope) {
      if (keys.length === 0) return 0;
      const description = await described(entity);
      const tenant = tenantFilter(entity, scope);
      const assignments = Object.entries(set);
      if (await emulated()) {
        // Only rows that do not hold the values yet, as the server's statement does.
        const positions = assignments.map(([column]) => entity.columnNames.indexOf(column));
        const touchable = (await emulatedStanding(entity, scope, description))
          .filter((row) => row.standing !== 'other-tenant')
          .map((row) => row.row);
        const differing = matching(entity, touchable, keys)
          .filter((row) => positions.some((p, i) => row[p] !== assignments[i]?.[1]))
          .map((row) => keyTexts(entity, row));
        const statements = updateStatements(
          entity.table,
          assignments,
          entity.key,
          differing,
          tenant,
        );
        return (await executeAll(entity, `updating ${differing.length} rows`, statements)).count;
      }
      const statements = updateByKeyArrays(
        entity.table,
        assignments,
        { columns: entity.key, types: typed(description, entity.key).map((c) => c.type) },
        keys as unknown[][],
        tenant,
        notOtherTenants(entity, scope),
      );
      return (await executeAll(entity, `updating ${keys.length} rows`, statements)).count;
    },
  };
  return db;
}

/** Bucket fingerprints from the row of `fingerprintsStatement`. */
export function fingerprintsOf(row: StoredRow | undefined): Fingerprints {
  return {
    buckets: Buffer.from(String(row?.fingerprints ?? ''), 'hex'),
    rows: Number(row?.rows ?? 0),
    nullKeys: Number(row?.null_keys ?? 0),
  };
}

function keyTexts(entity: AnyEntity, row: TextRow): string[] {
  return entity.key.map((column) => row[entity.columnNames.indexOf(column)] as string);
}

function matching(
  entity: AnyEntity,
  rows: readonly TextRow[],
  keys: readonly TextKey[],
): TextRow[] {
  const wanted = new Set(keys.map((key) => JSON.stringify(key)));
  return rows.filter((row) => wanted.has(JSON.stringify(keyTexts(entity, row))));
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
