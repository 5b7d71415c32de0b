import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { runCli, tableRow } from './run-cli.js';

/** The second sync's table, which follows its heading. */
const secondSync = (stdout: string) => stdout.slice(stdout.indexOf('== Second sync'));

function expectWholeStory(stdout: string) {
  expect(stdout).toMatch(/Starting two embedded PostgreSQL databases/);
  expect(tableRow(stdout, 'register')).toEqual(['4', '0', '0', '0', 'ok']);
  expect(tableRow(stdout, 'device_register')).toEqual(['6', '0', '0', '0', 'ok']);
  const second = secondSync(stdout);
  expect(tableRow(second, 'device')).toEqual(['0', '0', '0', '0', 'ok']);
  expect(tableRow(second, 'meter')).toEqual(['0', '0', '0', '0', 'ok']);
  expect(tableRow(second, 'register')).toEqual(['1', '1', '1', '0', 'ok']);
  expect(tableRow(second, 'device_register')).toEqual(['1', '0', '1', '0', 'ok']);
  expect(second).toMatch(
    /\(device 1, register 202\) is tenant 2's: not read, 1 junction row inserted and 0 skipped/,
  );
  expect(stdout).toMatch(/A third sync finds nothing to change: 0 rows written\./);
  expect(stdout).toMatch(/holds registers 101, 102, 103, 105 of tenant 1 and 0 rows of tenant 2/);
}

describe('meter-sync demo', () => {
  it('runs the whole story on embedded PostgreSQL with the built command', async () => {
    const run = await runCli(['demo'], { timeoutMs: 120_000 });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expectWholeStory(run.stdout);
  }, 150_000);

  it('runs from a clone as README says: npm run demo', async () => {
    const run = await new Promise<{ code: number | null; stdout: string }>((resolve, reject) => {
      const child = spawn('npm', ['run', '--silent', 'demo'], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let stdout = '';
      child.stdout.on('data', (chunk) => {
        stdout += chunk;
      });
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout }));
    });
    expect(run.code).toBe(0);
    expectWholeStory(run.stdout);
  }, 150_000);
});
