/**
 * Incremental detection against a source that never stops changing: a writer process
 * (test/support/change-writer.ts), seeded, writes to the source from several connections while
 * this process syncs it, over and over, into one sync database per tenant. At each quiet point
 * (the writer has ended every transaction and waits) one more incremental sync per target must
 * leave each target equal to the source's rows of its tenant. Between quiet points no sync may
 * read the source table empty while a TRUNCATE and reload is in flight.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import fc from 'fast-check';
import type pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { col, defineEntity, type EntityResult, performSync } from '../../src/index.js';
import { createDatabase } from '../support/postgres.js';

/** A composite key, a tenant column, a column named differently on the source. */
const point = defineEntity({
  name: 'point',
  table: 'point',
  columns: z.object({
    site: col.int(),
    code: col.text(),
    tenant_id: col.int(),
    label: col.text().nullable(),
    amount: col.numeric().nullable(),
  }),
  key: ['site', 'code'],
  tenantColumn: 'tenant_id',
  source: { table: 'reading_point', columns: { label: 'title' } },
});

const SYNCED_TENANTS = [1, 2] as const;
/** The key space: sites 0..19 by codes c0..c19, the source starting with half of it. */
const SITES = 20;
const CODES = 20;

/** About half the key space, spread over tenants 1, 2 and 3 (which no target syncs). */
const SOURCE_DDL = `CREATE TABLE reading_point (site int NOT NULL, code text NOT NULL,
  tenant_id int NOT NULL, title text, amount numeric, PRIMARY KEY (site, code));
INSERT INTO reading_point
  SELECT s, 'c' || c, 1 + (s * 7 + c * 3) % 3, 't' || (s * ${CODES} + c), (s + c) / 4.0
  FROM generate_series(0, ${SITES - 1}) AS s, generate_series(0, ${CODES - 1}) AS c
  WHERE (s * 31 + c * 17) % 2 = 0;`;
const TARGET_DDL = `CREATE TABLE point (site int NOT NULL, code text NOT NULL, tenant_id int NOT NULL,
  label text, amount numeric, PRIMARY KEY (site, code))`;

/** One tenant's rows as text, sorted: the source's and the target's compare equal when in step. */
async function rowsOf(pool: pg.Pool, select: string, tenant: number): Promise<string[]> {
  const { rows } = await pool.query(`SELECT r FROM (${select}) AS t ORDER BY r`, [tenant]);
  return rows.map((row: { r: string }) => row.r);
}
const sourceRows = (pool: pg.Pool, tenant: number) =>
  rowsOf(
    pool,
    'SELECT ROW(site, code, tenant_id, title, amount)::text AS r FROM reading_point WHERE tenant_id = $1',
    tenant,
  );
const targetRows = (pool: pg.Pool, tenant: number) =>
  rowsOf(
    pool,
    'SELECT ROW(site, code, tenant_id, label, amount)::text AS r FROM point WHERE tenant_id = $1',
    tenant,
  );

interface WriterLine {
  readonly event: string;
  readonly [count: string]: unknown;
}

/** The writer process, connected; its lines collected, waited for by event. */
async function startWriter(sourceUrl: string, seed: number, connections: number) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/support/change-writer.ts'], {
    env: {
      ...process.env,
      SOURCE_URL: sourceUrl,
      SEED: `${seed}`,
      CONNECTIONS: `${connections}`,
      SITES: `${SITES}`,
      CODES: `${CODES}`,
    },
    stdio: ['pipe', 'pipe', 'pipe'],
  }) as ChildProcessWithoutNullStreams;
  running.add(child);
  let stderr = '';
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  const exited = new Promise<number | null>((resolve) =>
    child.on('close', (code) => {
      running.delete(child);
      resolve(code);
    }),
  );
  const waiting: { event: string; resolve: (line: WriterLine) => void }[] = [];
  createInterface({ input: child.stdout }).on('line', (text) => {
    const line = JSON.parse(text) as WriterLine;
    const index = waiting.findIndex((w) => w.event === line.event);
    if (index >= 0) waiting.splice(index, 1)[0]?.resolve(line);
  });
  const next = (event: string) =>
    new Promise<WriterLine>((resolve, reject) => {
      waiting.push({ event, resolve });
      void exited.then((code) => reject(new Error(`writer exited (${code}): ${stderr}`)));
    });
  const ready = next('ready');
  await ready;
  const send = (line: string) => child.stdin.write(`${line}\n`);
  return {
    send,
    /** Asks for a quiet point; resolves once every writer transaction has ended. */
    pause: () => {
      const quiet = next('quiet');
      send('pause');
      return quiet;
    },
    kill: () => child.kill('SIGKILL'),
    stop: async () => {
      const stopped = next('stopped');
      child.stdin.end('stop\n');
      const counts = await stopped;
      expect(await exited).toBe(0);
      expect(stderr).toBe('');
      return counts;
    },
  };
}

const running = new Set<ChildProcessWithoutNullStreams>();
afterEach(() => {
  for (const child of running) child.kill('SIGKILL');
});

/** What one seed does: the writer's seed and connections, how long each stretch of writes lasts. */
const scenario = fc.record({
  seed: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
  connections: fc.integer({ min: 2, max: 4 }),
  stretchesMs: fc.array(fc.integer({ min: 1000, max: 2200 }), { minLength: 3, maxLength: 3 }),
});

type Scenario = typeof scenario extends fc.Arbitrary<infer T> ? T : never;

/** Across all seeds: what the writer did and which detection the syncs used. */
const totals = {
  quietPoints: 0,
  heldAcrossSync: 0,
  truncateReloads: 0,
  vacuumFulls: 0,
  syncsWhileWriting: 0,
  incrementalWhileWriting: 0,
};

async function convergesAtEveryQuietPoint({
  seed,
  connections,
  stretchesMs,
}: Scenario): Promise<void> {
  const source = await createDatabase('writer_src');
  await source.pool.query(SOURCE_DDL);
  const targets = new Map<number, pg.Pool>();
  for (const tenant of SYNCED_TENANTS) {
    const target = await createDatabase(`writer_t${tenant}`);
    await target.pool.query(TARGET_DDL);
    targets.set(tenant, target.pool);
  }
  const sync = async (tenant: number): Promise<EntityResult> => {
    const result = await performSync({
      source: source.pool,
      target: targets.get(tenant) as pg.Pool,
      tenantId: tenant,
      entities: [point],
    });
    const entity = result.entities.point;
    expect(entity.error?.message).toBeUndefined();
    return entity;
  };
  const expectInStep = async (tenant: number, when: string) => {
    const target = targets.get(tenant) as pg.Pool;
    expect(await targetRows(target, tenant), `tenant ${tenant} ${when}`).toEqual(
      await sourceRows(source.pool, tenant),
    );
  };

  // First syncs compare in full and leave the watermarks.
  for (const tenant of SYNCED_TENANTS) {
    expect((await sync(tenant)).detection?.mode).toBe('full');
    await expectInStep(tenant, 'after the first sync');
  }

  const writer = await startWriter(source.url, seed, connections);
  try {
    for (const [quietPoint, stretchMs] of stretchesMs.entries()) {
      // Syncs one after another while the writer writes, the tenants in turn.
      const until = Date.now() + stretchMs;
      for (let turn = 0; Date.now() < until; turn++) {
        const tenant = SYNCED_TENANTS[turn % SYNCED_TENANTS.length] as number;
        writer.send('sync-start');
        const result = await sync(tenant);
        writer.send('sync-end');
        // The writer never takes a tenant's rows near zero; an emptied target means a sync
        // read the table empty, as a snapshot older than a TRUNCATE does.
        expect(
          await targetRows(targets.get(tenant) as pg.Pool, tenant),
          `tenant ${tenant} after a sync while writing`,
        ).not.toEqual([]);
        totals.syncsWhileWriting++;
        if (result.detection?.mode === 'incremental') totals.incrementalWhileWriting++;
      }
      const counts = await writer.pause();
      for (const tenant of SYNCED_TENANTS) {
        const result = await sync(tenant);
        expect(result.detection, `tenant ${tenant} at quiet point ${quietPoint}`).toMatchObject({
          mode: 'incremental',
        });
        await expectInStep(
          tenant,
          `at quiet point ${quietPoint} (writer: ${JSON.stringify(counts)})`,
        );
      }
      totals.quietPoints++;
      writer.send('resume');
    }
  } catch (error) {
    writer.kill();
    throw error;
  }
  const counts = await writer.stop();
  totals.heldAcrossSync += Number(counts.heldAcrossSync);
  totals.truncateReloads += Number(counts.truncateReloads);
  totals.vacuumFulls += Number(counts.vacuumFulls);
}

describe('incremental detection while a writer process changes the source (PostgreSQL)', () => {
  it('leaves every tenant target equal to the source at each quiet point, incrementally', async () => {
    await fc.assert(fc.asyncProperty(scenario, convergesAtEveryQuietPoint), {
      numRuns: 5,
      // A run takes seconds and a failure prints its seed and counts: no shrinking.
      endOnFailure: true,
    });
    // The property exercised what it is about: transactions that were open across a sync and
    // committed after it, syncs that were incremental while rows changed, the rare writes.
    expect(totals.quietPoints).toBe(15);
    expect(totals.heldAcrossSync).toBeGreaterThan(0);
    expect(totals.incrementalWhileWriting).toBeGreaterThan(totals.syncsWhileWriting / 2);
    expect(totals.truncateReloads + totals.vacuumFulls).toBeGreaterThan(0);
  }, 120_000);
});
