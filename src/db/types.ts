import type { AnyEntity, KeyOf, RowOf } from '../entity/types.js';

/** A tenant identifier, as stored in an entity's `tenantColumn`. */
export type TenantId = string | number | bigint;

/** Which rows an operation covers: one tenant's rows of a tenant-scoped entity, or all rows. */
export interface Scope {
  /** Limits tenant-scoped entities to this tenant. Ignored for global entities. */
  readonly tenantId?: TenantId | undefined;
}

/** A row as the database driver returned it, before schema parsing. */
export type StoredRow = Readonly<Record<string, unknown>>;

/** A target column as the database describes it. */
export interface ColumnInfo {
  readonly name: string;
  /** The SQL type as the database prints it, e.g. `bigint`, `jsonb`, `text[]`. */
  readonly type: string;
  /** How values are sent for this column: JSON text, a PostgreSQL array, or as they are. */
  readonly kind: 'json' | 'array' | 'scalar';
  /** `pg_type.typname` (e.g. `int8`, `_text`), where the catalog tells. */
  readonly typeName?: string | undefined;
  /** `pg_type.typcategory` (`A` for arrays), where the catalog tells. */
  readonly category?: string | undefined;
  /** For arrays, the element's `typname`, where the catalog tells. */
  readonly elementTypeName?: string | undefined;
}

/** The columns of a target table, by name. `undefined` from `describe` means the table is missing. */
export type TableDescription = ReadonlyMap<string, ColumnInfo>;

/**
 * The sync database as the engine writes it: generic, entity-typed operations that serve every
 * entity (built-in or custom), composite keys included. `createPgSyncDatabase` implements it
 * for any pg-compatible pool.
 *
 * Every operation touches only the entity's own columns: other columns of the table (a local
 * surrogate id, local notes) are never read or written. A `scope` limits tenant-scoped
 * entities to one tenant; rows of other tenants are never read, changed or deleted through it.
 */
export interface SyncDatabase {
  /** The entity's rows in scope, parsed through its schema. Throws `DataError` on a row the schema rejects. */
  query<E extends AnyEntity>(entity: E, scope?: Scope): Promise<RowOf<E>[]>;
  /** The entity's rows in scope as stored, unparsed; `columns` narrows the columns read. */
  scan(
    entity: AnyEntity,
    options?: { scope?: Scope; columns?: readonly string[] },
  ): Promise<StoredRow[]>;
  /** The target table's columns, or `undefined` when the table does not exist. */
  describe(entity: AnyEntity): Promise<TableDescription | undefined>;
  /**
   * Inserts rows, or updates the row with the same key. With a scope, an existing row of another
   * tenant is left alone. Returns the number of rows written.
   */
  upsert<E extends AnyEntity>(entity: E, rows: readonly RowOf<E>[], scope?: Scope): Promise<number>;
  /** Deletes the rows with these keys (within scope). Returns the number deleted. */
  deleteByKey<E extends AnyEntity>(
    entity: E,
    keys: readonly KeyOf<E>[],
    scope?: Scope,
  ): Promise<number>;
  /** Sets columns on the rows with these keys (within scope): a soft delete. Returns the number changed. */
  updateByKey<E extends AnyEntity>(
    entity: E,
    keys: readonly KeyOf<E>[],
    set: Readonly<Partial<RowOf<E>>>,
    scope?: Scope,
  ): Promise<number>;
  /** Of these keys, those that exist in the table outside the scope (under another tenant). */
  keysOutsideScope<E extends AnyEntity>(
    entity: E,
    keys: readonly KeyOf<E>[],
    scope: Scope,
  ): Promise<KeyOf<E>[]>;
  /**
   * Runs `work` in one transaction: committed when it resolves, rolled back when it throws.
   * A nested call joins the outer transaction.
   */
  transaction<T>(work: (db: SyncDatabase) => Promise<T>, options?: TransactionOptions): Promise<T>;
}

/** Limits for one transaction (PostgreSQL only; ignored by emulators). */
export interface TransactionOptions {
  /** `statement_timeout` for each statement, in milliseconds. */
  readonly statementTimeoutMs?: number | undefined;
  /** `lock_timeout`: how long a statement may wait for a row or table lock, in milliseconds. */
  readonly lockTimeoutMs?: number | undefined;
}

/** The source side of one run: reads inside one read-only snapshot. */
export interface SourceSnapshot {
  /** The entity's rows in scope, as stored, with target column names. */
  read(entity: AnyEntity, scope: Scope): Promise<StoredRow[]>;
  /** Ends the snapshot transaction and returns the connection. Safe to call twice. */
  close(): Promise<void>;
}
