import { basename } from 'node:path';
import type { Command } from 'commander';
import { builtInEntities, createRegistry, type Registry } from 'meter-sync';
import type { TenantId } from '../db/types.js';
import type { AnyEntity } from '../entity/types.js';
import type { SyncRetryOptions } from '../perform-sync.js';
import { findConfigFile, type LoadedConfig, loadConfigFile } from './config-file.js';
import { passwordCandidates } from './connection-string.js';
import {
  type ConnectionInput,
  DATABASES,
  type ResolvedConnection,
  resolveConnection,
  type Side,
} from './connections.js';
import { CliError, ExitCode } from './exit-codes.js';
import { isLogLevel, type LogLevel } from './log.js';

/** Every option a command may have, as commander hands them over. */
export interface CommandOptions {
  readonly config?: string | undefined;
  readonly source?: string | undefined;
  readonly target?: string | undefined;
  readonly tenant?: string | undefined;
  readonly entities?: string | undefined;
  readonly json?: boolean | undefined;
  readonly quiet?: boolean | undefined;
  readonly logLevel?: string | undefined;
  readonly statementTimeout?: string | undefined;
  readonly lockTimeout?: string | undefined;
  readonly wait?: boolean | undefined;
  readonly retries?: string | undefined;
  readonly verbose?: boolean | undefined;
  readonly dryRun?: boolean | undefined;
  readonly print?: boolean | undefined;
  readonly schedule?: string | undefined;
  readonly full?: boolean | undefined;
  readonly incremental?: boolean | undefined;
}

/** A command's settings: the config file, then environment variables, then options. */
export interface Settings {
  readonly config: LoadedConfig | undefined;
  readonly registry: Registry<AnyEntity>;
  /** The entities are the built-ins (no `entities` in the config file). */
  readonly builtIn: boolean;
  readonly only: readonly string[] | undefined;
  readonly tenantId: TenantId | undefined;
  readonly statementTimeoutMs: number | undefined;
  readonly lockTimeoutMs: number | undefined;
  readonly wait: boolean;
  /** How changed rows are found (`performSync`'s `incremental`). */
  readonly incremental: boolean | { readonly verifyEveryMs?: number | undefined };
  /** Compare every row this run. */
  readonly full: boolean;
  /** Retries of entities that failed for a passing reason, as `performSync` takes them. */
  readonly retry: SyncRetryOptions | false | undefined;
  readonly schedule: number | string | undefined;
  readonly timezone: string | undefined;
  readonly runOnStart: boolean;
  readonly logLevel: LogLevel;
  readonly json: boolean;
  readonly quiet: boolean;
  /** The connection of a side, parsed; throws a `CliError` when it is missing or unusable. */
  connection(side: Side): ResolvedConnection;
  /** The passwords of the config file's connections, to be masked. */
  readonly secrets: readonly string[];
}

/**
 * Reads the config file (from `--config` or found from the working directory up) and lays the
 * environment variables and options over it.
 */
export async function resolveSettings(
  command: Command,
  options: CommandOptions,
  defaults: { readonly logLevel: LogLevel },
): Promise<Settings> {
  const path = findConfigFile(process.cwd(), options.config);
  const loaded = path === undefined ? undefined : await loadConfigFile(path);
  const config = loaded?.config ?? {};
  const file = loaded ? basename(loaded.path) : undefined;

  const given = config.entities;
  let registry: Registry<AnyEntity>;
  try {
    registry =
      given === undefined
        ? (createRegistry(builtInEntities) as unknown as Registry<AnyEntity>)
        : Array.isArray(given)
          ? createRegistry(given as readonly AnyEntity[])
          : (given as Registry<AnyEntity>);
  } catch (error) {
    throw new CliError(
      `config file ${file}: entities: ${(error as Error).message}`,
      ExitCode.usage,
    );
  }
  const builtIn = given === undefined;

  const only =
    options.entities !== undefined ? parseEntityList(options.entities, registry) : config.only;
  if (options.entities === undefined && only !== undefined) {
    const unknown = only.filter((name) => !registry.has(name));
    if (unknown.length > 0) {
      throw new CliError(
        `config file ${file}: only: unknown entity ${unknown.map((n) => `"${n}"`).join(', ')}; choose from ${registry.names.join(', ')}`,
        ExitCode.usage,
      );
    }
  }

  const tenantId =
    options.tenant !== undefined ? parseTenant(options.tenant, builtIn) : config.tenantId;

  const logLevel = chooseLogLevel(options, config.logLevel, defaults.logLevel);
  const connectionInput = (side: Side): ConnectionInput | undefined => {
    const value = options[side];
    if (value !== undefined) {
      const source = command.getOptionValueSource(side);
      return { value, origin: source === 'env' ? DATABASES[side].env : DATABASES[side].option };
    }
    const fromFile = config[side];
    return fromFile === undefined ? undefined : { value: fromFile, origin: `${file} (${side})` };
  };
  const resolved = new Map<Side, ResolvedConnection>();
  const secrets: string[] = [];
  for (const side of ['source', 'target'] as const) {
    const value = config[side];
    if (typeof value === 'string') secrets.push(...passwordCandidates(value));
    else if (typeof value?.password === 'string') secrets.push(value.password);
    else if (typeof value?.connectionString === 'string')
      secrets.push(...passwordCandidates(value.connectionString));
  }

  return {
    config: loaded,
    registry,
    builtIn,
    only,
    tenantId,
    statementTimeoutMs:
      options.statementTimeout !== undefined
        ? parseMilliseconds('--statement-timeout', options.statementTimeout)
        : config.statementTimeoutMs,
    lockTimeoutMs:
      options.lockTimeout !== undefined
        ? parseMilliseconds('--lock-timeout', options.lockTimeout)
        : config.lockTimeoutMs,
    wait: options.wait ?? config.waitForLock ?? false,
    incremental: options.incremental === false ? false : (config.incremental ?? true),
    full: options.full === true,
    retry:
      options.retries !== undefined ? parseRetries(options.retries, config.retry) : config.retry,
    schedule:
      options.schedule !== undefined
        ? /^\d+$/.test(options.schedule.trim())
          ? Number(options.schedule.trim())
          : options.schedule
        : config.schedule,
    timezone: config.timezone,
    runOnStart: config.runOnStart ?? true,
    logLevel,
    json: options.json === true,
    quiet: options.quiet === true,
    secrets,
    connection(side) {
      let connection = resolved.get(side);
      if (!connection) {
        connection = resolveConnection(side, connectionInput(side), loaded?.path);
        resolved.set(side, connection);
      }
      return connection;
    },
  };
}

function chooseLogLevel(
  options: CommandOptions,
  fromConfig: LogLevel | undefined,
  fallback: LogLevel,
): LogLevel {
  if (options.logLevel !== undefined) {
    if (!isLogLevel(options.logLevel)) {
      throw new CliError(
        `--log-level must be one of debug, info, warn, error, silent, got "${options.logLevel}"`,
        ExitCode.usage,
      );
    }
    return options.logLevel;
  }
  if (options.quiet) return 'error';
  return fromConfig ?? fallback;
}

function parseMilliseconds(option: string, value: string): number {
  const text = value.trim();
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw new CliError(
      `${option} must be a whole number of milliseconds (0 for none), got "${value}"`,
      ExitCode.usage,
    );
  }
  return Number(text);
}

/** `--retries N`: N retries after the first attempt (0: none), over the config file's delays. */
function parseRetries(
  value: string,
  fromConfig: SyncRetryOptions | false | undefined,
): SyncRetryOptions | false {
  const text = value.trim();
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text) + 1)) {
    throw new CliError(
      `--retries must be a whole number of retries after the first attempt (0 for none), got "${value}"`,
      ExitCode.usage,
    );
  }
  const retries = Number(text);
  if (retries === 0) return false;
  return { ...(fromConfig === false ? {} : fromConfig), attempts: retries + 1 };
}

/** A whole number as a bigint (the built-ins' tenant_id is bigint); other entities take text. */
function parseTenant(value: string, builtIn: boolean): TenantId {
  const text = value.trim();
  if (/^-?\d+$/.test(text)) return BigInt(text);
  if (builtIn || text === '') {
    throw new CliError(
      `--tenant must be a whole number (the built-in entities' tenant_id), got "${value}"`,
      ExitCode.usage,
    );
  }
  return text;
}

function parseEntityList(value: string, registry: Registry<AnyEntity>): string[] {
  const names = value
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '');
  const unknown = names.filter((name) => !registry.has(name));
  if (names.length === 0 || unknown.length > 0) {
    throw new CliError(
      `--entities: ${names.length === 0 ? 'no entity named' : `unknown entity ${unknown.map((name) => `"${name}"`).join(', ')}`}; choose from ${registry.names.join(', ')}`,
      ExitCode.usage,
    );
  }
  return names;
}

/** Says which option is missing, where `performSync` would speak of its `tenantId` option. */
export function requireTenantIfScoped(settings: Settings): void {
  if (settings.tenantId !== undefined) return;
  const selected = settings.registry.entities.filter(
    (entity) => !settings.only || settings.only.includes(entity.name),
  );
  const scoped = selected.filter((entity) => entity.tenantColumn !== undefined);
  if (scoped.length === 0) return;
  const global = settings.registry.entities.filter((entity) => entity.tenantColumn === undefined);
  const without =
    global.length > 0
      ? ` (without a tenant, only --entities ${global.map((entity) => entity.name).join(',')} can run)`
      : '';
  throw new CliError(
    `--tenant is required: ${scoped.map((entity) => entity.name).join(', ')} ${scoped.length > 1 ? 'are' : 'is'} tenant-scoped${without}`,
    ExitCode.usage,
  );
}
