/**
 * Retries of work that failed for a passing reason (a dropped connection, a recovery conflict on
 * a hot standby, a serialization failure): exponential backoff with full jitter, bounded by a
 * number of attempts and by a deadline. Pure: the clock, the sleep and the random source can be
 * injected, so the schedule is testable without waiting.
 *
 * Backoff with full jitter: before retry n (n = 1 for the first retry) the delay is drawn
 * uniformly from [0, min(maxDelayMs, initialDelayMs · 2^(n−1))]. Spreading the delays over the
 * whole range keeps a fleet of agents that failed together from retrying together.
 */
import { ConfigurationError } from '../errors.js';

/** How often and how long to retry. */
export interface RetryPolicy {
  /** Calls of the work in all, the first included (≥ 1). Default 3. */
  readonly attempts: number;
  /** Upper bound of the delay before the first retry, in ms. Default 200. */
  readonly initialDelayMs: number;
  /** Upper bound of any one delay, in ms. Default 5000. */
  readonly maxDelayMs: number;
  /**
   * Time from the first call after which no retry starts, in ms. A delay that would end past the
   * deadline is not slept: the last error is thrown instead. An attempt in flight is not
   * interrupted. Default 60000.
   */
  readonly deadlineMs: number;
  /** How delays are drawn: `'full'`, uniformly between 0 and the backoff ceiling. */
  readonly jitter: 'full';
}

/** The defaults: 3 attempts, delays up to 200 ms, 400 ms, … capped at 5 s, a 60 s deadline. */
export const DEFAULT_RETRY_POLICY: RetryPolicy = Object.freeze({
  attempts: 3,
  initialDelayMs: 200,
  maxDelayMs: 5_000,
  deadlineMs: 60_000,
  jitter: 'full',
});

/** What `onRetry` is told before each delay. */
export interface RetryEvent {
  /** The attempt that failed, counted from 1. */
  readonly attempt: number;
  /** What it failed with. */
  readonly error: unknown;
  /** The delay before the next attempt, in ms. */
  readonly delayMs: number;
}

/** Hooks and injectable effects of {@link withRetries}. */
export interface RetryOptions {
  /** Called before each delay, once per retry. An exception thrown here ends the retries. */
  readonly onRetry?: (event: RetryEvent) => void;
  /** Waits `ms` milliseconds. Default: a timer. */
  readonly sleep?: (ms: number) => Promise<void>;
  /** A number in [0, 1). Default: `Math.random`. */
  readonly random?: () => number;
  /** The current time in ms. Default: `Date.now`. */
  readonly now?: () => number;
}

/** The value of work that succeeded, and the calls it took (1 when the first call succeeded). */
export interface RetryOutcome<T> {
  readonly value: T;
  readonly attempts: number;
}

/**
 * Builds a policy from the defaults and `overrides`, and checks it.
 *
 * @throws ConfigurationError when a number is out of range (attempts not a whole number ≥ 1, a
 * negative or non-finite delay or deadline, an initial delay above the maximum).
 */
export function retryPolicy(overrides: Partial<RetryPolicy> = {}): RetryPolicy {
  const policy: RetryPolicy = { ...DEFAULT_RETRY_POLICY, ...overrides };
  const { attempts, initialDelayMs, maxDelayMs, deadlineMs, jitter } = policy;
  if (!Number.isSafeInteger(attempts) || attempts < 1) {
    throw new ConfigurationError(`retry attempts must be a whole number ≥ 1, not ${attempts}`);
  }
  for (const [name, value] of [
    ['initialDelayMs', initialDelayMs],
    ['maxDelayMs', maxDelayMs],
    ['deadlineMs', deadlineMs],
  ] as const) {
    if (!Number.isFinite(value) || value < 0) {
      throw new ConfigurationError(`retry ${name} must be a finite number ≥ 0, not ${value}`);
    }
  }
  if (initialDelayMs > maxDelayMs) {
    throw new ConfigurationError(
      `retry initialDelayMs (${initialDelayMs}) must not exceed maxDelayMs (${maxDelayMs})`,
    );
  }
  if (jitter !== 'full') {
    throw new ConfigurationError(`retry jitter must be 'full', not ${String(jitter)}`);
  }
  return Object.freeze(policy);
}

/**
 * The ceiling of the delay before retry `retry` (1 for the first retry):
 * `min(maxDelayMs, initialDelayMs · 2^(retry − 1))`.
 */
export function backoffCeiling(policy: RetryPolicy, retry: number): number {
  // 2^1024 is Infinity; min() keeps the result finite.
  return Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** Math.max(0, retry - 1));
}

/**
 * The delay before retry `retry`, drawn with full jitter from [0, {@link backoffCeiling}] using
 * `random` (a number in [0, 1); values outside are clamped).
 */
export function backoffDelay(policy: RetryPolicy, retry: number, random: () => number): number {
  const ceiling = backoffCeiling(policy, retry);
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.min(ceiling, Math.floor(r * (ceiling + 1)));
}

const attemptsByError = new WeakMap<object, number>();

/**
 * The number of calls {@link withRetries} made before giving up with `error`, or `undefined` when
 * `error` did not come from `withRetries` (or is not an object: a thrown string or number cannot
 * carry it).
 *
 * `withRetries` rethrows the work's own error unchanged — same object, same class, same
 * `cause` — so `instanceof` checks and SQLSTATE codes keep working; the count is kept beside it
 * here rather than written onto it.
 */
export function retryAttemptsOf(error: unknown): number | undefined {
  return typeof error === 'object' && error !== null ? attemptsByError.get(error) : undefined;
}

/**
 * Runs `work` until it succeeds, retrying the errors `isTransient` accepts with exponential
 * backoff and full jitter, within `policy.attempts` calls and `policy.deadlineMs`.
 *
 * `work` is called with the attempt number (from 1). An error `isTransient` rejects is thrown at
 * once. When the attempts are used up, or the next delay would end past the deadline, the last
 * error is thrown as it was; {@link retryAttemptsOf} tells how many calls were made.
 *
 * @returns the work's value and the number of calls it took.
 */
export async function withRetries<T>(
  policy: RetryPolicy,
  isTransient: (error: unknown) => boolean,
  work: (attempt: number) => Promise<T>,
  options: RetryOptions = {},
): Promise<RetryOutcome<T>> {
  const checked = retryPolicy(policy);
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? defaultSleep;
  const random = options.random ?? Math.random;
  const startedAt = now();
  for (let attempt = 1; ; attempt++) {
    try {
      return { value: await work(attempt), attempts: attempt };
    } catch (error) {
      const giveUp = (): never => {
        if (typeof error === 'object' && error !== null) attemptsByError.set(error, attempt);
        throw error;
      };
      if (attempt >= checked.attempts || !isTransient(error)) giveUp();
      const delayMs = backoffDelay(checked, attempt, random);
      if (now() + delayMs - startedAt > checked.deadlineMs) giveUp();
      options.onRetry?.({ attempt, error, delayMs });
      await sleep(delayMs);
    }
  }
}

function defaultSleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
