import type { TenantId } from '../db/types.js';
import type { Registry } from '../entity/registry.js';
import type { AnyEntity } from '../entity/types.js';
import type { SyncRetryOptions } from '../perform-sync.js';

/**
 * A database connection as a config file gives it: a connection string (a `postgres://` URL or
 * a libpq keyword/value string such as `host=db dbname=sync`) or a node-postgres pool
 * configuration. Fields left out come from `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`,
 * `PGDATABASE`, `PGSSLMODE`, `PGAPPNAME` and `PGOPTIONS`, as node-postgres reads them.
 */
export type MeterSyncConnection =
  | string
  | {
      readonly connectionString?: string | undefined;
      readonly host?: string | undefined;
      readonly port?: number | undefined;
      readonly user?: string | undefined;
      readonly password?: string | undefined;
      readonly database?: string | undefined;
      readonly ssl?: boolean | Readonly<Record<string, unknown>> | undefined;
      readonly application_name?: string | undefined;
      readonly options?: string | undefined;
      readonly connectionTimeoutMillis?: number | undefined;
    };

/**
 * What `meter-sync.config.ts` (or `.mts`, `.js`, `.mjs`, `.cjs`) exports by default. Every field
 * is optional; command-line options and environment variables override the file.
 */
export interface MeterSyncConfig<E extends AnyEntity = AnyEntity> {
  /** The Client System (only read). Overridden by `--source` / `METER_SYNC_SOURCE_URL`. */
  readonly source?: MeterSyncConnection | undefined;
  /** The sync database. Overridden by `--target` / `METER_SYNC_TARGET_URL`. */
  readonly target?: MeterSyncConnection | undefined;
  /** The tenant to sync; needed when an entity is tenant-scoped. Overridden by `--tenant`. */
  readonly tenantId?: TenantId | undefined;
  /** The entities to sync, a list or a registry. Default: the built-in entities. */
  readonly entities?: readonly E[] | Registry<E> | undefined;
  /** Sync only these entities by name; overridden by `--entities`. Default: all. */
  readonly only?: readonly E['name'][] | undefined;
  /**
   * When `meter-sync agent` runs: an interval in milliseconds (counted from the end of the
   * previous run) or a cron expression (croner syntax, e.g. `*\/15 * * * *` or `@hourly`).
   */
  readonly schedule?: number | string | undefined;
  /** IANA time zone a cron `schedule` is read in. Default: the process's. */
  readonly timezone?: string | undefined;
  /** Whether `meter-sync agent` runs once at start, before the schedule. Default: true. */
  readonly runOnStart?: boolean | undefined;
  /** `statement_timeout` for every statement of a run, in milliseconds. */
  readonly statementTimeoutMs?: number | undefined;
  /** `lock_timeout` for every target statement of a run, in milliseconds. */
  readonly lockTimeoutMs?: number | undefined;
  /**
   * Incremental detection: read only the rows changed since the last sync where the source
   * allows (default true), with a full comparison every `verifyEveryMs` (default a day).
   */
  readonly incremental?: boolean | { readonly verifyEveryMs?: number | undefined } | undefined;
  /**
   * Retries of an entity that failed for a passing reason (a lost connection, a recovery
   * conflict on a standby…), as `performSync`'s `retry`; `false` for one attempt. Overridden by
   * `--retries`. Default: 3 attempts.
   */
  readonly retry?: SyncRetryOptions | false | undefined;
  /** Wait for another sync that holds the sync lock instead of giving up. Default: false. */
  readonly waitForLock?: boolean | undefined;
  /** How much the CLI logs to stderr. Default: `silent`, or `info` for `meter-sync agent`. */
  readonly logLevel?: 'debug' | 'info' | 'warn' | 'error' | 'silent' | undefined;
}

/**
 * Types a `meter-sync.config.ts` file; returns its argument unchanged. The `meter-sync` command
 * reads the file (found in the working directory or above it, or given with `--config`).
 *
 * @example
 * ```ts
 * // meter-sync.config.ts
 * import { builtInEntities, defineConfig } from 'meter-sync';
 * import { alarmThreshold } from './entities.js';
 *
 * export default defineConfig({
 *   source: process.env.CLIENT_SYSTEM_URL,
 *   target: 'host=localhost dbname=sync_db',
 *   tenantId: 42,
 *   entities: [...builtInEntities, alarmThreshold],
 *   schedule: '*\/15 * * * *',
 *   statementTimeoutMs: 60_000,
 * });
 * ```
 */
export function defineConfig<E extends AnyEntity = AnyEntity>(
  config: MeterSyncConfig<E>,
): MeterSyncConfig<E> {
  return config;
}
