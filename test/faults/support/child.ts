/**
 * Child processes that print JSON lines: started with tsx, their lines collected as they come,
 * waited for by content, killed by pid. Every child started here is killed by `killAll()`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export interface Line {
  readonly event: string;
  readonly at: number;
  readonly [field: string]: unknown;
}

export interface Child {
  readonly process: ChildProcess;
  readonly lines: Line[];
  /** Everything written to stderr so far. */
  stderr(): string;
  /** Resolves with the first line (already seen or to come) that `match` accepts. */
  waitForLine(match: (line: Line) => boolean, timeoutMs?: number): Promise<Line>;
  /** Resolves with the exit code (null when killed by a signal) and the signal. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Writes a line to the child's stdin. */
  send(text: string): void;
}

const running = new Set<ChildProcess>();

/** A TypeScript file under test/faults/support, by name. */
export const supportScript = (name: string) => fileURLToPath(new URL(`./${name}`, import.meta.url));

/** Starts `node [nodeArgs] --import tsx script` with extra environment variables. */
export function startChild(
  script: string,
  env: Record<string, string>,
  nodeArgs: readonly string[] = [],
): Child {
  const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', script], {
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  running.add(child);
  const lines: Line[] = [];
  const waiters: { match: (line: Line) => boolean; resolve: (line: Line) => void }[] = [];
  let stderr = '';
  child.stderr?.on('data', (chunk) => {
    stderr += chunk;
  });
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (text) => {
    let line: Line;
    try {
      line = JSON.parse(text) as Line;
    } catch {
      line = { event: 'text', text, at: Date.now() };
    }
    lines.push(line);
    for (const waiter of [...waiters]) {
      if (waiter.match(line)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(line);
      }
    }
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    }),
  );
  return {
    process: child,
    lines,
    stderr: () => stderr,
    exited,
    send: (text) => child.stdin?.write(`${text}\n`),
    waitForLine(match, timeoutMs = 60_000) {
      const seen = lines.find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise<Line>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no matching line within ${timeoutMs} ms; stderr: ${stderr}`)),
          timeoutMs,
        );
        const settle = (line: Line) => {
          clearTimeout(timer);
          resolve(line);
        };
        waiters.push({ match, resolve: settle });
        void exited.then(({ code, signal }) => {
          clearTimeout(timer);
          reject(
            new Error(`child exited (${code ?? signal}) before a matching line; stderr: ${stderr}`),
          );
        });
      });
    },
  };
}

/** SIGKILLs every child still running (for afterAll and finally blocks). */
export async function killAll(): Promise<void> {
  const children = [...running];
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('close', () => resolve());
          child.kill('SIGKILL');
        }),
    ),
  );
}
