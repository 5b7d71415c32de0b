/**
 * The subset of node-postgres the library uses, typed structurally: a `pg.Pool`, pg-mem's
 * `adapters.createPg()` pool and other pg-compatible pools all fit without wrappers.
 */

/** A query as node-postgres accepts it. */
export interface PgQueryConfig {
  readonly text: string;
  readonly values?: unknown[];
  /** `array`: rows as arrays of values, in column order. */
  readonly rowMode?: 'array';
  /** `extended`: parse, bind and execute, even without parameters (one statement only). */
  readonly queryMode?: 'extended';
}

/** What a query resolves to. */
export interface PgQueryResult {
  // biome-ignore lint/suspicious/noExplicitAny: rows are untyped driver output.
  readonly rows: any[];
  readonly rowCount: number | null;
  readonly fields?: ReadonlyArray<{
    readonly name: string;
    readonly dataTypeID: number;
    /** The table a column was read from, and its number there (0 for an expression). */
    readonly tableID?: number;
    readonly columnID?: number;
  }>;
}

/** A connection checked out of a pool. */
export interface PgClient {
  query(config: PgQueryConfig): Promise<PgQueryResult>;
  /** Returns the connection; passing an error (or `true`) destroys it instead. */
  release(error?: Error | boolean): void;
  /** node-postgres emits 'error' when a checked-out connection dies between two queries. */
  on?(event: 'error', listener: (error: Error) => void): unknown;
  removeListener?(event: 'error', listener: (error: Error) => void): unknown;
}

/** A pool of connections: the only thing meter-sync needs from a database. */
export interface PgPool {
  connect(): Promise<PgClient>;
  /** node-postgres: connections open, and those of them idle. */
  readonly totalCount?: number;
  readonly idleCount?: number;
  /** node-postgres: the most connections the pool opens (`max`, default 10). */
  readonly options?: { readonly max?: number };
}

/**
 * Whether `pool` says it can hand out another connection now without waiting for one to be
 * returned: an idle one, or room to open one. False where it does not say (pg-mem, other
 * pools), so a caller holding a connection never waits on a pool of one for a second.
 */
export function hasSpareConnection(pool: PgPool): boolean {
  const { totalCount, idleCount } = pool;
  const max = pool.options?.max ?? 10;
  if (typeof totalCount !== 'number' || typeof idleCount !== 'number') return false;
  return idleCount > 0 || totalCount < max;
}

/** A result row as its values in column order: drivers return arrays (`rowMode: 'array'`) or objects. */
export function rowValues(row: unknown): unknown[] {
  if (Array.isArray(row)) return row;
  return row !== null && typeof row === 'object' ? Object.values(row) : [];
}

/**
 * Listens for the loss of a checked-out connection until the returned function is called (call
 * it before release). A pool listens to its idle connections only: an 'error' event of a
 * checked-out one that nobody listens to (a server restart, a terminated backend) would end
 * the process.
 */
export function onConnectionLost(client: PgClient, listener: (error: Error) => void): () => void {
  client.on?.('error', listener);
  return () => {
    client.removeListener?.('error', listener);
  };
}
