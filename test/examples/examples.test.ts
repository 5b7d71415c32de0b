import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const examples = readdirSync(new URL('../../examples', import.meta.url)).filter((file) =>
  file.endsWith('.ts'),
);

describe('examples run as documented', () => {
  it.each(examples)('npx tsx examples/%s exits 0', async (file) => {
    const { stdout } = await run('npx', ['tsx', `examples/${file}`], { timeout: 60_000 });
    expect(stdout).toMatch(/entity synced/);
  });

  it('custom-entity.ts disables the threshold the remote dropped', async () => {
    const { stdout } = await run('npx', ['tsx', 'examples/custom-entity.ts'], { timeout: 60_000 });
    expect(stdout).toMatch(/"entity":"alarm_threshold","inserted":0,"updated":1,"deleted":1/);
    expect(stdout).toMatch(/'low'\s+│\s+207\s+│\s+false/);
  });
});
