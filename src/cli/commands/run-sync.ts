import { builtInEntities } from '../../builtins/index.js';
import type { TenantId } from '../../db/types.js';
import { ConfigurationError, DatabaseError, DefinitionError, LockedError } from '../../errors.js';
import { performSync } from '../../perform-sync.js';
import { connectionHint, openPool, requireUrl } from '../connections.js';
import { CliError, ExitCode, type ExitCodeValue } from '../exit-codes.js';
import type { Output } from '../output.js';
import { terminalProgress } from '../progress.js';
import { renderResult } from '../render-result.js';
import { resultToJson } from '../result-json.js';
import { passwordsIn } from '../secrets.js';

/** The options `sync` and `plan` share. */
export interface SyncCommandOptions {
  readonly source?: string | undefined;
  readonly target?: string | undefined;
  readonly tenant?: string | undefined;
  readonly entities?: string | undefined;
  readonly json?: boolean | undefined;
  readonly wait?: boolean | undefined;
  readonly verbose?: boolean | undefined;
}

/**
 * `meter-sync sync` and, with `plan`, `meter-sync plan`: one run of the built-in entities, printed
 * as a table or JSON. Returns the exit code; throws `CliError` for anything that stops the run.
 */
export async function runSyncCommand(
  options: SyncCommandOptions,
  output: Output,
  mode: { plan: boolean },
): Promise<ExitCodeValue> {
  const sourceUrl = requireUrl('source', options.source);
  const targetUrl = requireUrl('target', options.target);
  output.hide(passwordsIn([sourceUrl, targetUrl]));
  const tenantId = parseTenant(options.tenant);
  const only = parseEntityList(options.entities);
  if (tenantId === undefined) requireNoTenantScoped(only);

  const source = openPool(sourceUrl);
  const target = openPool(targetUrl);
  const progress = output.progressStream ? terminalProgress(output.progressStream) : undefined;
  try {
    const result = await performSync({
      source,
      target,
      tenantId,
      only,
      dryRun: mode.plan,
      listChanges: mode.plan && options.verbose === true,
      lock: options.wait ? 'wait' : true,
      onEvent: progress?.onEvent,
    });
    progress?.clear();
    if (options.json) {
      output.print(JSON.stringify(resultToJson(result), null, 2));
    } else {
      const what = mode.plan ? 'plan (dry run)' : 'sync';
      const tenant = tenantId === undefined ? 'all tenants' : `tenant ${tenantId}`;
      output.print(`${what} of ${tenant}: ${sourceUrl} -> ${targetUrl}`);
      output.print();
      for (const line of renderResult(result, {
        plan: mode.plan,
        verbose: options.verbose === true,
      })) {
        output.print(line);
      }
    }
    return result.ok ? ExitCode.ok : ExitCode.entityFailed;
  } catch (error) {
    progress?.clear();
    throw asCliError(error);
  } finally {
    await Promise.all([source.end(), target.end()]).catch(() => undefined);
  }
}

/** The built-in entities' tenant column is bigint, so a tenant is a whole number. */
function parseTenant(value: string | undefined): TenantId | undefined {
  if (value === undefined) return undefined;
  if (!/^-?\d+$/.test(value.trim())) {
    throw new CliError(
      `--tenant must be a whole number (the built-in entities' tenant_id), got "${value}"`,
      ExitCode.usage,
    );
  }
  return BigInt(value.trim());
}

type BuiltInName = (typeof builtInEntities)[number]['name'];

function parseEntityList(value: string | undefined): BuiltInName[] | undefined {
  if (value === undefined) return undefined;
  const names = value
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '');
  const known: readonly string[] = builtInEntities.map((entity) => entity.name);
  const isKnown = (name: string): name is BuiltInName => known.includes(name);
  const unknown = names.filter((name) => !isKnown(name));
  if (names.length === 0 || unknown.length > 0) {
    throw new CliError(
      `--entities: ${names.length === 0 ? 'no entity named' : `unknown entity ${unknown.map((name) => `"${name}"`).join(', ')}`}; choose from ${known.join(', ')}`,
      ExitCode.usage,
    );
  }
  return names.filter(isKnown);
}

/** Says which flag is missing, where `performSync` would speak of its `tenantId` option. */
function requireNoTenantScoped(only: readonly BuiltInName[] | undefined): void {
  const selected = builtInEntities.filter((entity) => !only || only.includes(entity.name));
  const scoped = selected.filter((entity) => entity.tenantColumn !== undefined);
  if (scoped.length === 0) return;
  const global = builtInEntities.filter((entity) => entity.tenantColumn === undefined);
  throw new CliError(
    `--tenant is required: ${scoped.map((entity) => entity.name).join(', ')} ${scoped.length > 1 ? 'are' : 'is'} tenant-scoped (without a tenant, only --entities ${global.map((entity) => entity.name).join(',')} can run)`,
    ExitCode.usage,
  );
}

function asCliError(error: unknown): unknown {
  if (error instanceof LockedError) {
    return new CliError(`${error.message} (or pass --wait to wait for it)`, ExitCode.locked);
  }
  if (error instanceof ConfigurationError || error instanceof DefinitionError) {
    return new CliError(error.message.replace(/^performSync: /, ''), ExitCode.usage);
  }
  if (error instanceof DatabaseError) {
    return new CliError(`${error.message}; ${connectionHint(error.message)}`, ExitCode.usage);
  }
  return error;
}
