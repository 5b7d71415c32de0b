import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { onTestFinished } from 'vitest';

/** The built command, as `npx meter-sync` runs it (`npm test` builds first). */
export const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

export interface CliRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs `meter-sync …` in a process of its own and collects its output. The environment is the
 * test's, minus the meter-sync variables, plus `env`.
 */
export function runCli(
  args: readonly string[],
  options: { env?: Record<string, string>; timeoutMs?: number; cwd?: string } = {},
): Promise<CliRun> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build (npm test does)`);
  const env = { ...process.env };
  delete env.METER_SYNC_SOURCE_URL;
  delete env.METER_SYNC_TARGET_URL;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...env, ...options.env },
      ...(options.cwd ? { cwd: options.cwd } : {}),
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: options.timeoutMs ?? 60_000,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The counts and status in an entity's table row: `[inserted, updated, deleted, skipped, status]`. */
export function tableRow(stdout: string, entity: string): string[] | undefined {
  const line = stdout.split('\n').find((text) => text.trim().startsWith(`${entity} `));
  return line?.trim().split(/\s+/).slice(1, 6);
}

/**
 * A project directory of its own, with `meter-sync` installed (a link to this package) and a
 * package.json, as a config file would find them; for the test that calls it.
 */
export function projectDirectory(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'meter-sync-project-'));
  // Removed once the test ends (its links, not what they point to).
  onTestFinished(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, 'node_modules'));
  symlinkSync(PACKAGE_ROOT, join(root, 'node_modules', 'meter-sync'), 'dir');
  symlinkSync(join(PACKAGE_ROOT, 'node_modules', 'zod'), join(root, 'node_modules', 'zod'), 'dir');
  writeFileSync(join(root, 'package.json'), JSON.stringify({ name: 'site', type: 'module' }));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

const PACKAGE_ROOT = fileURLToPath(new URL('../..', import.meta.url));
