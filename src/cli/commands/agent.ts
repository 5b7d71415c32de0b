import { createSyncAgent } from 'meter-sync';
import type { SyncResult } from '../../engine/result.js';
import type { Logger } from '../../logger.js';
import { openPool } from '../connections.js';
import { CliError, ExitCode } from '../exit-codes.js';
import type { Outcome } from '../outcome.js';
import type { Output } from '../output.js';
import { formatDuration } from '../render-result.js';
import { errorToJson, resultToJson } from '../result-json.js';
import { maskDeep } from '../secrets.js';
import { requireTenantIfScoped, type Settings } from '../settings.js';
import { asCliError } from './run-sync.js';

const SIGNALS = ['SIGTERM', 'SIGINT'] as const;

/**
 * `meter-sync agent`: syncs on the config's schedule until SIGTERM or SIGINT, one line per run.
 * On the first signal it stops scheduling, lets a run in flight finish, closes its connections
 * and exits 0; a second signal exits at once with 130.
 */
export async function runAgentCommand(
  settings: Settings,
  output: Output,
  logger: Logger,
): Promise<Outcome> {
  const sourceConnection = settings.connection('source');
  const targetConnection = settings.connection('target');
  requireTenantIfScoped(settings);
  const { schedule } = settings;
  if (schedule === undefined) {
    throw new CliError(
      'no schedule: set schedule in the config file (milliseconds or a cron expression) or pass --schedule',
      ExitCode.usage,
    );
  }
  const timing =
    typeof schedule === 'number'
      ? { interval: schedule }
      : { cron: schedule, ...(settings.timezone ? { timezone: settings.timezone } : {}) };

  const source = openPool(sourceConnection);
  const target = openPool(targetConnection);
  const closePools = () => Promise.all([source.end(), target.end()]).catch(() => undefined);
  let agent: ReturnType<typeof createSyncAgent>;
  try {
    agent = createSyncAgent({
      source,
      target,
      tenantId: settings.tenantId,
      entities: settings.registry,
      only: settings.only,
      lock: settings.wait ? 'wait' : true,
      statementTimeoutMs: settings.statementTimeoutMs,
      lockTimeoutMs: settings.lockTimeoutMs,
      incremental: settings.incremental,
      retry: settings.retry,
      logger,
      runOnStart: settings.runOnStart,
      ...timing,
    });
  } catch (error) {
    await closePools();
    throw asCliError(error, { source: sourceConnection, target: targetConnection });
  }

  let runs = 0;
  let failures = 0;
  const line = (text: string, json: Record<string, unknown>) => {
    if (settings.json) {
      output.print(
        JSON.stringify(maskDeep({ time: new Date().toISOString(), ...json }, output.mask)),
      );
    } else if (!settings.quiet) output.print(`${new Date().toISOString()} ${text}`);
  };
  const tenant = settings.tenantId === undefined ? 'all tenants' : `tenant ${settings.tenantId}`;
  agent.on('run-end', ({ result }) => {
    runs++;
    if (!result.ok) failures++;
    line(runSummary(tenant, result), { type: 'run-end', ...resultToJson(result) });
  });
  agent.on('run-skipped', ({ error }) => {
    runs++;
    line(`sync skipped: ${error.message}`, {
      type: 'run-skipped',
      ok: false,
      error: errorToJson(error),
    });
  });
  agent.on('run-failed', ({ error }) => {
    runs++;
    failures++;
    // With what to check, as `sync` says it: the origin of the connection at fault.
    const shown = asCliError(error, { source: sourceConnection, target: targetConnection });
    const message = shown instanceof Error ? shown.message : error.message;
    line(`sync failed: ${message}`, {
      type: 'run-failed',
      ok: false,
      error: { ...errorToJson(error), message },
    });
  });

  const when =
    typeof schedule === 'number' ? `every ${formatDuration(schedule)}` : `at "${schedule}"`;
  line(
    `agent started: ${tenant}, ${when}, ${sourceConnection.display} -> ${targetConnection.display}`,
    {
      type: 'start',
      tenantId: settings.tenantId === undefined ? undefined : String(settings.tenantId),
      schedule,
    },
  );

  const signal = await new Promise<string>((resolve) => {
    for (const name of SIGNALS) {
      process.once(name, () => {
        // A second signal while stopping: do not wait any longer.
        for (const again of SIGNALS) process.once(again, () => process.exit(130));
        resolve(name);
      });
    }
  });
  const wasRunning = agent.status().running;
  await agent.stop();
  await closePools();
  const stopped = `agent stopped on ${signal} after ${runs} run${runs === 1 ? '' : 's'}${wasRunning ? ' (the run in flight finished first)' : ''}; connections closed`;
  if (!settings.json && !settings.quiet) output.print(`${new Date().toISOString()} ${stopped}`);
  return {
    exitCode: ExitCode.ok,
    json: { type: 'stopped', signal, runs, failedRuns: failures, finishedRunInFlight: wasRunning },
  };
}

function runSummary(tenant: string, result: SyncResult): string {
  const entities = Object.values(result.entities);
  const sum = (pick: (entity: (typeof entities)[number]) => number) =>
    entities.reduce((total, entity) => total + pick(entity), 0);
  const failed = entities.filter((entity) => entity.status === 'failed').length;
  const elapsed = formatDuration(result.finishedAt.getTime() - result.startedAt.getTime());
  return `sync of ${tenant}: ${sum((e) => e.inserted)} inserted, ${sum((e) => e.updated)} updated, ${sum((e) => e.deleted)} deleted, ${sum((e) => e.skipped)} skipped in ${elapsed}${failed > 0 ? `; ${failed} of ${entities.length} entities FAILED` : ''}`;
}
