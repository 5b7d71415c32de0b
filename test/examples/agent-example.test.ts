import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);

describe('examples/agent.ts', () => {
  it('syncs at start, carries a later change on the next scheduled run, and exits after stop()', async () => {
    const { stdout } = await run('npx', ['tsx', 'examples/agent.ts'], { timeout: 60_000 });
    expect(stdout.match(/^sync started$/gm)).toHaveLength(2);
    expect(stdout.match(/^sync finished: ok$/gm)).toHaveLength(2);
    expect(stdout).toMatch(/"entity":"register","inserted":4,/);
    expect(stdout).toMatch(/"entity":"register","inserted":0,"updated":1,/);
    expect(stdout).toMatch(/^register: 1 updated; next run due at \d{4}-/m);
  });
});
