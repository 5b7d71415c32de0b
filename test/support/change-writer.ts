/**
 * Random, seeded writes to the `reading_point` table of a source database, from several
 * connections at once, for the incremental detection property. Each connection runs
 * transactions of inserts, updates (some writing values unchanged), deletes, tenant moves, key
 * changes and deletes followed by a reinsert of the key, with savepoints rolled back or released;
 * some transactions are held open for a while before they commit or roll back; now and then one
 * truncates and reloads the table, and VACUUM, VACUUM (FREEZE) or VACUUM FULL runs.
 *
 * Lines on stdin steer it:
 *   pause       finish every transaction (as each planned: commit or rollback), start no new
 *               one, then print {"event":"quiet", …counts}
 *   resume      carry on writing
 *   sync-start  a sync is about to take its snapshot
 *   sync-end    that sync has finished (counts transactions held open across a whole sync)
 *   stop        finish as for pause, print {"event":"stopped", …counts} and exit
 * It prints {"event":"ready"} once connected. Anything unexpected goes to stderr and exits 1.
 *
 *   SOURCE_URL=… SEED=42 CONNECTIONS=3 SITES=20 CODES=20 tsx test/support/change-writer.ts
 */
import { createInterface } from 'node:readline';
import pg from 'pg';

const seed = Number(process.env.SEED ?? 1);
const connections = Number(process.env.CONNECTIONS ?? 3);
/** Keys are sites 0..SITES-1 by codes c0..c(CODES-1). */
const SITES = Number(process.env.SITES ?? 20);
const CODES = Number(process.env.CODES ?? 20);
/** Tenants 1 and 2 are synced; rows moved to tenant 3 leave both targets' scope. */
const TENANTS = [1, 2, 3] as const;

/** mulberry32: small, seeded, good enough to choose statements. */
function seededRandom(start: number) {
  let state = start >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    below: (n: number) => Math.floor(next() * n),
    chance: (p: number) => next() < p,
    pick: <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)] as T,
  };
}
type Random = ReturnType<typeof seededRandom>;

const counts = {
  transactions: 0,
  committed: 0,
  rolledBack: 0,
  /** Ended by an error: a deadlock, a lock timeout, a key taken meanwhile. */
  failed: 0,
  heldOpen: 0,
  /** Held open and committed after a whole sync ran while they were open. */
  heldAcrossSync: 0,
  savepointsRolledBack: 0,
  savepointsReleased: 0,
  truncateReloads: 0,
  vacuums: 0,
  vacuumFulls: 0,
  statements: 0,
};

const syncs = { started: 0, ended: 0 };

let paused = false;
let stopping = false;
let resumed: () => void = () => undefined;
let resumption = Promise.resolve();
const idle = new Set<number>();
let quietWaiter: (() => void) | undefined;

const isQuiet = () => idle.size === connections;
const print = (line: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(line)}\n`);

/** A random key of the key space. */
const keyOf = (random: Random): [number, string] => [
  random.below(SITES),
  `c${random.below(CODES)}`,
];
const titleOf = (random: Random) => (random.chance(0.1) ? null : `t${random.below(1000)}`);
/** Numerics of varied scale: their text must survive the sync unchanged. */
const amountOf = (random: Random) =>
  random.chance(0.1)
    ? null
    : random.pick([`${random.below(100)}`, `${random.below(100)}.50`, `${random.below(9)}.125`]);

/** One random row change, in the client's transaction or on its own. */
async function change(client: pg.Client, random: Random): Promise<void> {
  const [site, code] = keyOf(random);
  const run = async (text: string, values: unknown[]) => {
    counts.statements++;
    return client.query(text, values);
  };
  const kind = random.below(100);
  if (kind < 22) {
    await run(
      'INSERT INTO reading_point VALUES ($1, $2, $3, $4, $5) ON CONFLICT (site, code) DO NOTHING',
      [site, code, random.pick(TENANTS), titleOf(random), amountOf(random)],
    );
  } else if (kind < 42) {
    await run('UPDATE reading_point SET title = $3, amount = $4 WHERE site = $1 AND code = $2', [
      site,
      code,
      titleOf(random),
      amountOf(random),
    ]);
  } else if (kind < 50) {
    // Several rows of a site at once.
    await run('UPDATE reading_point SET amount = amount + 1 WHERE site = $1', [site]);
  } else if (kind < 58) {
    // A new row version with the same values.
    await run('UPDATE reading_point SET title = title, amount = amount WHERE site = $1', [site]);
  } else if (kind < 72) {
    await run('DELETE FROM reading_point WHERE site = $1 AND code = $2', [site, code]);
  } else if (kind < 82) {
    await run('UPDATE reading_point SET tenant_id = $3 WHERE site = $1 AND code = $2', [
      site,
      code,
      random.pick(TENANTS),
    ]);
  } else if (kind < 92) {
    // Delete and reinsert the key: the same values half the time, a new tenant now and then.
    const { rows } = await run(
      'DELETE FROM reading_point WHERE site = $1 AND code = $2 RETURNING tenant_id, title, amount::text',
      [site, code],
    );
    const row = rows[0] as { tenant_id: number; title: string | null; amount: string | null };
    if (row)
      await run('INSERT INTO reading_point VALUES ($1, $2, $3, $4, $5)', [
        site,
        code,
        random.chance(0.2) ? random.pick(TENANTS) : row.tenant_id,
        random.chance(0.5) ? row.title : titleOf(random),
        row.amount,
      ]);
  } else {
    // The key itself changes: the old key is gone, a new one appears.
    const [, newCode] = keyOf(random);
    await run(
      'UPDATE reading_point SET code = $3 WHERE site = $1 AND code = $2 AND NOT EXISTS (SELECT 1 FROM reading_point WHERE site = $1 AND code = $3)',
      [site, code, newCode],
    );
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Waits up to `ms`, less if a pause or stop asks for the transaction to end. */
async function holdFor(ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until && !paused && !stopping) await sleep(10);
}

/** One transaction of random changes, savepoints, maybe held open; commits or rolls back. */
async function transaction(client: pg.Client, random: Random): Promise<void> {
  const held = random.chance(0.25);
  const commit = random.chance(0.85);
  await client.query('BEGIN');
  let syncsBefore = -1;
  const steps = 1 + random.below(5);
  for (let step = 0; step < steps; step++) {
    if (random.chance(0.25)) {
      await client.query('SAVEPOINT inner_changes');
      for (let i = 0, n = 1 + random.below(3); i < n; i++) await change(client, random);
      if (random.chance(0.5)) {
        await client.query('ROLLBACK TO SAVEPOINT inner_changes');
        counts.savepointsRolledBack++;
      } else {
        await client.query('RELEASE SAVEPOINT inner_changes');
        counts.savepointsReleased++;
      }
    } else {
      await change(client, random);
    }
    // Once the transaction has written (has an xid), note how many syncs had started.
    if (syncsBefore < 0) syncsBefore = syncs.started;
  }
  if (held) {
    counts.heldOpen++;
    await holdFor(50 + random.below(550));
  }
  if (commit) {
    await client.query('COMMIT');
    counts.committed++;
    if (held && syncs.ended > syncsBefore) counts.heldAcrossSync++;
  } else {
    await client.query('ROLLBACK');
    counts.rolledBack++;
  }
}

/** The table emptied and filled again in one transaction, with a change or two, maybe undone. */
async function truncateAndReload(client: pg.Client, random: Random): Promise<void> {
  await client.query('BEGIN');
  await client.query(
    'CREATE TEMP TABLE saved_points ON COMMIT DROP AS SELECT * FROM reading_point',
  );
  await client.query('TRUNCATE reading_point');
  await client.query('INSERT INTO reading_point SELECT * FROM saved_points');
  for (let i = 0, n = random.below(3); i < n; i++) await change(client, random);
  counts.truncateReloads++;
  // Held, so syncs start while the table is truncated and not yet committed.
  if (random.chance(0.5)) await holdFor(20 + random.below(180));
  if (random.chance(0.8)) {
    await client.query('COMMIT');
    counts.committed++;
  } else {
    await client.query('ROLLBACK');
    counts.rolledBack++;
  }
}

async function worker(index: number, client: pg.Client): Promise<void> {
  const random = seededRandom(seed * 7919 + index * 104729);
  for (;;) {
    if (stopping) break;
    if (paused) {
      idle.add(index);
      if (isQuiet()) quietWaiter?.();
      await resumption;
      idle.delete(index);
      continue;
    }
    counts.transactions++;
    const kind = random.below(100);
    try {
      if (kind < 3) await truncateAndReload(client, random);
      else if (kind < 8) {
        const full = random.chance(0.5);
        await client.query(full ? 'VACUUM FULL reading_point' : random.pick(VACUUMS));
        if (full) counts.vacuumFulls++;
        else counts.vacuums++;
      } else if (kind < 20) {
        await change(client, random);
        counts.committed++;
      } else await transaction(client, random);
    } catch (error) {
      counts.failed++;
      // In a transaction or not, nothing stays open.
      await client.query('ROLLBACK').catch(() => undefined);
      const code = (error as { code?: string }).code ?? '';
      // Deadlocks, lock timeouts, serialization and key conflicts are the writer's own races.
      if (!['40P01', '55P03', '40001', '23505'].includes(code)) throw error;
    }
    await sleep(random.below(15));
  }
  idle.add(index);
}

const VACUUMS = ['VACUUM reading_point', 'VACUUM (FREEZE) reading_point'];

const sourceUrl = process.env.SOURCE_URL;
if (!sourceUrl) throw new Error('SOURCE_URL is required');
const clients = Array.from(
  { length: connections },
  () => new pg.Client({ connectionString: sourceUrl, application_name: 'change-writer' }),
);
await Promise.all(clients.map((client) => client.connect()));
// A writer waiting on another's held transaction gives up rather than stall the pause.
await Promise.all(clients.map((client) => client.query("SET lock_timeout = '1500ms'")));

const quiet = () =>
  new Promise<void>((resolve) => {
    if (isQuiet()) return resolve();
    quietWaiter = () => {
      quietWaiter = undefined;
      resolve();
    };
  });

const workers = Promise.all(clients.map((client, index) => worker(index, client)));
workers.catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});

print({ event: 'ready' });
for await (const line of createInterface({ input: process.stdin })) {
  if (line === 'sync-start') syncs.started++;
  else if (line === 'sync-end') syncs.ended++;
  else if (line === 'pause') {
    resumption = new Promise<void>((resolve) => {
      resumed = resolve;
    });
    paused = true;
    await quiet();
    print({ event: 'quiet', ...counts });
  } else if (line === 'resume') {
    paused = false;
    resumed();
  } else if (line === 'stop') break;
}
stopping = true;
paused = false;
resumed();
await workers;
await Promise.all(clients.map((client) => client.end()));
print({ event: 'stopped', ...counts });
