import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { performSync } from '../../src/index.js';
import {
  bulkReading,
  DISTANCES,
  digestOf,
  RESET_TARGET,
  sourceSql,
  TENANT,
  targetSql,
} from './support/bulk-reading.js';
import { type Child, killAll, startChild, supportScript } from './support/child.js';
import {
  type Cluster,
  idleInTransaction,
  type Session,
  sessionsOf,
  sleep,
  startCluster,
  waitFor,
  withApplicationName,
} from './support/cluster.js';
import { report, seededRandom } from './support/figures.js';

const ROWS = 100_000;
const KILLS = 24;
/** Kills of incremental runs, each after its own round of changes on the source. */
const INCREMENTAL_KILLS = 8;
/**
 * Rows of the incremental runs' table: enough that a round's changes take a while to write and
 * stay under the share of changed rows (5%) up to which the census places them, the path most
 * incremental runs take.
 */
const INCREMENTAL_ROWS = 300_000;

let cluster: Cluster;
let sourceUrl: string;
let targetUrl: string;
let source: pg.Pool;
let target: pg.Pool;

beforeAll(async () => {
  cluster = await startCluster();
  sourceUrl = await cluster.createDatabase('source');
  targetUrl = await cluster.createDatabase('target');
  source = cluster.pool(sourceUrl);
  target = cluster.pool(targetUrl);
  await Promise.all([source.query(sourceSql(ROWS)), target.query(targetSql(ROWS))]);
});

afterAll(async () => {
  await killAll();
  await cluster?.stop();
});

/** A sync process, loaded and connected, waiting for `go`; its sessions carry `name`. */
function syncProcess(name: string, urls = { source: sourceUrl, target: targetUrl }): Child {
  return startChild(supportScript('sync-once.ts'), {
    SOURCE_URL: withApplicationName(urls.source, name),
    TARGET_URL: withApplicationName(urls.target, name),
  });
}

const isLine = (event: string, phase?: string) => (line: { event: string; phase?: unknown }) =>
  line.event === event && (phase === undefined || line.phase === phase);

/** What the killed sync's target session was doing at the kill, from its last statement. */
function stepAtKill(sessions: readonly Session[]): string {
  const session = sessions[0];
  if (!session) return 'after commit (session closed)';
  const query = session.query.trimStart();
  if (session.state === 'idle') return 'after commit (session idle)';
  // Between statements the session shows the last one it ran, and the client is working.
  const step = query.startsWith('INSERT INTO "bulk_reading"')
    ? 'upsert'
    : query.startsWith('DELETE FROM "bulk_reading"')
      ? 'delete missing rows'
      : /^COMMIT/i.test(query)
        ? 'commit'
        : `other: ${query.slice(0, 40).replace(/\s+/g, ' ')}`;
  return session.state === 'active' ? step : `client at work after ${step}`;
}

/**
 * Whether the kill caught the entity's transaction with rows written and not committed: while
 * it writes, or (the pipeline writing batch by batch) while it reads the next batch after one.
 */
const caughtMidApply = (sessions: readonly Session[]) =>
  sessions[0] !== undefined && sessions[0].state !== 'idle' && sessions[0].wrote;

/** The entity's stored watermark, every column, as text; undefined when there is none. */
async function storedWatermark(pool: pg.Pool): Promise<string | undefined> {
  const { rows } = await pool.query(
    "SELECT row_to_json(w)::text AS w FROM meter_sync_watermark AS w WHERE entity = 'bulk_reading'",
  );
  expect(rows.length).toBeLessThanOrEqual(1);
  return rows[0]?.w;
}

describe('a sync process killed with SIGKILL while it writes a large entity', () => {
  it('leaves the entity exactly as before the run or fully applied, never in between, and the next run converges', async () => {
    const random = seededRandom('crash-mid-apply');
    const digest = async (table: string, pool: pg.Pool = target) =>
      (await pool.query(digestOf(table))).rows[0] as { rows: number; digest: string };
    const before = await digest('bulk_reading_before');
    const expected = await digest('bulk_reading_expected');
    // The target's copy of the source is only a yardstick if it equals the source.
    expect(await digest('bulk_reading', source)).toEqual(expected);
    expect(before.digest).not.toBe(expected.digest);

    // One uninterrupted run measures the write: from the staged rows to the entity's end.
    await target.query(RESET_TARGET);
    const calibration = syncProcess('crash-calibration');
    await calibration.waitForLine(isLine('ready'));
    calibration.send('go');
    const staged = await calibration.waitForLine(isLine('entity-progress', 'reading'));
    const ended = await calibration.waitForLine(isLine('entity-end'));
    expect(ended.status).toBe('ok');
    expect(await calibration.exited).toEqual({ code: 0, signal: null });
    expect(await digest('bulk_reading')).toEqual(expected);
    // Measured again by every full sync that follows, as caches warm.
    let writeWindowMs = ended.at - staged.at;

    const steps = new Map<string, number>();
    let kills = 0;
    let duringWrite = 0;
    let landedBeforeCommit = 0;
    let landedAfterCommit = 0;
    let exitedBeforeKill = 0;
    let rowsChecked = 0;
    let next = syncProcess('crash-0');
    for (let attempt = 0; kills < KILLS; attempt++) {
      expect(attempt, 'too many runs ended before their kill').toBeLessThan(KILLS * 2);
      await target.query(RESET_TARGET);
      const watermarkBefore = await storedWatermark(target);
      const name = `crash-${attempt}`;
      const child = next;
      await child.waitForLine(isLine('ready'));
      child.send('go');
      await child.waitForLine(isLine('entity-progress', 'reading'));
      // Anywhere in the write, and now and then just after the commit.
      await sleep(random.next() * writeWindowMs * 1.15);
      const atKill = await sessionsOf(cluster.admin, name, 'target');
      const endedBeforeKill = child.lines.some(isLine('entity-end'));
      const alive = child.process.exitCode === null && child.process.signalCode === null;
      child.process.kill('SIGKILL');
      const exit = await child.exited;
      // Load the next process while this one's aftermath is checked.
      next = syncProcess(`crash-${attempt + 1}`);
      if (!alive || exit.signal !== 'SIGKILL') {
        exitedBeforeKill++;
        continue;
      }
      kills++;
      const step = stepAtKill(atKill);
      steps.set(step, (steps.get(step) ?? 0) + 1);
      if (caughtMidApply(atKill)) duringWrite++;

      // The server notices the dead client and ends its sessions, releasing the sync lock.
      await waitFor(
        `the sessions of ${name} to end`,
        () => sessionsOf(cluster.admin, name),
        (sessions) => sessions.length === 0,
      );
      const after = await digest('bulk_reading');
      rowsChecked += after.rows;
      const state =
        after.digest === before.digest
          ? 'before'
          : after.digest === expected.digest
            ? 'applied'
            : 'in between';
      if (state === 'in between') {
        const { rows } = await target.query(DISTANCES);
        expect.fail(
          `kill ${kills} (${step}) left the table in between: ${JSON.stringify(rows[0])}`,
        );
      }
      if (endedBeforeKill) expect(state).toBe('applied');
      // Written in the entity's transaction, the watermark moved with the rows or not at all.
      if (state === 'before') expect(await storedWatermark(target)).toBe(watermarkBefore);
      else expect(await storedWatermark(target)).not.toBe(watermarkBefore);
      if (state === 'before') landedBeforeCommit++;
      else landedAfterCommit++;
      expect(await idleInTransaction(cluster.admin, 'source')).toBe(0);

      let stagedAt = 0;
      const converged = await performSync({
        source,
        target,
        tenantId: TENANT,
        entities: [bulkReading],
        onEvent: (event) => {
          if (event.type === 'entity-progress' && event.phase === 'reading') stagedAt = Date.now();
          if (event.type === 'entity-end' && state === 'before')
            writeWindowMs = Date.now() - stagedAt;
        },
      });
      expect(converged.ok).toBe(true);
      expect(converged.entities.bulk_reading.inserted).toBe(state === 'before' ? ROWS * 0.1 : 0);
      const final = await digest('bulk_reading');
      rowsChecked += final.rows;
      expect(final).toEqual(expected);
    }
    await killAll();
    expect(await idleInTransaction(cluster.admin, 'source')).toBe(0);

    report('crash-mid-apply', {
      rows: ROWS,
      writeWindowMs: Math.round(writeWindowMs),
      kills,
      landedBeforeCommit,
      landedAfterCommit,
      exitedBeforeKill,
      duringWrite,
      stepAtKill: Object.fromEntries(steps),
      rowsChecked,
    });
    expect(kills).toBe(KILLS);
    // The kills are aimed at the write; most must have caught rows written and not committed.
    expect(duringWrite).toBeGreaterThanOrEqual(KILLS / 2);
  });
});

/**
 * A round of changes on the source for an incremental run to read, about 4% of the rows: a
 * 25th of the values changed (a different one each round), some rows deleted, new ones inserted.
 */
const sourceChanges = (round: number) => `
UPDATE bulk_reading SET value = value + 1 WHERE reading_id % 25 = ${round % 25};
DELETE FROM bulk_reading WHERE reading_id % 1009 = ${round % 1009};
INSERT INTO bulk_reading
  SELECT g, ${TENANT}, g % 5000, g / 100.0, 'inserted', timestamptz '2024-06-01 00:00:00+00'
  FROM generate_series(${2 * INCREMENTAL_ROWS + round * 1000 + 1}, ${2 * INCREMENTAL_ROWS + round * 1000 + 500}) AS g;`;

describe('a sync process killed with SIGKILL while it writes the changes an incremental run read', () => {
  it('leaves data and watermark both as before the run or both applied, and the next incremental run converges', async () => {
    const random = seededRandom('crash-mid-apply-incremental');
    const urls = {
      source: await cluster.createDatabase('incremental_source'),
      target: await cluster.createDatabase('incremental_target'),
    };
    const incSource = cluster.pool(urls.source);
    const incTarget = cluster.pool(urls.target);
    await Promise.all([
      incSource.query(sourceSql(INCREMENTAL_ROWS)),
      incTarget.query(targetSql(INCREMENTAL_ROWS)),
    ]);
    const digest = async (pool: pg.Pool) =>
      (await pool.query(digestOf('bulk_reading'))).rows[0] as { rows: number; digest: string };
    // Every run in a process like the killed ones: the watermark's fingerprint covers the code
    // of the definition's schemas, which this process compiles otherwise.
    const syncToEnd = async (name: string) => {
      const child = syncProcess(name, urls);
      await child.waitForLine(isLine('ready'));
      child.send('go');
      const result = await child.waitForLine(isLine('result'));
      expect(await child.exited).toEqual({ code: 0, signal: null });
      expect(result.ok).toBe(true);
      return result as unknown as {
        inserted: number;
        updated: number;
        deleted: number;
        detection: { mode: string; reason: string };
      };
    };
    // A first run compares in full and stores the watermark the killed runs start from.
    expect((await syncToEnd('incremental-first')).detection.mode).toBe('full');
    expect(await storedWatermark(incTarget)).toBeDefined();

    // One uninterrupted incremental run measures the window from the first rows read to the end.
    await incSource.query(sourceChanges(0));
    const calibration = syncProcess('incremental-calibration', urls);
    await calibration.waitForLine(isLine('ready'));
    calibration.send('go');
    const compared = await calibration.waitForLine(isLine('compared'));
    expect(compared.since).not.toBeNull();
    // The window from the first batch written (uncommitted from then on) to the entity's end.
    const written = await calibration.waitForLine(isLine('entity-progress', 'writing'));
    const ended = await calibration.waitForLine(isLine('entity-end'));
    expect(ended.status).toBe('ok');
    expect(await calibration.exited).toEqual({ code: 0, signal: null });
    expect(await digest(incTarget)).toEqual(await digest(incSource));
    const windowMs = ended.at - written.at;

    let kills = 0;
    let aimedAtWrite = 0;
    let duringWrite = 0;
    let landedBeforeCommit = 0;
    let landedAfterCommit = 0;
    for (let round = 1; kills < INCREMENTAL_KILLS; round++) {
      expect(round, 'too many runs ended before their kill').toBeLessThan(INCREMENTAL_KILLS * 2);
      await incSource.query(sourceChanges(round));
      const before = { data: await digest(incTarget), watermark: await storedWatermark(incTarget) };
      const expected = await digest(incSource);
      expect(before.data).not.toEqual(expected);

      const name = `incremental-crash-${round}`;
      const child = syncProcess(name, urls);
      await child.waitForLine(isLine('ready'));
      child.send('go');
      // The run reads only what changed: it must say so before it writes anything.
      expect((await child.waitForLine(isLine('compared'))).since).not.toBeNull();
      // Every fourth kill lands just after the commit, the others anywhere in the write after
      // its first batch.
      const afterCommit = kills % 4 === 3;
      if (afterCommit) await child.waitForLine(isLine('entity-end'));
      else {
        await child.waitForLine(isLine('entity-progress', 'writing'));
        await sleep(random.next() * windowMs * 0.9);
      }
      const atKill = await sessionsOf(cluster.admin, name, 'incremental_target');
      const alive = child.process.exitCode === null && child.process.signalCode === null;
      child.process.kill('SIGKILL');
      const exit = await child.exited;
      if (!alive || exit.signal !== 'SIGKILL') continue;
      kills++;
      if (!afterCommit) aimedAtWrite++;
      if (caughtMidApply(atKill)) duringWrite++;
      await waitFor(
        `the sessions of ${name} to end`,
        () => sessionsOf(cluster.admin, name),
        (sessions) => sessions.length === 0,
      );

      // The watermark is written in the entity's transaction: it moved if and only if the
      // changes landed.
      const after = { data: await digest(incTarget), watermark: await storedWatermark(incTarget) };
      if (afterCommit) expect(after.data, `kill ${kills}: after the commit`).toEqual(expected);
      if (after.data.digest === before.data.digest) {
        expect(after.watermark, `kill ${kills}: data as before, watermark moved`).toBe(
          before.watermark,
        );
        landedBeforeCommit++;
      } else {
        expect(after.data, `kill ${kills}: data neither as before nor applied`).toEqual(expected);
        expect(after.watermark, `kill ${kills}: data applied, watermark as before`).not.toBe(
          before.watermark,
        );
        landedAfterCommit++;
      }
      expect(await idleInTransaction(cluster.admin, 'incremental_source')).toBe(0);

      // The watermark still holds: the next run reads incrementally and converges.
      const converged = await syncToEnd(`${name}-again`);
      expect(converged.detection.mode).toBe('incremental');
      expect(await digest(incTarget)).toEqual(expected);
      if (after.data.digest === expected.digest)
        expect(converged).toMatchObject({ inserted: 0, updated: 0, deleted: 0 });
    }

    report('crash-mid-apply-incremental', {
      rows: INCREMENTAL_ROWS,
      windowMs,
      kills,
      landedBeforeCommit,
      landedAfterCommit,
      aimedAtWrite,
      duringWrite,
    });
    // Most kills aimed at the write must catch changes written and not committed.
    expect(duringWrite).toBeGreaterThanOrEqual(aimedAtWrite / 2);
    expect(landedAfterCommit).toBeGreaterThanOrEqual(1);
  });
});
