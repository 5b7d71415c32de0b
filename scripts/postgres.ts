/**
 * Starts a throwaway PostgreSQL server for tests and benchmarks: a fresh data directory under
 * /tmp, listening on 127.0.0.1 only, durability off (fsync, synchronous_commit) since the data is
 * disposable. `initdb` refuses to run as root, so as root every server command runs as the
 * `postgres` user.
 *
 * Run directly to get a server until Ctrl-C:  npx tsx scripts/postgres.ts
 */
import { execFileSync, spawn } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

export interface PostgresServer {
  readonly host: string;
  readonly port: number;
  readonly dataDirectory: string;
  /** A connection string for `database` as the superuser `postgres`. */
  url(database?: string): string;
  /** Runs a pg_ctl action (`restart`, …) on the server. */
  control(action: 'restart' | 'stop' | 'start'): Promise<void>;
  /** Stops the server immediately and deletes its files. Safe to call twice. */
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Directory of the PostgreSQL binaries. Default: $PG_BIN, else the newest /usr/lib/postgresql/N/bin. */
  readonly binDirectory?: string;
  /** Extra `-c name=value` settings. */
  readonly settings?: Readonly<Record<string, string | number>>;
}

export function findBinDirectory(): string {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((entry) => existsSync(join(root, entry, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length === 0) {
    throw new Error('PostgreSQL server binaries not found: install postgresql-15 or set PG_BIN');
  }
  return join(root, versions[0] as string, 'bin');
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address
          ? resolve(address.port)
          : reject(new Error('no port')),
      );
    });
  });
}

/**
 * Runs a command to its end and resolves with its output; as the `postgres` user when
 * `asPostgres` (PostgreSQL's and PgBouncer's programs refuse to run as root).
 */
export function run(
  command: string,
  args: readonly string[],
  asPostgres: boolean,
): Promise<string> {
  const [file, argv] = asPostgres
    ? ['runuser', ['-u', 'postgres', '--', command, ...args]]
    : [command, [...args]];
  return new Promise((resolve, reject) => {
    const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => {
      output += chunk;
    });
    child.stderr.on('data', (chunk) => {
      output += chunk;
    });
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0
        ? resolve(output)
        : reject(new Error(`${command} ${args.join(' ')} exited with ${code}:\n${output}`)),
    );
  });
}

/**
 * A new directory under /tmp with mode 0700, owned by the `postgres` user when running as root,
 * so that the server programs run as `postgres` can write in it.
 */
export function serverDirectory(prefix: string): string {
  const base = mkdtempSync(join('/tmp', prefix));
  if (process.getuid?.() === 0) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
    chownSync(base, uid, gid);
  }
  chmodSync(base, 0o700);
  return base;
}

export async function startPostgres(options: StartOptions = {}): Promise<PostgresServer> {
  const bin = options.binDirectory ?? findBinDirectory();
  const asPostgres = process.getuid?.() === 0;
  const base = mkdtempSync('/tmp/meter-sync-pg-');
  const data = join(base, 'data');
  if (asPostgres) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
    chownSync(base, uid, gid);
  }
  chmodSync(base, 0o700);
  const host = '127.0.0.1';
  const port = await freePort();
  const settings: Record<string, string | number> = {
    listen_addresses: host,
    port,
    unix_socket_directories: base,
    fsync: 'off',
    synchronous_commit: 'off',
    full_page_writes: 'off',
    max_connections: 200,
    ...options.settings,
  };
  const serverOptions = Object.entries(settings)
    .map(([name, value]) => `-c ${name}=${value}`)
    .join(' ');

  await run(
    join(bin, 'initdb'),
    ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync'],
    asPostgres,
  );
  const pgCtl = (action: string, extra: string[] = []) =>
    run(
      join(bin, 'pg_ctl'),
      ['-D', data, '-l', join(base, 'server.log'), '-w', ...extra, action],
      asPostgres,
    );
  await pgCtl('start', ['-o', serverOptions]);

  let stopped = false;
  const server: PostgresServer = {
    host,
    port,
    dataDirectory: data,
    url: (database = 'postgres') => `postgres://postgres@${host}:${port}/${database}`,
    async control(action) {
      try {
        await pgCtl(
          action,
          action === 'stop'
            ? ['-m', 'fast']
            : action === 'start'
              ? ['-o', serverOptions]
              : ['-m', 'fast', '-o', serverOptions],
        );
      } catch (error) {
        const log = existsSync(join(base, 'server.log'))
          ? readFileSync(join(base, 'server.log'), 'utf8').slice(-2000)
          : '';
        throw new Error(`${(error as Error).message}\n${log}`);
      }
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await pgCtl('stop', ['-m', 'immediate']).catch(() => undefined);
      rmSync(base, { recursive: true, force: true });
    },
  };
  return server;
}

if (process.argv[1]?.endsWith('postgres.ts')) {
  const server = await startPostgres();
  console.log(`PostgreSQL is up: ${server.url()}  (Ctrl-C stops it and deletes its data)`);
  const stop = () => void server.stop().then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
