import type { AnyEntity } from '../../entity/types.js';
import { DatabaseError, MeterSyncError, messageOf, SchemaError, sqlState } from '../../errors.js';

// Advice for the SQLSTATEs a sync most often meets; the driver's message says the rest.
const ADVICE: Record<string, string> = {
  '42P01': 'create the table (see syncSchemaSql) or fix the definition',
  '42703': 'add the column or remove it from the definition',
  '42P10': 'the target table needs a unique constraint or primary key on exactly the key columns',
  '23503': 'a foreign key refused the change; check the entity references',
  '23505': 'a unique constraint other than the key refused the change',
  '22001': 'a value is too long for the target column; widen the column',
  '25006': 'the source is read-only; source.query must not write',
  '42501': 'the role lacks a privilege; the source needs SELECT, the target INSERT, UPDATE, DELETE',
  '57014': 'the statement was cancelled (statement_timeout)',
  '55P03': 'a lock was not granted in time (lock_timeout); another session holds it',
  '40001': 'a concurrent transaction conflicted; the next run retries',
  '40P01': 'a deadlock with another transaction; trying again can succeed',
  '57P01':
    'the server ended the connection (shutdown or pg_terminate_backend); trying again can succeed',
  '57P03': 'the server is starting up, shutting down or in recovery; try again shortly',
  '57P04': 'on a hot standby: the database was dropped on the primary',
  '53300':
    "too many connections (max_connections, or the role's CONNECTION LIMIT); use fewer or raise the limit",
  '08006': 'the connection failed; trying again can succeed',
};

/** Wraps a driver error as a `DatabaseError` naming the entity and what was being done. */
export function databaseError(
  error: unknown,
  entity: string | undefined,
  action: string,
): MeterSyncError {
  if (error instanceof MeterSyncError) return error;
  const code = sqlState(error);
  const details = error as { column?: unknown; detail?: unknown };
  const column = typeof details.column === 'string' ? details.column : undefined;
  const advice = code ? ADVICE[code] : undefined;
  const detail = typeof details.detail === 'string' ? ` (${details.detail})` : '';
  const prefix = entity === undefined ? '' : `${entity}: `;
  const message = `${prefix}${action} failed: ${messageOf(error)}${detail}${code ? ` [SQLSTATE ${code}]` : ''}${advice ? `; ${advice}` : ''}`;
  return new DatabaseError(message, { entity, column, code, cause: error });
}

/**
 * A failure reading an entity on the source. A missing table or column there is schema drift:
 * a `SchemaError` that names it and says what to do; anything else is a `DatabaseError`.
 */
export function sourceError(error: unknown, entity: AnyEntity, action: string): MeterSyncError {
  if (error instanceof MeterSyncError) return error;
  const code = sqlState(error);
  const what =
    entity.source.kind === 'query'
      ? 'the source query'
      : `source table "${sourceTableName(entity)}"`;
  if (code === '42703') {
    const column = /column "?(?:[^".]+\.)?([^"]+)"? does not exist/.exec(messageOf(error))?.[1];
    return new SchemaError(
      `${entity.name}: ${what} has no column "${column ?? '?'}" (add it there, or map the definition's column with source.columns)`,
      { entity: entity.name, column, cause: error },
    );
  }
  if (code === '42P01') {
    return new SchemaError(
      `${entity.name}: ${what} does not exist on the source (${messageOf(error)})`,
      {
        entity: entity.name,
        cause: error,
      },
    );
  }
  return databaseError(error, entity.name, action);
}

function sourceTableName(entity: AnyEntity): string {
  if (entity.source.kind !== 'table') return '';
  const { schema, name } = entity.source.table;
  return schema === undefined ? name : `${schema}.${name}`;
}
