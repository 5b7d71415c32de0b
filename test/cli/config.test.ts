import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createDatabase } from '../support/postgres.js';
import { projectDirectory, runCli, tableRow } from './run-cli.js';

/** A Client System with one table the built-ins do not know, under other column names. */
async function alarmPair() {
  const remote = await createDatabase('cfg_remote');
  const local = await createDatabase('cfg_local');
  await remote.pool.query(`
    CREATE TABLE register_alarm (register_id bigint, severity text, tenant_id bigint,
      limit_value numeric(10,2), PRIMARY KEY (register_id, severity));
    INSERT INTO register_alarm VALUES (101, 'high', 1, 250.50), (101, 'low', 1, 10), (201, 'high', 2, 99)`);
  await local.pool.query(`
    CREATE TABLE alarm_threshold (register_id bigint, level text, tenant_id bigint NOT NULL,
      threshold numeric, PRIMARY KEY (register_id, level))`);
  return { remote, local };
}

const entityModule = `
import { z } from 'zod';
import { col, defineEntity } from 'meter-sync';

export const alarmThreshold = defineEntity({
  name: 'alarm_threshold',
  table: 'alarm_threshold',
  columns: z.object({
    register_id: col.bigint(),
    level: col.text(),
    tenant_id: col.bigint(),
    threshold: col.numeric().nullable(),
  }),
  key: ['register_id', 'level'],
  tenantColumn: 'tenant_id',
  source: { table: 'register_alarm', columns: { level: 'severity', threshold: 'limit_value' } },
});
`;

describe('meter-sync.config.ts', () => {
  it('is found from a subdirectory, and its custom entities sync; variables and options override it', async () => {
    const { remote, local } = await alarmPair();
    const root = projectDirectory({
      'entities.ts': entityModule,
      'meter-sync.config.ts': `
import { defineConfig } from 'meter-sync';
import { alarmThreshold } from './entities.js';

const tenant: number = 1;
export default defineConfig({
  source: ${JSON.stringify(remote.url)},
  target: 'postgres://nobody@127.0.0.1:1/unreachable',
  tenantId: tenant,
  entities: [alarmThreshold],
  statementTimeoutMs: 30_000,
});
`,
      'deep/er/.keep': '',
    });
    const cwd = join(root, 'deep', 'er');
    const fromFile = await runCli(['sync'], {
      cwd,
      env: { METER_SYNC_TARGET_URL: local.url },
    });
    expect(fromFile.stderr).toBe('');
    expect(fromFile.code).toBe(0);
    expect(tableRow(fromFile.stdout, 'alarm_threshold')).toEqual(['2', '0', '0', '0', 'ok']);
    const { rows } = await local.pool.query(
      'SELECT register_id::int AS id, level, threshold::text FROM alarm_threshold ORDER BY 1, 2',
    );
    expect(rows).toEqual([
      { id: 101, level: 'high', threshold: '250.50' },
      { id: 101, level: 'low', threshold: '10.00' },
    ]);

    // The config's col schemas are the CLI's own (one copy of meter-sync): the set-based path,
    // which only trusts col schemas, is taken for them.
    const debug = await runCli(['sync', '--full', '--log-level', 'debug'], {
      cwd,
      env: { METER_SYNC_TARGET_URL: local.url },
    });
    expect(debug.stderr).toMatch(/entity compared entity=alarm_threshold hash=sql/);

    // --tenant overrides tenantId, --target overrides the file's target.
    const flags = await runCli(['sync', '--tenant', '2', '--target', local.url, '--json'], { cwd });
    expect(flags.code).toBe(0);
    expect(JSON.parse(flags.stdout)).toMatchObject({
      tenantId: '2',
      entities: { alarm_threshold: { inserted: 1 } },
    });

    // Without the override the file's unreachable target is used, and named as the origin.
    const fileTarget = await runCli(['sync'], { cwd });
    expect(fileTarget.code).toBe(2);
    expect(fileTarget.stderr).toMatch(/check meter-sync\.config\.ts \(target\)/);

    // --entities picks from the config's entities, not the built-ins.
    const unknown = await runCli(['plan', '--entities', 'register'], { cwd });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown entity "register"; choose from alarm_threshold/);
  });

  it('--config names a .mjs file anywhere; a broken file is one clear line', async () => {
    const { remote, local } = await alarmPair();
    const root = projectDirectory({
      'entities.ts': entityModule,
      'conf/sync.mjs': `
import { builtInEntities, defineConfig } from 'meter-sync';
export default defineConfig({
  source: { connectionString: ${JSON.stringify(remote.url)} },
  target: ${JSON.stringify(local.url)},
  entities: [...builtInEntities],
  only: ['device'],
});
`,
      'bad.config.ts': 'export default { source: 42, shedule: 5 };',
    });
    const run = await runCli(['plan', '--config', 'conf/sync.mjs', '--json'], { cwd: root });
    // The source has no device table: the one entity selected fails.
    expect(run.code).toBe(1);
    expect(JSON.parse(run.stdout)).toMatchObject({
      exitCode: 1,
      entities: { device: { status: 'failed' } },
      error: { message: expect.stringMatching(/device: .*"device" does not exist/) },
    });
    expect(Object.keys(JSON.parse(run.stdout).entities)).toEqual(['device']);

    const bad = await runCli(['plan', '--config', 'bad.config.ts'], { cwd: root });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/config file bad\.config\.ts: source: .*; unknown field shedule/);
  });
});
