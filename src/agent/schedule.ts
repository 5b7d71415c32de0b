import { Cron } from 'croner';
import { ConfigurationError, messageOf } from '../errors.js';

/** When the agent's runs are due. */
export interface Schedule {
  /** Starts calling `tick` when runs are due; with `runNow`, also once right away. */
  start(tick: () => void, runNow: boolean): void;
  /** A run ended (whatever started it). */
  runEnded(): void;
  /** When the next run is due, if one is scheduled. */
  nextRunAt(): Date | undefined;
  /** No more ticks. */
  stop(): void;
}

/** Largest delay `setTimeout` honours (about 24.8 days). */
const MAX_DELAY_MS = 2_147_483_647;

/**
 * A run every `ms` milliseconds, counted from the end of the previous run, so a slow run never
 * leads to back-to-back runs and a manual run postpones the next scheduled one.
 */
export function intervalSchedule(ms: number): Schedule {
  if (!Number.isInteger(ms) || ms < 1 || ms > MAX_DELAY_MS) {
    throw new ConfigurationError(
      `createSyncAgent: interval must be a whole number of milliseconds between 1 and ${MAX_DELAY_MS}, got ${String(ms)}`,
    );
  }
  let timer: NodeJS.Timeout | undefined;
  let dueAt: Date | undefined;
  let onTick: (() => void) | undefined;
  const arm = (delay: number) => {
    clearTimeout(timer);
    dueAt = new Date(Date.now() + delay);
    timer = setTimeout(() => {
      timer = undefined;
      dueAt = undefined;
      onTick?.();
    }, delay);
  };
  return {
    start(tick, runNow) {
      onTick = tick;
      arm(runNow ? 0 : ms);
    },
    runEnded() {
      if (onTick) arm(ms);
    },
    nextRunAt: () => dueAt,
    stop() {
      onTick = undefined;
      clearTimeout(timer);
      dueAt = undefined;
    },
  };
}

/**
 * Runs at the times a cron expression names (croner syntax: 5 or 6 fields, or a nickname such as
 * `@hourly`), in `timezone` (an IANA name) or the process's. A time that comes while a run is in
 * flight joins that run rather than starting another.
 */
export function cronSchedule(expression: string, timezone?: string): Schedule {
  let job: Cron;
  try {
    job = new Cron(expression, { paused: true, ...(timezone ? { timezone } : {}) });
    job.nextRun();
  } catch (error) {
    throw new ConfigurationError(
      `createSyncAgent: cron "${expression}" is not a valid cron expression${timezone ? ` in time zone "${timezone}"` : ''}: ${messageOf(error)}`,
      { cause: error },
    );
  }
  let startTimer: NodeJS.Timeout | undefined;
  return {
    start(tick, runNow) {
      job.schedule(() => tick());
      job.resume();
      if (runNow) startTimer = setTimeout(tick, 0);
    },
    runEnded() {},
    nextRunAt: () => (job.isStopped() ? undefined : (job.nextRun() ?? undefined)),
    stop() {
      clearTimeout(startTimer);
      job.stop();
    },
  };
}

/** No schedule: runs happen only when asked (`triggerSync`), and once at start if wanted. */
export function manualSchedule(): Schedule {
  let startTimer: NodeJS.Timeout | undefined;
  return {
    start(tick, runNow) {
      if (runNow) startTimer = setTimeout(tick, 0);
    },
    runEnded() {},
    nextRunAt: () => undefined,
    stop() {
      clearTimeout(startTimer);
    },
  };
}
