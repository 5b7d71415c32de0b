import type { AnyEntity } from '../../entity/types.js';
import { DatabaseError } from '../../errors.js';
import type { Scope, SourceSnapshot, StoredRow } from '../types.js';
import { type Capabilities, detectCapabilities } from './capabilities.js';
import { databaseError, sourceError } from './errors.js';
import { toParameter } from './params.js';
import { onConnectionLost, type PgClient, type PgPool } from './pool.js';
import {
  BEGIN_SNAPSHOT,
  COMMIT,
  releaseSavepoint,
  rollbackToSavepoint,
  type Statement,
  savepoint,
  selectFromQuery,
  selectStatement,
  setLocal,
} from './sql.js';
import { typeParsersFor } from './type-parsers.js';

/** A source snapshot on a pg-compatible pool, with what its engine can do. */
export interface PgSourceSnapshot extends SourceSnapshot {
  readonly capabilities: Capabilities;
  /** The snapshot's connection, for statements of the set-based path. */
  readonly client: PgClient;
  /**
   * Runs `work` inside a savepoint: a failure rolls back to it, so the snapshot stays usable
   * for the next entity. Errors are wrapped as `DatabaseError`s naming the entity.
   */
  attempt<T>(entity: AnyEntity, action: string, work: (client: PgClient) => Promise<T>): Promise<T>;
}

const READ_SAVEPOINT = 'meter_sync_read';

/**
 * Opens one `REPEATABLE READ READ ONLY` transaction on the source: every read of the run sees the
 * same snapshot, and PostgreSQL itself refuses any write. Only SELECT, SAVEPOINT and transaction
 * control statements are sent, so a role with SELECT privilege is enough. A failed read is rolled
 * back to a savepoint so the next entity can still read.
 */
export async function openSourceSnapshot(
  pool: PgPool,
  options: { readonly statementTimeoutMs?: number | undefined } = {},
): Promise<PgSourceSnapshot> {
  let capabilities: Capabilities;
  let client: PgClient;
  try {
    capabilities = await detectCapabilities(pool);
    client = await pool.connect();
  } catch (error) {
    throw databaseError(error, undefined, 'connecting to the source');
  }
  let connectionError: Error | undefined;
  const stopListening = onConnectionLost(client, (error) => {
    connectionError ??= error;
  });
  try {
    await client.query({ text: BEGIN_SNAPSHOT });
    if (options.statementTimeoutMs !== undefined && capabilities.engine === 'postgresql') {
      await client.query(setLocal('statement_timeout', options.statementTimeoutMs));
    }
  } catch (error) {
    stopListening();
    client.release(error instanceof Error ? error : true);
    throw databaseError(error, undefined, 'starting the source snapshot');
  }

  /** The entity whose read lost the connection, if one did. */
  let lostWhile: string | undefined;
  let closed = false;

  const guarded = async (text: string) => {
    try {
      await client.query({ text });
    } catch (error) {
      connectionError = error instanceof Error ? error : new Error(String(error));
      throw error;
    }
  };

  const attempt = async <T>(
    entity: AnyEntity,
    action: string,
    work: (client: PgClient) => Promise<T>,
  ) => {
    if (closed) {
      throw databaseError(new Error('the source snapshot is closed'), entity.name, action);
    }
    if (lostWhile !== undefined) {
      // A new connection would be a new snapshot: the run's reads could no longer agree.
      throw new DatabaseError(
        `${entity.name}: not read: the source connection was lost while reading ${lostWhile}, and the run's snapshot with it`,
        { entity: entity.name, cause: connectionError },
      );
    }
    if (capabilities.transactional) await guarded(savepoint(READ_SAVEPOINT));
    try {
      const result = await work(client);
      if (capabilities.transactional) await guarded(releaseSavepoint(READ_SAVEPOINT));
      return result;
    } catch (error) {
      if (capabilities.transactional && connectionError === undefined) {
        await guarded(rollbackToSavepoint(READ_SAVEPOINT)).catch(() => undefined);
      }
      if (connectionError !== undefined) lostWhile ??= entity.name;
      throw sourceError(error, entity, action);
    }
  };

  return {
    capabilities,
    client,
    attempt,

    read(entity: AnyEntity, scope: Scope): Promise<StoredRow[]> {
      const statement = sourceStatement(entity, scope);
      return attempt(entity, 'reading the source', async () => {
        const result = await client.query({ ...statement, ...typeParsersFor(capabilities) });
        return result.rows as StoredRow[];
      });
    },

    async close() {
      if (closed) return;
      closed = true;
      if (connectionError === undefined) {
        // Read-only: COMMIT and ROLLBACK are the same; COMMIT also ends an aborted transaction.
        await guarded(COMMIT).catch(() => undefined);
      }
      stopListening();
      client.release(connectionError);
    },
  };
}

/** The SELECT that reads an entity on the source, with target column names. */
export function sourceStatement(entity: AnyEntity, scope: Scope): Statement {
  const tenant =
    entity.tenantColumn !== undefined && scope.tenantId !== undefined
      ? toParameter(scope.tenantId, 'scalar')
      : undefined;
  const source = entity.source;
  if (source.kind === 'query') return selectFromQuery(source.query, entity.columnNames, tenant);
  const remote = (column: string) => source.columns[column] ?? column;
  return selectStatement(
    source.table,
    entity.columnNames.map((column: string) => ({ name: remote(column), as: column })),
    tenant === undefined || entity.tenantColumn === undefined
      ? undefined
      : { column: remote(entity.tenantColumn), value: tenant },
  );
}
