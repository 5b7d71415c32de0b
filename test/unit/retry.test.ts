import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { PgClient, PgPool } from '../../src/db/pg/pool.js';
import type { SyncEvent } from '../../src/engine/events.js';
import {
  backoffCeiling,
  DEFAULT_RETRY_POLICY,
  type RetryPolicy,
  retryAttemptsOf,
  retryPolicy,
  withRetries,
} from '../../src/engine/retry.js';
import { ConfigurationError } from '../../src/errors.js';
import { defineEntity, performSync, type SyncDatabase } from '../../src/index.js';
import { createMemorySyncDatabase } from '../support/memory-sync-database.js';
import { memDatabase, recordingLogger } from '../support/pgmem.js';

class Transient extends Error {}
class Permanent extends Error {}
const isTransient = (error: unknown) => error instanceof Transient;

/** A fake clock: `sleep` and the work advance it; every sleep is recorded with its end. */
function fakeClock(start = 1_000_000) {
  let time = start;
  const sleeps: { ms: number; endsAt: number }[] = [];
  return {
    sleeps,
    now: () => time,
    advance: (ms: number) => {
      time += ms;
    },
    sleep: async (ms: number) => {
      time += ms;
      sleeps.push({ ms, endsAt: time });
    },
  };
}

const policies = fc
  .record({
    attempts: fc.integer({ min: 1, max: 12 }),
    initialDelayMs: fc.integer({ min: 0, max: 2_000 }),
    extra: fc.integer({ min: 0, max: 20_000 }),
    deadlineMs: fc.integer({ min: 0, max: 120_000 }),
  })
  .map(
    ({ attempts, initialDelayMs, extra, deadlineMs }): RetryPolicy => ({
      attempts,
      initialDelayMs,
      maxDelayMs: initialDelayMs + extra,
      deadlineMs,
      jitter: 'full',
    }),
  );

// Random numbers in [0, 1), the range Math.random gives, its ends included.
const randoms = fc.array(
  fc.oneof(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), fc.constant(0)),
  {
    minLength: 1,
    maxLength: 20,
  },
);
const cycle = (values: readonly number[]) => {
  let i = 0;
  return () => values[i++ % values.length] as number;
};

describe('withRetries', () => {
  it('never calls the work more than `attempts` times, and throws the last error as it was', async () => {
    await fc.assert(
      fc.asyncProperty(
        policies,
        randoms,
        fc.array(fc.nat(3_000), { maxLength: 15 }),
        async (policy, random, durations) => {
          const clock = fakeClock();
          const thrown: Transient[] = [];
          const outcome = withRetries(
            policy,
            isTransient,
            async (attempt) => {
              clock.advance(durations[attempt - 1] ?? 0);
              const error = new Transient(`attempt ${attempt}`);
              thrown.push(error);
              throw error;
            },
            { now: clock.now, sleep: clock.sleep, random: cycle(random) },
          );
          const error = await outcome.then(
            () => undefined,
            (e: unknown) => e,
          );
          expect(thrown.length).toBeGreaterThanOrEqual(1);
          expect(thrown.length).toBeLessThanOrEqual(policy.attempts);
          expect(error).toBe(thrown.at(-1));
          expect(retryAttemptsOf(error)).toBe(thrown.length);
          // One sleep between two calls, none after the last.
          expect(clock.sleeps.length).toBe(thrown.length - 1);
        },
      ),
    );
  });

  it('uses every attempt when the deadline leaves room', async () => {
    await fc.assert(
      fc.asyncProperty(policies, randoms, async (p, random) => {
        const policy = { ...p, deadlineMs: p.attempts * p.maxDelayMs };
        const clock = fakeClock();
        let calls = 0;
        const error = await withRetries(
          policy,
          isTransient,
          async () => {
            calls++;
            throw new Transient();
          },
          { now: clock.now, sleep: clock.sleep, random: cycle(random) },
        ).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(Transient);
        expect(calls).toBe(policy.attempts);
      }),
    );
  });

  it('never retries a permanent error', async () => {
    await fc.assert(
      fc.asyncProperty(
        policies,
        fc.integer({ min: 1, max: 12 }),
        randoms,
        async (p, failAt, random) => {
          const policy = { ...p, attempts: Math.max(p.attempts, failAt), deadlineMs: 10 ** 9 };
          const clock = fakeClock();
          let calls = 0;
          const permanent = new Permanent('no');
          const error = await withRetries(
            policy,
            isTransient,
            async (attempt) => {
              calls++;
              throw attempt < failAt ? new Transient() : permanent;
            },
            { now: clock.now, sleep: clock.sleep, random: cycle(random) },
          ).catch((e: unknown) => e);
          expect(error).toBe(permanent);
          expect(calls).toBe(failAt);
          expect(retryAttemptsOf(permanent)).toBe(failAt);
        },
      ),
    );
  });

  it('plans no sleep that would end past the deadline, however long the attempts take', async () => {
    await fc.assert(
      fc.asyncProperty(
        policies,
        randoms,
        fc.array(fc.nat(10_000), { maxLength: 15 }),
        async (policy, random, durations) => {
          const clock = fakeClock();
          const startedAt = clock.now();
          await withRetries(
            policy,
            isTransient,
            async (attempt) => {
              clock.advance(durations[attempt - 1] ?? 0);
              throw new Transient();
            },
            { now: clock.now, sleep: clock.sleep, random: cycle(random) },
          ).catch(() => undefined);
          const slept = clock.sleeps.reduce((sum, { ms }) => sum + ms, 0);
          expect(slept).toBeLessThanOrEqual(policy.deadlineMs);
          for (const { endsAt } of clock.sleeps) {
            expect(endsAt - startedAt).toBeLessThanOrEqual(policy.deadlineMs);
          }
        },
      ),
    );
  });

  it('draws each delay from [0, min(maxDelayMs, initialDelayMs · 2^n)]', async () => {
    await fc.assert(
      fc.asyncProperty(policies, randoms, async (p, random) => {
        const policy = { ...p, deadlineMs: 10 ** 9 };
        const clock = fakeClock();
        const seen: { attempt: number; delayMs: number }[] = [];
        await withRetries(
          policy,
          isTransient,
          async () => {
            throw new Transient();
          },
          {
            now: clock.now,
            sleep: clock.sleep,
            random: cycle(random),
            onRetry: ({ attempt, delayMs }) => seen.push({ attempt, delayMs }),
          },
        ).catch(() => undefined);
        expect(seen.map(({ attempt }) => attempt)).toEqual(
          Array.from({ length: policy.attempts - 1 }, (_, i) => i + 1),
        );
        for (const [n, { delayMs }] of seen.entries()) {
          expect(delayMs).toBeGreaterThanOrEqual(0);
          expect(delayMs).toBeLessThanOrEqual(
            Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** n),
          );
        }
        expect(clock.sleeps.map(({ ms }) => ms)).toEqual(seen.map(({ delayMs }) => delayMs));
      }),
    );
  });

  it('spreads the delays with the random source: 0 gives no delay, nearly 1 gives the ceiling', async () => {
    const policy = retryPolicy({ attempts: 6, initialDelayMs: 100, maxDelayMs: 1_000 });
    for (const [r, expected] of [
      [0, [0, 0, 0, 0, 0]],
      [0.5, [50, 100, 200, 400, 500]],
      [0.999_999_9, [100, 200, 400, 800, 1_000]],
    ] as const) {
      const clock = fakeClock();
      await withRetries(
        policy,
        isTransient,
        async () => {
          throw new Transient();
        },
        { now: clock.now, sleep: clock.sleep, random: () => r },
      ).catch(() => undefined);
      expect(clock.sleeps.map(({ ms }) => ms)).toEqual(expected);
    }
    expect([1, 2, 3, 4, 5, 6].map((n) => backoffCeiling(policy, n))).toEqual([
      100, 200, 400, 800, 1_000, 1_000,
    ]);
  });

  it('returns the value and the calls it took once the work succeeds', async () => {
    await fc.assert(
      fc.asyncProperty(policies, fc.nat(11), randoms, async (p, failures, random) => {
        const policy = { ...p, attempts: Math.max(p.attempts, failures + 1), deadlineMs: 10 ** 9 };
        const clock = fakeClock();
        const outcome = await withRetries(
          policy,
          isTransient,
          async (attempt) => {
            if (attempt <= failures) throw new Transient();
            return `value ${attempt}`;
          },
          { now: clock.now, sleep: clock.sleep, random: cycle(random) },
        );
        expect(outcome).toEqual({ value: `value ${failures + 1}`, attempts: failures + 1 });
      }),
    );
  });

  it('gives up before a delay that would cross the deadline', async () => {
    const clock = fakeClock();
    const policy = retryPolicy({ attempts: 10, initialDelayMs: 1_000, deadlineMs: 2_500 });
    let calls = 0;
    const error = await withRetries(
      policy,
      isTransient,
      async () => {
        calls++;
        throw new Transient();
      },
      { now: clock.now, sleep: clock.sleep, random: () => 0.999_999 },
    ).catch((e: unknown) => e);
    // Delays 1000 and then 2000 would end at 3000 > 2500: two calls, one sleep.
    expect(calls).toBe(2);
    expect(clock.sleeps.map(({ ms }) => ms)).toEqual([1_000]);
    expect(retryAttemptsOf(error)).toBe(2);
  });

  it('sleeps on real timers by default', async () => {
    const started = Date.now();
    const outcome = await withRetries(
      retryPolicy({ attempts: 3, initialDelayMs: 30, maxDelayMs: 30 }),
      isTransient,
      async (attempt) => {
        if (attempt < 3) throw new Transient();
        return 'done';
      },
      { random: () => 0.999_999 },
    );
    expect(outcome).toEqual({ value: 'done', attempts: 3 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(55);
  });

  it('keeps a thrown primitive as it was, with no count', async () => {
    const error = await withRetries(
      retryPolicy({ attempts: 2, initialDelayMs: 0 }),
      () => true,
      async () => {
        throw 'plain';
      },
    ).catch((e: unknown) => e);
    expect(error).toBe('plain');
    expect(retryAttemptsOf(error)).toBeUndefined();
  });
});

describe('retryPolicy', () => {
  it('has the documented defaults', () => {
    expect(retryPolicy()).toEqual({
      attempts: 3,
      initialDelayMs: 200,
      maxDelayMs: 5_000,
      deadlineMs: 60_000,
      jitter: 'full',
    });
    expect(DEFAULT_RETRY_POLICY).toEqual(retryPolicy());
  });

  it.each([
    { attempts: 0 },
    { attempts: 1.5 },
    { initialDelayMs: -1 },
    { maxDelayMs: Number.NaN },
    { deadlineMs: Number.POSITIVE_INFINITY },
    { initialDelayMs: 500, maxDelayMs: 100 },
    { jitter: 'none' as 'full' },
  ])('refuses %o', (overrides) => {
    expect(() => retryPolicy(overrides)).toThrow(ConfigurationError);
  });
});

describe('performSync retries an entity', () => {
  const site = defineEntity({
    name: 'site',
    table: 'site',
    columns: z.object({ id: z.number().int(), tenant_id: z.number(), label: z.string() }),
    key: ['id'],
    tenantColumn: 'tenant_id',
  });
  const zone = defineEntity({
    name: 'zone',
    table: 'zone',
    columns: z.object({ id: z.number().int(), tenant_id: z.number(), site_id: z.number() }),
    key: ['id'],
    tenantColumn: 'tenant_id',
    references: [{ entity: 'site', columns: { site_id: 'id' } }],
  });
  const column = (type: string, typeName: string) => ({ type, typeName, kind: 'scalar' as const });
  const int = column('integer', 'int4');

  /** What an attempt meets: nothing, a failure that passes, or one that does not. */
  type Fault = 'none' | 'transient' | 'permanent';
  const faultError = (fault: Fault, side: string) =>
    fault === 'transient'
      ? Object.assign(new Error(`${side}: terminating connection due to administrator command`), {
          code: '57P01',
        })
      : Object.assign(new Error(`${side}: permission denied for table site`), { code: '42501' });

  /**
   * A pg-mem source whose reads of `site` in its n-th snapshot meet `faults[n]` (then succeed),
   * or a target in memory whose n-th write of `site` does; the source snapshots are counted.
   */
  function faultyPair(side: 'source' | 'target', faults: readonly Fault[]) {
    const source = memDatabase(`CREATE TABLE site (id int PRIMARY KEY, tenant_id int, label text);
      CREATE TABLE zone (id int PRIMARY KEY, tenant_id int, site_id int);
      INSERT INTO site VALUES (1, 1, 'North'), (2, 1, 'South'), (3, 2, 'Other');
      INSERT INTO zone VALUES (10, 1, 1), (11, 1, 2)`);
    const faultAt = (attempt: number) => {
      const fault = faults[attempt] ?? 'none';
      return fault === 'none' ? undefined : faultError(fault, side);
    };
    let writes = 0;
    let snapshots = 0;
    const pool: PgPool = {
      async connect() {
        const client = await source.pool.connect();
        const faulty: PgClient = {
          query(config) {
            if (config.text.startsWith('BEGIN ISOLATION LEVEL REPEATABLE READ')) snapshots++;
            // Every read of one snapshot meets the same fault: each snapshot is an attempt.
            const error =
              side === 'source' && /FROM "site"/.test(config.text)
                ? faultAt(snapshots - 1)
                : undefined;
            return error ? Promise.reject(error) : client.query(config);
          },
          release: (error) => client.release(error),
        };
        return faulty;
      },
    };
    const memory = createMemorySyncDatabase({
      site: { id: int, tenant_id: int, label: column('text', 'text') },
      zone: { id: int, tenant_id: int, site_id: int },
    });
    memory.insertRaw('site', { id: '9', tenant_id: '1', label: 'Gone' });
    const target: SyncDatabase = {
      ...memory,
      session: (work) => work(target),
      transaction: (work, options) => memory.transaction(() => work(target), options),
      async write(entity, rows, scope, options) {
        // Half the rows land, then the attempt fails: its transaction must undo them.
        if (side === 'target' && entity.name === 'site') {
          const written = await memory.write(entity, rows.slice(0, 1), scope, options);
          const error = faultAt(writes++);
          if (error) throw error;
          const rest = await memory.write(entity, rows.slice(1), scope, options);
          return {
            inserted: [...written.inserted, ...rest.inserted],
            updated: [...written.updated, ...rest.updated],
          };
        }
        return memory.write(entity, rows, scope, options);
      },
      isTransient: (error) => (error as { code?: unknown }).code === '57P01',
    };
    return { pool, target, memory, snapshots: () => snapshots };
  }

  const faultLists = fc.array(fc.constantFrom<Fault>('none', 'transient', 'permanent'), {
    maxLength: 5,
  });

  it('as the failures and the attempt limit say; rolled back before each retry; a new snapshot only after a source failure', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom<'source' | 'target'>('source', 'target'),
        faultLists,
        fc.integer({ min: 1, max: 4 }),
        async (side, faults, attempts) => {
          const pair = faultyPair(side, faults);
          const { lines, logger } = recordingLogger();
          const events: SyncEvent[] = [];
          const result = await performSync({
            source: pair.pool,
            target: pair.target,
            tenantId: 1,
            entities: [site, zone],
            retry: { attempts, initialDelayMs: 0, maxDelayMs: 0 },
            logger,
            onEvent: (event) => events.push(event),
          });

          // The attempts the faults allow: transient ones are retried within the limit.
          const failures: Fault[] = [];
          for (const fault of faults) {
            if (fault === 'none' || failures.length === attempts) break;
            failures.push(fault);
            if (fault === 'permanent') break;
          }
          const gaveUp =
            failures.at(-1) === 'permanent' ||
            (failures.length === attempts && failures.at(-1) === 'transient');
          const entity = result.entities.site;
          expect(entity.attempts).toBe(gaveUp ? failures.length : failures.length + 1);
          expect(entity.failedAttempts.map((f) => [f.attempt, f.code, f.transient])).toEqual(
            failures.map((fault, i) => [
              i + 1,
              fault === 'transient' ? '57P01' : '42501',
              fault === 'transient',
            ]),
          );
          expect(entity.status).toBe(gaveUp ? 'failed' : 'ok');
          const rows = pair.memory
            .rows('site')
            .map((row) => row.id)
            .sort();
          // Never half-applied: all of the entity or none of it.
          expect(rows).toEqual(gaveUp ? ['9'] : ['1', '2']);
          expect(result.entities.zone.status).toBe('ok');
          expect(result.entities.zone.inserted).toBe(gaveUp ? 0 : 2);

          const retries = gaveUp ? failures.length - 1 : failures.length;
          const retryEvents = events.filter((event) => event.type === 'entity-retry');
          expect(retryEvents).toHaveLength(retries);
          expect(
            lines.filter((line) => line.level === 'warn' && /trying again/.test(line.message)),
          ).toHaveLength(retries);
          // A read that failed leaves its snapshot behind for a retry, or for the next entity
          // when this one gave up on a transient failure; a write that failed does not.
          const givenUpTransient = gaveUp && failures.at(-1) === 'transient' && attempts > 1;
          const replaced = side === 'source' ? retries + (givenUpTransient ? 1 : 0) : 0;
          expect(pair.snapshots()).toBe(1 + replaced);
          expect(retryEvents.every((event) => event.newSnapshot === (side === 'source'))).toBe(
            true,
          );
        },
      ),
      { numRuns: 60 },
    );
  });

  it('does not retry with retry: false, and takes out of the range retry options before any I/O', async () => {
    const pair = faultyPair('source', ['transient', 'none']);
    const result = await performSync({
      source: pair.pool,
      target: pair.target,
      tenantId: 1,
      entities: [site],
      retry: false,
    });
    expect(result.entities.site).toMatchObject({ status: 'failed', attempts: 1 });
    expect(pair.snapshots()).toBe(1);
    for (const retry of [{ attempts: 0 }, { initialDelayMs: -1 }, { deadlineMs: Number.NaN }]) {
      await expect(
        performSync({
          source: pair.pool,
          target: pair.target,
          tenantId: 1,
          entities: [site],
          retry,
        }),
      ).rejects.toThrow(ConfigurationError);
    }
    expect(pair.snapshots()).toBe(1);
  });
});
