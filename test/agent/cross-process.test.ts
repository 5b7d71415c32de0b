import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { builtInPairOnPostgres } from '../support/postgres.js';

interface Line {
  event: string;
  at: number;
  ok?: boolean;
  error?: string;
}

/** Starts an agent process; resolves once it has connected. */
async function startAgentProcess(env: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/agent/agent-process.ts'], {
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  }) as ChildProcessWithoutNullStreams;
  const lines: Line[] = [];
  let stderr = '';
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  const ready = new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (line === 'ready') resolve();
      else lines.push(JSON.parse(line) as Line);
    });
    void exited.then((code) => reject(new Error(`agent process exited (${code}): ${stderr}`)));
  });
  await ready;
  return {
    go: () => child.stdin.end('go\n'),
    finished: async () => {
      const code = await exited;
      expect(stderr).toBe('');
      expect(code).toBe(0);
      return lines;
    },
  };
}

async function twoAgents(lock: 'skip' | 'wait') {
  const { remote, local } = await builtInPairOnPostgres([1]);
  const env = { SOURCE_URL: remote.url, TARGET_URL: local.url, LOCK: lock, QUERY_DELAY_MS: '150' };
  const agents = await Promise.all([startAgentProcess(env), startAgentProcess(env)]);
  for (const agent of agents) agent.go();
  const [a, b] = await Promise.all(agents.map((agent) => agent.finished()));
  return { a: a ?? [], b: b ?? [], local };
}

describe('sync agents in separate processes on one PostgreSQL sync database', () => {
  it('never run at the same time: the one that finds the lock taken skips its run', async () => {
    const { a, b, local } = await twoAgents('skip');
    const events = [...a, ...b].map((line) => line.event).sort();
    expect(events).toEqual(['run-end', 'run-skipped', 'run-start']);
    expect([...a, ...b].find((line) => line.event === 'run-skipped')?.error).toBe('LockedError');
    const { rows } = await local.pool.query('SELECT count(*)::int AS n FROM register');
    expect(rows[0].n).toBe(4);
  });

  it("with lock: 'wait', both run, one after the other", async () => {
    const { a, b } = await twoAgents('wait');
    const span = (lines: Line[]) => {
      const start = lines.find((line) => line.event === 'run-start')?.at ?? Number.NaN;
      const end = lines.find((line) => line.event === 'run-end')?.at ?? Number.NaN;
      return { start, end };
    };
    const [first, second] = [span(a), span(b)].sort((x, y) => x.start - y.start);
    expect(first?.end).toBeGreaterThan(first?.start ?? Number.NaN);
    expect(second?.start).toBeGreaterThanOrEqual(first?.end ?? Number.NaN);
    expect([...a, ...b].filter((line) => line.event === 'run-end' && line.ok)).toHaveLength(2);
  });
});
