/**
 * Error classes. Every error meter-sync raises is a {@link MeterSyncError}; the subclass says
 * what kind of failure it is, and `entity` / `key` / `column` say where.
 */

/** Where an error happened, as far as it is known. */
export interface ErrorContext {
  /** The entity (definition name) the error belongs to. */
  entity?: string | undefined;
  /** The row's key, as `column=value` pairs, when one row is at fault. */
  key?: Readonly<Record<string, unknown>> | undefined;
  /** The column at fault. */
  column?: string | undefined;
  /** The underlying error (driver error, zod error, …). */
  cause?: unknown;
}

/** Base class of every error meter-sync raises. */
export class MeterSyncError extends Error {
  readonly entity: string | undefined;
  readonly key: Readonly<Record<string, unknown>> | undefined;
  readonly column: string | undefined;

  constructor(message: string, context: ErrorContext = {}) {
    super(message, context.cause === undefined ? undefined : { cause: context.cause });
    this.name = new.target.name;
    this.entity = context.entity;
    this.key = context.key;
    this.column = context.column;
  }
}

/** An entity definition or registry is invalid. Raised by `defineEntity` / `createRegistry`. */
export class DefinitionError extends MeterSyncError {}

/** The options given to `performSync` (or another entry point) are invalid. Raised before any I/O. */
export class ConfigurationError extends MeterSyncError {}

/** A table or column the definition needs is missing or unusable on the source or the target. */
export class SchemaError extends MeterSyncError {}

/** A row's data is invalid: schema violation, NULL or duplicate key, row outside the tenant. */
export class DataError extends MeterSyncError {}

/** Another sync holds the sync lock on the target database. */
export class LockedError extends MeterSyncError {}

/** The database refused a statement or the connection failed. Carries the driver's error as `cause`. */
export class DatabaseError extends MeterSyncError {
  /** The SQLSTATE code reported by PostgreSQL, when there is one. */
  readonly code: string | undefined;

  constructor(message: string, context: ErrorContext & { code?: string | undefined } = {}) {
    super(message, context);
    this.code = context.code;
  }
}

/** Formats a key for messages: `(device_id=1, register_id=7)`. */
export function formatKey(key: Readonly<Record<string, unknown>>): string {
  const parts = Object.entries(key).map(([column, value]) => `${column}=${formatValue(value)}`);
  return `(${parts.join(', ')})`;
}

/** Formats one value for messages, shortened so a huge value cannot flood a log line. */
export function formatValue(value: unknown): string {
  let text: string;
  if (value === null || value === undefined) text = 'NULL';
  else if (typeof value === 'string') text = JSON.stringify(value);
  else if (typeof value === 'bigint') text = value.toString();
  else if (value instanceof Date) text = value.toISOString();
  else if (typeof value === 'object') text = safeJson(value);
  else text = String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
  } catch {
    return String(value);
  }
}

/** The SQLSTATE code of a driver error, if it has one. */
export function sqlState(error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null && 'code' in error) {
    const code = (error as { code: unknown }).code;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code;
  }
  return undefined;
}

/** The message of anything thrown. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
