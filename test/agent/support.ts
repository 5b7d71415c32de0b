import type { PgClient, PgPool, SyncAgent, SyncAgentEvent } from '../../src/index.js';

/**
 * A pool whose queries wait until `open()` is called, so a test can hold a run in flight for as
 * long as it needs, without timing assumptions.
 */
export function gatedPool(pool: PgPool) {
  let open!: () => void;
  const gate = new Promise<void>((resolve) => {
    open = resolve;
  });
  let waiting = 0;
  const gated: PgPool = {
    async connect(): Promise<PgClient> {
      const client = await pool.connect();
      return {
        async query(config) {
          waiting++;
          await gate;
          return client.query(config);
        },
        release: (error) => client.release(error),
      };
    },
  };
  return { pool: gated, open: () => open(), waiting: () => waiting };
}

/** A pool that can never connect, as a database that is down. */
export const unreachablePool: PgPool = {
  connect: () => Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:1')),
};

/** Records an agent's events in order. */
export function recordEvents(agent: SyncAgent) {
  const events: SyncAgentEvent[] = [];
  const types = [
    'run-start',
    'entity-start',
    'entity-end',
    'run-end',
    'run-skipped',
    'run-failed',
  ] as const;
  for (const type of types) agent.on(type, (event) => events.push(event));
  return events;
}

/** Resolves with the `count`-th event of `type` the agent emits from now on. */
export function nextEvents<T extends SyncAgentEvent['type']>(
  agent: SyncAgent,
  type: T,
  count = 1,
): Promise<Extract<SyncAgentEvent, { type: T }>[]> {
  const seen: Extract<SyncAgentEvent, { type: T }>[] = [];
  return new Promise((resolve) => {
    const off = agent.on(type, (event) => {
      seen.push(event);
      if (seen.length === count) {
        off();
        resolve(seen);
      }
    });
  });
}

/** Waits until `condition` holds, checking every few milliseconds; fails after `ms`. */
export async function until(condition: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
