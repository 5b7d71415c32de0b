import { existsSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { createJiti } from 'jiti';
import { z } from 'zod/v4';
import type { MeterSyncConfig } from '../config/define-config.js';
import type { AnyEntity } from '../entity/types.js';
import { messageOf } from '../errors.js';
import { CliError, ExitCode } from './exit-codes.js';

/** The names a config file may have, in the order they are looked for in a directory. */
export const CONFIG_FILE_NAMES = [
  'meter-sync.config.ts',
  'meter-sync.config.mts',
  'meter-sync.config.js',
  'meter-sync.config.mjs',
  'meter-sync.config.cjs',
] as const;

/** A config file, read and checked. */
export interface LoadedConfig {
  /** The file's path, as the CLI names it in messages. */
  readonly path: string;
  readonly config: MeterSyncConfig<AnyEntity>;
}

/**
 * The config file to use: `explicit` (`--config`), else the first of {@link CONFIG_FILE_NAMES}
 * in `cwd` or a directory above it, stopping at the package root (the first directory with a
 * package.json) or the file system's root.
 */
export function findConfigFile(cwd: string, explicit?: string): string | undefined {
  if (explicit !== undefined) {
    const path = resolve(cwd, explicit);
    if (!existsSync(path) || !statSync(path).isFile()) {
      throw new CliError(`--config: no file at ${path}`, ExitCode.usage);
    }
    return path;
  }
  let directory = resolve(cwd);
  while (true) {
    for (const name of CONFIG_FILE_NAMES) {
      const path = join(directory, name);
      if (existsSync(path)) return path;
    }
    const parent = dirname(directory);
    if (existsSync(join(directory, 'package.json')) || parent === directory) return undefined;
    directory = parent;
  }
}

/**
 * Loads a config file with jiti, so TypeScript configs need no build step. Native `import()` is
 * tried first, so the file's `import … from 'meter-sync'` is the very module the CLI runs.
 */
export async function loadConfigFile(path: string): Promise<LoadedConfig> {
  const jiti = createJiti(import.meta.url, { tryNative: true, fsCache: false, moduleCache: false });
  let exported: unknown;
  try {
    exported = await jiti.import(path, { default: true });
  } catch (error) {
    throw new CliError(
      `config file ${basename(path)} could not be loaded: ${messageOf(error)}`,
      ExitCode.usage,
    );
  }
  if (typeof exported === 'function') exported = await (exported as () => unknown)();
  return { path, config: checkConfig(exported, basename(path)) };
}

const connection = z.union([
  z.string(),
  z.looseObject({
    connectionString: z.string().optional(),
    host: z.string().optional(),
    port: z.number().int().min(1).max(65535).optional(),
    user: z.string().optional(),
    password: z.string().optional(),
    database: z.string().optional(),
  }),
]);

const configSchema = z.strictObject({
  source: connection.optional(),
  target: connection.optional(),
  tenantId: z.union([z.string(), z.number().int(), z.bigint()]).optional(),
  entities: z
    .custom<unknown>(
      (value) =>
        Array.isArray(value) ||
        (typeof value === 'object' &&
          value !== null &&
          typeof (value as { select?: unknown }).select === 'function'),
      'must be a list of entity definitions (defineEntity) or a registry (createRegistry)',
    )
    .optional(),
  only: z.array(z.string()).optional(),
  schedule: z.union([z.number().int().positive(), z.string().min(1)]).optional(),
  timezone: z.string().optional(),
  runOnStart: z.boolean().optional(),
  statementTimeoutMs: z.number().int().nonnegative().optional(),
  lockTimeoutMs: z.number().int().nonnegative().optional(),
  waitForLock: z.boolean().optional(),
  incremental: z
    .union([
      z.boolean(),
      z.object({ verifyEveryMs: z.number().int().positive().optional() }).strict(),
    ])
    .optional(),
  retry: z
    .union([
      z.literal(false),
      z.strictObject({
        attempts: z.number().int().min(1).optional(),
        initialDelayMs: z.number().nonnegative().optional(),
        maxDelayMs: z.number().nonnegative().optional(),
        deadlineMs: z.number().nonnegative().optional(),
      }),
    ])
    .optional(),
  logLevel: z.enum(['debug', 'info', 'warn', 'error', 'silent']).optional(),
});

function checkConfig(exported: unknown, file: string): MeterSyncConfig<AnyEntity> {
  if (typeof exported !== 'object' || exported === null) {
    throw new CliError(
      `config file ${file} must export a config object (export default defineConfig({ … }))`,
      ExitCode.usage,
    );
  }
  const parsed = configSchema.safeParse(exported);
  if (!parsed.success) {
    // Values are left out of the message: a connection field may hold a password.
    const problems = parsed.error.issues.map((issue) => {
      const where = issue.path.join('.') || '(root)';
      if (issue.code === 'unrecognized_keys') return `unknown field ${issue.keys.join(', ')}`;
      return `${where}: ${issue.message}`;
    });
    throw new CliError(`config file ${file}: ${problems.join('; ')}`, ExitCode.usage);
  }
  // The checked shape is the same object: entities keep their identity.
  return exported as MeterSyncConfig<AnyEntity>;
}
