import type { builtInEntities } from '../builtins/index.js';
import type { SyncResult } from '../engine/result.js';
import type { AnyEntity } from '../entity/types.js';
import { ConfigurationError, LockedError, MeterSyncError } from '../errors.js';
import { silentLogger } from '../logger.js';
import { type PerformSyncOptions, performSync, resolveEntities } from '../perform-sync.js';
import {
  EventHub,
  type SyncAgentEvent,
  type SyncAgentEventOf,
  type SyncAgentEventType,
} from './events.js';
import { cronSchedule, intervalSchedule, manualSchedule, type Schedule } from './schedule.js';

type BuiltInEntity = (typeof builtInEntities)[number];

/**
 * What `createSyncAgent` takes: the options of `performSync` (without `dryRun`, `listChanges`
 * and `onEvent`, which the agent owns) plus when to run.
 */
export interface SyncAgentOptions<E extends AnyEntity = BuiltInEntity>
  extends Omit<PerformSyncOptions<E>, 'dryRun' | 'listChanges' | 'onEvent'> {
  /**
   * Run every `interval` milliseconds, counted from the end of the previous run (so runs never
   * pile up behind a slow one). Give `interval` or `cron`, or neither for runs on demand only.
   */
  readonly interval?: number | undefined;
  /** Run at the times of a cron expression (croner syntax, e.g. `0,30 * * * *` or `@hourly`). */
  readonly cron?: string | undefined;
  /** IANA time zone the cron expression is read in. Default: the process's. */
  readonly timezone?: string | undefined;
  /** Also run once right after creation. Default: false. */
  readonly runOnStart?: boolean | undefined;
  /** Receives every event of every run; `agent.on(type, …)` listens to one type. */
  readonly onEvent?: ((event: SyncAgentEvent) => void) | undefined;
}

/** A snapshot of what the agent is doing and how its runs went. */
export interface SyncAgentStatus<E extends AnyEntity = AnyEntity> {
  /** A run is in flight. */
  readonly running: boolean;
  /** `stop()` was called: no further runs. */
  readonly stopped: boolean;
  /** The result of the latest run that completed (its entities may still have failed). */
  readonly lastResult: SyncResult<E> | undefined;
  /**
   * Why the latest run did not complete: a `LockedError` when another sync held the lock, a
   * `DatabaseError` when a database was unreachable, … Cleared when a run completes.
   */
  readonly lastError: Error | undefined;
  /** When the next scheduled run is due; undefined while a run is in flight or with no schedule. */
  readonly nextRunAt: Date | undefined;
}

/** A scheduled sync of the entities `E`; create it with `createSyncAgent`. */
export interface SyncAgent<E extends AnyEntity = AnyEntity> {
  /**
   * Runs a sync now, unless one is in flight: then it returns that run's promise, and no second
   * run starts. Resolves with the run's result; rejects as `performSync` does (`LockedError`
   * when another process's sync holds the lock, `DatabaseError` when a side is unreachable).
   * After `stop()` it starts no run: it rejects with `AgentStoppedError` (while `stop()` still
   * waits for a run in flight, it returns that run).
   */
  triggerSync(): Promise<SyncResult<E>>;
  /** What the agent is doing now and how its latest run went. */
  status(): SyncAgentStatus<E>;
  /** Listens to one type of event; returns a function that stops listening. */
  on<T extends SyncAgentEventType>(
    type: T,
    listener: (event: SyncAgentEventOf<T>) => void,
  ): () => void;
  /**
   * Stops scheduling, waits for an in-flight run to finish, then drops timers and listeners.
   * The pools are the caller's: end them after `stop()` resolves. Safe to call more than once.
   */
  stop(): Promise<void>;
}

/** `triggerSync` was called on an agent after `stop()`. */
export class AgentStoppedError extends MeterSyncError {}

/**
 * Creates a sync agent: `performSync` on a schedule, one run at a time.
 *
 * - Runs never overlap: a run that is due (or triggered) while one is in flight joins it.
 * - Across processes, agents on one sync database take turns through the sync lock, a lease row
 *   in `meter_sync_lock` held for the run (it holds through PgBouncer in transaction pooling).
 *   A scheduled run that finds the lock taken is skipped: it
 *   emits `run-skipped`, logs a warning, sets `status().lastError` to the `LockedError`, and the
 *   schedule goes on. (With `lock: 'wait'` it waits for the lock instead. pg-mem has no sync
 *   lock, so there agents in different processes are not kept apart.)
 * - An entity that fails for a passing reason (a lost connection, a recovery conflict) is tried
 *   again within the run, as `retry` says (default 3 attempts); the run's events include
 *   `entity-retry`.
 * - A scheduled run that fails (a database unreachable) never throws: it emits `run-failed`,
 *   logs an error, sets `status().lastError`, and the next run is tried on schedule.
 *
 * Options are checked at once: invalid ones throw a `ConfigurationError` (or `DefinitionError`).
 *
 * @example
 * ```ts
 * const agent = createSyncAgent({ source, target, tenantId: 42, cron: '0,30 * * * *', runOnStart: true });
 * agent.on('entity-end', ({ entity, result }) => console.log(entity, result.inserted));
 * process.on('SIGTERM', async () => { await agent.stop(); await Promise.all([source.end(), target.end()]); });
 * ```
 */
export function createSyncAgent<E extends AnyEntity = BuiltInEntity>(
  options: SyncAgentOptions<E>,
): SyncAgent<E> {
  const { interval, cron, timezone, runOnStart, onEvent, ...syncOptions } = options;
  // performSync's checks, made now so a misconfigured agent fails at start-up.
  resolveEntities(syncOptions, 'createSyncAgent');
  const schedule = chooseSchedule(interval, cron, timezone);
  const logger = options.logger ?? silentLogger;
  const events = new EventHub(logger, onEvent);

  let inFlight: Promise<SyncResult<E>> | undefined;
  let lastResult: SyncResult<E> | undefined;
  let lastError: Error | undefined;
  let stopping: Promise<void> | undefined;

  // Settles the run's state first, then tells listeners, so a `run-end`, `run-skipped` or
  // `run-failed` listener sees status() as it is after the run.
  const runOnce = async (): Promise<SyncResult<E>> => {
    let result: SyncResult<E> | undefined;
    let failure: unknown;
    try {
      // Extract<E, { name: E['name'] }> is E, which the compiler does not see for a generic E.
      result = (await performSync<E>({
        ...syncOptions,
        onEvent: (event) => {
          if (event.type !== 'run-end') events.emit(event);
        },
      })) as SyncResult<E>;
    } catch (error) {
      failure = error;
    }
    inFlight = undefined;
    if (!stopping) schedule.runEnded();
    if (result) {
      lastResult = result;
      lastError = undefined;
      events.emit({ type: 'run-end', result });
      return result;
    }
    lastError = failure instanceof Error ? failure : new Error(String(failure));
    if (failure instanceof LockedError) {
      logger.warn({ err: failure }, 'sync skipped: another sync holds the sync lock');
      events.emit({ type: 'run-skipped', reason: 'locked', error: failure });
    } else {
      logger.error({ err: failure }, 'sync failed');
      events.emit({ type: 'run-failed', error: lastError });
    }
    throw failure;
  };

  const triggerSync = (): Promise<SyncResult<E>> => {
    if (inFlight) return inFlight;
    if (stopping) {
      return Promise.reject(new AgentStoppedError('triggerSync: the sync agent was stopped'));
    }
    const run = runOnce();
    // Scheduled runs have no caller: their outcome lives in status() and the events.
    run.catch(() => undefined);
    inFlight = run;
    return run;
  };

  schedule.start(() => {
    triggerSync().catch(() => undefined);
  }, runOnStart ?? false);

  return {
    triggerSync,
    status: () => ({
      running: inFlight !== undefined,
      stopped: stopping !== undefined,
      lastResult,
      lastError,
      nextRunAt: stopping || inFlight ? undefined : schedule.nextRunAt(),
    }),
    on: (type, listener) => events.on(type, listener),
    stop() {
      stopping ??= (async () => {
        schedule.stop();
        await inFlight?.catch(() => undefined);
        events.clear();
      })();
      return stopping;
    },
  };
}

function chooseSchedule(
  interval: number | undefined,
  cron: string | undefined,
  timezone: string | undefined,
): Schedule {
  if (interval !== undefined && cron !== undefined) {
    throw new ConfigurationError('createSyncAgent: give interval or cron, not both');
  }
  if (timezone !== undefined && cron === undefined) {
    throw new ConfigurationError('createSyncAgent: timezone applies to cron; give cron too');
  }
  if (interval !== undefined) return intervalSchedule(interval);
  if (cron !== undefined) return cronSchedule(cron, timezone);
  return manualSchedule();
}
