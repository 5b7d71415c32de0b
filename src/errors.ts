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

/** A value as JSON has it: what `JSON.parse` can return. */
export type JsonValue =
  | string
  | number
  | boolean
  | null
  | JsonValue[]
  | { [key: string]: JsonValue };

/** A {@link MeterSyncError} as JSON data, from its `toJSON()`. */
export interface MeterSyncErrorJSON {
  /** The error class: `DataError`, `DatabaseError`, … */
  readonly name: string;
  readonly message: string;
  readonly entity?: string;
  /** The row's key; bigints as decimal strings, dates as ISO strings. */
  readonly key?: Readonly<Record<string, JsonValue>>;
  readonly column?: string;
  /** The SQLSTATE code reported by PostgreSQL (`DatabaseError`). */
  readonly code?: string;
  /** The message of the underlying error. */
  readonly cause?: string;
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

  /**
   * The error as JSON data, so `JSON.stringify` keeps what it says (an `Error` alone
   * serialises as `{}`) and never throws on a bigint key.
   */
  toJSON(): MeterSyncErrorJSON {
    const code = (this as { code?: unknown }).code;
    return {
      name: this.name,
      message: this.message,
      ...(this.entity === undefined ? {} : { entity: this.entity }),
      ...(this.key === undefined ? {} : { key: toJsonObject(this.key) }),
      ...(this.column === undefined ? {} : { column: this.column }),
      ...(typeof code === 'string' ? { code } : {}),
      ...(this.cause === undefined ? {} : { cause: messageOf(this.cause) }),
    };
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

/**
 * A value as JSON data: bigints as decimal strings, dates as ISO strings, objects and arrays
 * converted member by member (a `toJSON` method is honoured), `undefined` and functions dropped
 * from objects and `null` in arrays, as `JSON.stringify` does. A cycle becomes `'[Circular]'`.
 */
export function toJsonValue(value: unknown, seen: Set<object> = new Set()): JsonValue {
  if (value === null || value === undefined) return null;
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      return Number.isFinite(value) ? value : null;
    case 'bigint':
      return value.toString();
    case 'object':
      break;
    default:
      return null;
  }
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
  const object = value as object;
  if (seen.has(object)) return '[Circular]';
  seen.add(object);
  try {
    if (typeof (object as { toJSON?: unknown }).toJSON === 'function') {
      return toJsonValue((object as { toJSON: () => unknown }).toJSON(), seen);
    }
    if (Array.isArray(object)) return object.map((item) => toJsonValue(item, seen));
    return toJsonObject(object as Record<string, unknown>, seen);
  } finally {
    seen.delete(object);
  }
}

function toJsonObject(
  object: Readonly<Record<string, unknown>>,
  seen: Set<object> = new Set(),
): Record<string, JsonValue> {
  const json: Record<string, JsonValue> = {};
  for (const [key, member] of Object.entries(object)) {
    if (member === undefined || typeof member === 'function' || typeof member === 'symbol')
      continue;
    json[key] = toJsonValue(member, seen);
  }
  return json;
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
