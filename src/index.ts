export {
  AgentStoppedError,
  createSyncAgent,
  type SyncAgent,
  type SyncAgentEvent,
  type SyncAgentEventOf,
  type SyncAgentEventType,
  type SyncAgentOptions,
  type SyncAgentStatus,
} from './agent/index.js';
export {
  builtInEntities,
  builtIns,
  device,
  deviceRegister,
  meter,
  register,
  syncSchemaSql,
} from './builtins/index.js';
export {
  defineConfig,
  type MeterSyncConfig,
  type MeterSyncConnection,
} from './config/define-config.js';
export type { PgClient, PgPool, PgQueryConfig, PgQueryResult } from './db/pg/pool.js';
export { createPgSyncDatabase, type PgSyncDatabaseOptions } from './db/pg/sync-database.js';
export { syncLockTableSql } from './db/pg/sync-lock.js';
export type {
  BucketSelection,
  ColumnInfo,
  Features,
  Fingerprints,
  HashMode,
  KeyHash,
  ParentReference,
  ReadRequest,
  ReferencingRow,
  Scope,
  SyncDatabase,
  TableDescription,
  TenantId,
  TextKey,
  TextRow,
  TextValue,
  TransactionOptions,
  Written,
} from './db/types.js';
export type { SyncEvent, SyncEventListener } from './engine/events.js';
export {
  type ChangeKey,
  type EntityChanges,
  type EntityResult,
  type EntityResultJSON,
  type FailedAttempt,
  formatKey,
  type KeyJSON,
  type ResultKey,
  resultToJSON,
  type SyncResult,
  type SyncResultJSON,
  type SyncWarning,
} from './engine/result.js';
export { col } from './entity/columns.js';
export { defineEntity, type EntityDefinitionInput } from './entity/define.js';
export { JsonNull, type JsonNullValue } from './entity/json-null.js';
export { type ChildReference, createRegistry, type Registry } from './entity/registry.js';
export type {
  AnyEntity,
  ColumnName,
  ColumnsSchema,
  Entity,
  EntityReference,
  EntitySource,
  KeyOf,
  NameOf,
  OnMissing,
  ReferenceInput,
  RowOf,
  SourceInput,
  TableName,
} from './entity/types.js';
export {
  ConfigurationError,
  DatabaseError,
  DataError,
  DefinitionError,
  type ErrorContext,
  type JsonValue,
  LockedError,
  MeterSyncError,
  type MeterSyncErrorJSON,
  SchemaError,
} from './errors.js';
export { type Logger, silentLogger } from './logger.js';
export { type PerformSyncOptions, performSync, type SyncRetryOptions } from './perform-sync.js';
