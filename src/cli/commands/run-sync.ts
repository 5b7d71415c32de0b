import {
  ConfigurationError,
  DatabaseError,
  DefinitionError,
  LockedError,
  performSync,
} from 'meter-sync';
import type { SyncResult } from '../../engine/result.js';
import type { Logger } from '../../logger.js';
import { connectionHint, openPool, type ResolvedConnection, type Side } from '../connections.js';
import { CliError, ExitCode } from '../exit-codes.js';
import type { Outcome } from '../outcome.js';
import type { Output } from '../output.js';
import { terminalProgress } from '../progress.js';
import { renderResult } from '../render-result.js';
import { resultToJson } from '../result-json.js';
import { requireTenantIfScoped, type Settings } from '../settings.js';

/**
 * `meter-sync sync` and, with `plan` (or `sync --dry-run`), `meter-sync plan`: one run, printed
 * as a table or JSON. Throws `CliError` for anything that stops the run.
 */
export async function runSyncCommand(
  settings: Settings,
  output: Output,
  logger: Logger,
  mode: { readonly plan: boolean; readonly verbose: boolean },
): Promise<Outcome> {
  const sourceConnection = settings.connection('source');
  const targetConnection = settings.connection('target');
  requireTenantIfScoped(settings);

  const source = openPool(sourceConnection);
  const target = openPool(targetConnection);
  const progress =
    output.progressStream && !settings.json && !settings.quiet
      ? terminalProgress(output.progressStream)
      : undefined;
  try {
    const result = await performSync({
      source,
      target,
      tenantId: settings.tenantId,
      entities: settings.registry,
      only: settings.only,
      dryRun: mode.plan,
      listChanges: mode.plan && mode.verbose,
      lock: settings.wait ? 'wait' : true,
      statementTimeoutMs: settings.statementTimeoutMs,
      lockTimeoutMs: settings.lockTimeoutMs,
      incremental: settings.incremental,
      full: settings.full,
      retry: settings.retry,
      logger,
      onEvent: progress?.onEvent,
    });
    progress?.clear();
    const exitCode = result.ok ? ExitCode.ok : ExitCode.entityFailed;
    if (!settings.json && !settings.quiet) {
      const what = mode.plan ? 'plan (dry run)' : 'sync';
      const tenant =
        settings.tenantId === undefined ? 'all tenants' : `tenant ${settings.tenantId}`;
      output.print(
        `${what} of ${tenant}: ${sourceConnection.display} -> ${targetConnection.display}`,
      );
      output.print();
      for (const line of renderResult(result, { plan: mode.plan, verbose: mode.verbose })) {
        output.print(line);
      }
    }
    return {
      exitCode,
      json: resultToJson(result),
      ...(result.ok ? {} : { error: failedEntities(result) }),
    };
  } catch (error) {
    progress?.clear();
    throw asCliError(error, { source: sourceConnection, target: targetConnection });
  } finally {
    await Promise.all([source.end(), target.end()]).catch(() => undefined);
  }
}

function failedEntities(result: SyncResult): string {
  const failed = Object.entries(result.entities).filter(([, entity]) => entity.status === 'failed');
  return `${failed.length} of ${Object.keys(result.entities).length} entities failed: ${failed
    .map(([name, entity]) => `${name}: ${entity.error?.message ?? 'failed'}`)
    .join('; ')}`;
}

/** The library's errors as the CLI reports them: one line, an exit code, what to check. */
export function asCliError(
  error: unknown,
  connections: Partial<Record<Side, ResolvedConnection>>,
): unknown {
  if (error instanceof LockedError) {
    return new CliError(`${error.message} (or pass --wait to wait for it)`, ExitCode.locked);
  }
  if (error instanceof ConfigurationError || error instanceof DefinitionError) {
    return new CliError(
      error.message.replace(/^(performSync|createSyncAgent): /, ''),
      ExitCode.usage,
    );
  }
  if (error instanceof DatabaseError) {
    return new CliError(
      `${error.message}; ${connectionHint(error.message, connections)}`,
      ExitCode.usage,
      'DatabaseError',
    );
  }
  return error;
}
