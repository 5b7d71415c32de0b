import type { AnyEntity, RowOf, TableName } from '../entity/types.js';
import type { Logger } from '../logger.js';

/** A tenant identifier, as stored in an entity's `tenantColumn`. */
export type TenantId = string | number | bigint;

/**
 * Which rows an operation covers: one tenant's rows of a tenant-scoped entity; the rows of a
 * global entity that a tenant's rows tie to it (`parents`); or all rows.
 */
export interface Scope {
  /** Limits tenant-scoped entities to this tenant, and global ones with `parents` through it. */
  readonly tenantId?: TenantId | undefined;
  /**
   * For a global entity in a tenant's run: its references to tenant-scoped parents. Reads cover
   * the rows each of whose references has a NULL column or names a parent row of `tenantId`
   * (on the side read: source rows by the source's parents, target rows by the target's).
   * Writes leave alone every row that names a parent row of another tenant.
   */
  readonly parents?: readonly ParentReference[] | undefined;
}

/** A global entity's reference to a tenant-scoped parent, which ties its rows to a tenant. */
export interface ParentReference {
  readonly parent: AnyEntity;
  /** The child's columns, in the order of the parent's key. */
  readonly columns: readonly string[];
}

/**
 * Source rows of a global entity left out of a tenant's scope only because a parent row they
 * name is missing on the source altogether: no tenant's run reads them, yet each is an orphan.
 */
export interface DanglingRows {
  readonly count: number;
  /** Some of their keys (as `rows` gives keys). */
  readonly keys: readonly TextKey[];
  /** The parents (entity names) missing for at least one of them. */
  readonly parents: readonly string[];
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
  /** Declared NOT NULL, where the catalog tells. */
  readonly notNull?: boolean | undefined;
}

/** The columns of a target table, by name. `undefined` from `describe` means the table is missing. */
export type TableDescription = ReadonlyMap<string, ColumnInfo>;

/** A column's value as PostgreSQL's text output, or `null` for SQL NULL. */
export type TextValue = string | null;

/** A row as text values, in `entity.columnNames` order. */
export type TextRow = readonly TextValue[];

/** A key as the text of its columns in the target's types, in `entity.key` order. */
export type TextKey = readonly string[];

/**
 * How the two sides' rows are compared. `sql`: both servers compute the same typed 64-bit
 * hashes (PostgreSQL 11+), and unchanged rows never leave them. `text`: whole rows travel as
 * text and are compared here (engines without those functions, such as pg-mem).
 */
export type HashMode = 'sql' | 'text';

/** Which buckets of keys to read: `count` buckets by key hash, all or `only` these. */
export interface BucketSelection {
  readonly count: number;
  readonly only?: readonly number[] | undefined;
}

/** What to read of an entity. */
export interface ReadRequest {
  readonly scope: Scope;
  /** The target's columns: values are read as these types (the source's are cast to them). */
  readonly columns: TableDescription;
  readonly hash: HashMode;
  /** Only keys of these buckets; every key when absent. */
  readonly buckets?: BucketSelection | undefined;
  /**
   * Source rows: `false` reads keys and hashes only (values come from `rowsByKey` for the rows
   * that differ); default true. Needs `hash: 'sql'`.
   */
  readonly values?: boolean | undefined;
  /**
   * Only rows changed at or after this watermark (a `ChangeTracking.watermark` of an earlier
   * snapshot), source only. Ask only where `unreadableSince` found nothing against it.
   */
  readonly changedSince?: string | undefined;
  /**
   * With `changedSince`: where the census of this snapshot found the changed rows
   * (`Census.changedAt`), so that only those are read rather than every row scanned again.
   */
  readonly changedAt?: string | undefined;
  /**
   * For a census: past this many changed rows (the greater of `rows` and `share` of the rows in
   * scope) they will not be read one by one, and the census need not say where they are.
   */
  readonly changedReadUpTo?: { readonly rows: number; readonly share: number } | undefined;
  /**
   * For `rows`: at most this many rows, the first the source finds, in no order: a sample of
   * the rows asked for rather than all of them in key order.
   */
  readonly sample?: number | undefined;
  /** Keys only: every row's hash is the same, so only keys present on one side differ. */
  readonly keysOnly?: boolean | undefined;
  /**
   * For a key set: each key packed into 64 bits, these bits a key column in key order (from
   * `SourceSnapshot.packedKey`), rather than hashed. Both sides of a comparison read it alike.
   */
  readonly packedKey?: readonly number[] | undefined;
  /**
   * The values a soft delete sets (`onMissing.set`, as text for the target's types): `count`
   * leaves out the rows that hold them all, and the census counts the others (`Census.live`).
   */
  readonly softDeleted?: Readonly<Record<string, TextValue>> | undefined;
}

/** Per-bucket fingerprints of the rows in scope: 8 bytes a bucket, in bucket order. */
export interface Fingerprints {
  readonly buckets: Uint8Array;
  /** Rows with a complete key. */
  readonly rows: number;
  /** Rows with a NULL in the key (the source's data at fault). */
  readonly nullKeys: number;
}

/**
 * The keys in scope, 8 bytes each (big-endian), in no order: their 64-bit hashes, or with
 * `ReadRequest.packedKey` the keys themselves packed, which no two keys share.
 */
export interface KeySet {
  readonly hashes: Uint8Array;
}

/** The target's `KeySet`, which can name the keys behind some of its hashes. */
export interface TargetKeySet extends KeySet {
  /**
   * The keys (as `keyHashes` gives keys) of the rows at these positions of `hashes` (counted in
   * hashes), where each still holds the key it was read with; rows changed since are left out.
   * Packed keys are the keys themselves: each position gives its own.
   */
  keysAt(positions: readonly number[]): Promise<TextKey[]>;
}

/** The target's `KeySet` as `SyncDatabase.keySet` reads it. */
export interface TargetKeySetRead {
  /**
   * True where the keys are read on a connection of their own: they are the target's as last
   * committed, without the transaction's writes, and it may write meanwhile. False where they
   * are read in the transaction: it must not write until they are.
   */
  readonly apart: boolean;
  /**
   * `undefined` where this database cannot read keys in bulk, or where a key asked for packed
   * holds a value wider than its bits (the source can hold no such key).
   */
  readonly keys: Promise<TargetKeySet | undefined>;
}

/** A key and the hash of its row's values (as `HashMode` says). */
export interface KeyHash {
  readonly key: TextKey;
  readonly hash: string;
}

/** A source row: its key, hash and text values. */
export interface SourceRow extends KeyHash {
  readonly values: TextRow;
}

/** Rows in scope on the source, counted in one pass of the snapshot. */
export interface Census {
  /** Rows with a complete key. */
  readonly rows: number;
  /** Rows with a NULL in the key. */
  readonly nullKeys: number;
  /** Rows with a complete key changed at or after the watermark asked about. */
  readonly changed: number;
  /** With the request's `softDeleted`: of `rows`, those that do not hold all its values. */
  readonly live?: number | undefined;
  /**
   * Where the changed rows are in this snapshot, where the source can tell (opaque): pass it as
   * `ReadRequest.changedAt` to the read of the changed rows.
   */
  readonly changedAt?: string | undefined;
}

/**
 * What a source snapshot knows of its changes: where it stands, so a later run can read only
 * the rows changed since, and what makes such a read exact.
 */
export interface ChangeTracking {
  /** The source's identity (system, timeline, database): a watermark from another is void. */
  readonly origin: string;
  /** This snapshot's watermark: every row it does not see was written at or after it. */
  readonly watermark: string;
  /** Why rows changed since `watermark` cannot be read exactly in this snapshot; else undefined. */
  unreadableSince(watermark: string): string | undefined;
  /** Whether `watermark` should move on even when nothing changed, to stay far from the horizon. */
  ageing(watermark: string): boolean;
  /**
   * What must not change under a watermark: the identity of the entity's source table and its
   * columns. `undefined` where changes cannot be read by row (a query, a view).
   */
  tableIdentity(entity: AnyEntity): Promise<string | undefined>;
  /** The rows in scope, and those changed at or after `since`, counted in one pass. */
  census(entity: AnyEntity, request: ReadRequest, since: string): Promise<Census>;
}

/** Where an entity's last sync left off, stored in the sync database with its changes. */
export interface Watermark {
  /** `ChangeTracking.origin` of the source it came from. */
  readonly origin: string;
  /** `ChangeTracking.watermark` of the snapshot the entity was last synced from. */
  readonly position: string;
  /** The definition, target columns and source table it holds for; another voids it. */
  readonly fingerprint: string;
  /** When every row of the entity was last compared. */
  readonly verifiedAt: Date;
}

/** What a database can do for the pipeline. */
export interface Features {
  /** Typed row hashes and bucket fingerprints in SQL (`HashMode` `sql`). */
  readonly sqlHash: boolean;
  /** ROLLBACK undoes writes. */
  readonly rollback: boolean;
}

/** A row of a child entity that references rows about to be deleted. */
export interface ReferencingRow {
  readonly key: TextKey;
  /** The child's reference columns, in the parent's key order. */
  readonly parentKey: TextKey;
  /**
   * Whether the run may touch the row: its tenant's, for a tenant-scoped child; for a global
   * child with `scope.parents`, no reference names a parent row of another tenant.
   */
  readonly inScope: boolean;
}

/** What a batch of writes did. */
export interface Written {
  readonly inserted: readonly TextKey[];
  readonly updated: readonly TextKey[];
}

/**
 * The sync database as the engine uses it: generic, entity-typed operations that serve every
 * entity (built-in or custom), composite keys included. `createPgSyncDatabase` implements it
 * for any pg-compatible pool; other stores can implement it too (the tests run one in memory).
 *
 * Values and keys travel as PostgreSQL text (`TextRow`, `TextKey`). Reads return keys in key
 * order: ascending integers for integer key columns, code-point order of the text for the rest.
 * Every operation touches only the entity's own columns, and a `scope` limits tenant-scoped
 * entities to one tenant: rows of other tenants are never read, changed or deleted through it.
 * With `scope.parents`, the same holds for a global entity's rows that name another tenant's
 * parent rows.
 */
export interface SyncDatabase {
  /** What this database can do. */
  features(): Promise<Features>;
  /** The target table's columns, or `undefined` when the table does not exist. */
  describe(entity: AnyEntity): Promise<TableDescription | undefined>;
  /** The entity's rows in scope, parsed through its schema. Throws `DataError` on a row it rejects. */
  query<E extends AnyEntity>(entity: E, scope?: Scope): Promise<RowOf<E>[]>;
  /** Whether the table holds no row at all, of any tenant. */
  isEmpty(entity: AnyEntity): Promise<boolean>;
  /** About how many rows are in scope (a planner's estimate will do; 0 only when none). */
  estimateRows(entity: AnyEntity, scope: Scope): Promise<number>;
  /** Bucket fingerprints of the rows in scope (`features().sqlHash` only). */
  fingerprints(entity: AnyEntity, request: ReadRequest): Promise<Fingerprints>;
  /** Keys and row hashes in scope, in key order, in batches. */
  keyHashes(entity: AnyEntity, request: ReadRequest): AsyncIterable<readonly KeyHash[]>;
  /** Keys and row hashes of the rows in scope with these keys (as `keyHashes` gives keys); any order. */
  keyHashesOf(
    entity: AnyEntity,
    request: ReadRequest,
    keys: readonly TextKey[],
  ): Promise<KeyHash[]>;
  /** How many rows in scope have a complete key. */
  count(entity: AnyEntity, request: ReadRequest): Promise<number>;
  /**
   * Begins reading every key in scope with a complete key, as hashes the source's `keySet`
   * matches, or packed with `request.packedKey`; inside a transaction.
   */
  keySet?(entity: AnyEntity, request: ReadRequest): TargetKeySetRead;
  /**
   * What changes when the table is replaced or emptied other than by a sync (recreated,
   * truncated, rewritten): a watermark holds only for the table it was taken with.
   */
  tableIdentity(entity: AnyEntity): Promise<string>;
  /**
   * The watermarks stored for an entity and scope (the tenant as text, '' for none), one per
   * source; where this database cannot keep them, why not.
   */
  watermarks(
    entity: AnyEntity,
    scope: string,
  ): Promise<Watermark[] | { readonly unavailable: string }>;
  /**
   * Inside the entity's transaction: stores its watermark for the scope, replacing those of any
   * source; `undefined` removes them, so the next run compares every row.
   */
  saveWatermark(entity: AnyEntity, scope: string, watermark: Watermark | undefined): Promise<void>;
  /** Of these keys, those stored, in any tenant. */
  existingKeys(entity: AnyEntity, keys: readonly TextKey[]): Promise<TextKey[]>;
  /**
   * Of these keys, those stored under another tenant than the scope's (for a global entity with
   * `scope.parents`: whose row names a parent row of another tenant).
   */
  keysOutsideScope(entity: AnyEntity, keys: readonly TextKey[], scope: Scope): Promise<TextKey[]>;
  /** Rows of `child` whose `columns` (in the parent's key order) hold one of `parentKeys`, any tenant. */
  referencing(
    child: AnyEntity,
    columns: readonly string[],
    parentKeys: readonly TextKey[],
    scope: Scope,
  ): Promise<ReferencingRow[]>;
  /**
   * Inserts rows, or updates the stored row with the same key where any value differs by
   * content. A stored row of another tenant is left alone. Returns the keys written. With
   * `allNew`, the caller knows none of the keys is stored: the rows may go in by the fastest way.
   */
  write(
    entity: AnyEntity,
    rows: readonly TextRow[],
    scope: Scope,
    options?: { readonly allNew?: boolean },
  ): Promise<Written>;
  /**
   * Loads rows given as COPY text into the table, which the caller knows to be empty, and checks
   * them: every row of the scope's tenant, and no NULL in `required` columns. Returns the rows
   * loaded; or `undefined`, having loaded nothing, where a row breaks the table's constraints or
   * these checks (the caller then takes the rows one by one, to name the row at fault) or the
   * database cannot load text.
   */
  bulkLoad?(
    entity: AnyEntity,
    text: AsyncIterable<Uint8Array>,
    scope: Scope,
    required: readonly string[],
  ): Promise<number | undefined>;
  /** Deletes the rows with these keys (within scope). Returns how many were deleted. */
  deleteKeys(entity: AnyEntity, keys: readonly TextKey[], scope: Scope): Promise<number>;
  /** Sets columns on the rows with these keys (within scope) where they differ: a soft delete. */
  setColumns(
    entity: AnyEntity,
    keys: readonly TextKey[],
    set: Readonly<Record<string, TextValue>>,
    scope: Scope,
  ): Promise<number>;
  /**
   * Runs `work` in one transaction: committed when it resolves, rolled back when it throws.
   * A nested call joins the outer transaction.
   */
  transaction<T>(work: (db: SyncDatabase) => Promise<T>, options?: TransactionOptions): Promise<T>;
  /** Runs `work` on one dedicated connection: a run's transactions all use it. */
  session<T>(work: (db: SyncDatabase) => Promise<T>): Promise<T>;
  /**
   * Inside a session: takes the sync lock, so two syncs into one database never overlap. With
   * `wait`, blocks until it is free; otherwise resolves false (or rejects with a `LockedError`
   * that names the holder) when another sync holds it. Stores without locks resolve true.
   * `logger` hears how the lock was taken where that is worth knowing.
   */
  lock(wait: boolean, options?: { readonly logger?: Logger | undefined }): Promise<boolean>;
  /** Releases the sync lock taken by `lock`. */
  unlock(): Promise<void>;
  /**
   * Whether an error this database threw may pass by itself (a lost connection, a serialization
   * failure), so that the same work, tried again in a new transaction, can succeed. The engine
   * retries an entity only on such errors; without this method, none of this database's are.
   */
  isTransient?(error: unknown): boolean;
}

/** Limits for one transaction (PostgreSQL only; ignored by emulators). */
export interface TransactionOptions {
  /** The entity the transaction is for, named in the errors it raises before `work` runs. */
  readonly entity?: string | undefined;
  /** `statement_timeout` for each statement, in milliseconds. */
  readonly statementTimeoutMs?: number | undefined;
  /** `lock_timeout`: how long a statement may wait for a row or table lock, in milliseconds. */
  readonly lockTimeoutMs?: number | undefined;
}

/** The source side of one run: reads inside one read-only snapshot. */
export interface SourceSnapshot {
  /** What the source can do. */
  readonly features: Features;
  /** How this snapshot can tell changed rows, or why it cannot. */
  readonly changes: ChangeTracking | { readonly unavailable: string };
  /** Bucket fingerprints of the entity's rows in scope (`features.sqlHash` only). */
  fingerprints(entity: AnyEntity, request: ReadRequest): Promise<Fingerprints>;
  /**
   * The values of the rows in scope with a complete key, as PostgreSQL's COPY text (one line a
   * row, `entity.columnNames` in order), in chunks; `undefined` where the source cannot.
   */
  bulkText?(entity: AnyEntity, request: ReadRequest): AsyncIterable<Uint8Array> | undefined;
  /**
   * The entity's rows in scope with a complete key, in key order, in batches (with `sample`,
   * that many at most, in no order).
   */
  rows(entity: AnyEntity, request: ReadRequest): AsyncIterable<readonly SourceRow[]>;
  /** The rows in scope with these keys (as `rows` gives keys), values included; any order. */
  rowsByKey(
    entity: AnyEntity,
    request: ReadRequest,
    keys: readonly TextKey[],
  ): Promise<SourceRow[]>;
  /**
   * Every key in scope with a complete key, as hashes; `undefined` where this source cannot read
   * them in bulk (then keys are compared by bucket).
   */
  keySet?(entity: AnyEntity, request: ReadRequest): Promise<KeySet | undefined>;
  /**
   * Reads ahead what the entity's reads need to know of the source (its columns' types), so
   * that it overlaps other work; each read does it itself otherwise.
   */
  prepare?(entity: AnyEntity, request: ReadRequest): Promise<void>;
  /**
   * How key sets can carry the entity's keys themselves (`ReadRequest.packedKey`): the bits each
   * key column takes by the source's types, where every one is an integer on both sides and
   * they take 64 bits at most together; `undefined` where keys are hashed.
   */
  packedKey?(entity: AnyEntity, request: ReadRequest): Promise<readonly number[] | undefined>;
  /** Up to `limit` rows in scope with a NULL in the key. */
  nullKeyRows(entity: AnyEntity, request: ReadRequest, limit: number): Promise<TextRow[]>;
  /**
   * With `request.scope.parents`: the rows with a complete key outside the scope only because a
   * parent row they name is missing on the source (no reference names another tenant's parent),
   * counted, with up to `limit` keys. A parent read through a `source.query` sees one tenant's
   * rows only, so a reference to it never counts as missing.
   */
  danglingRows?(entity: AnyEntity, request: ReadRequest, limit: number): Promise<DanglingRows>;
  /** Ends the snapshot transaction and returns the connection. Safe to call twice. */
  close(): Promise<void>;
}

/** Opens the source side of a run. */
export interface SourceDatabase {
  /** A new snapshot: each call sees the source as it is then. */
  open(options: {
    readonly statementTimeoutMs?: number | undefined;
    /**
     * Tables the run reads: locked in ACCESS SHARE mode before the snapshot is taken, so a
     * concurrent TRUNCATE (which no snapshot sees) cannot make them read empty.
     */
    readonly tables?: readonly TableName[] | undefined;
    /**
     * Settles once the snapshot may be taken (the run holds the sync lock): the connection is
     * made meanwhile. Where it rejects, the connection goes back and `open` rejects with its error.
     */
    readonly notBefore?: Promise<unknown> | undefined;
    /**
     * The run's tenant, known to the snapshot from its start for the reads that take no
     * parameters (COPY).
     */
    readonly tenantId?: TenantId | undefined;
  }): Promise<SourceSnapshot>;
  /** As `SyncDatabase.isTransient`, for the errors of this source. */
  isTransient?(error: unknown): boolean;
}
