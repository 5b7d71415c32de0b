/**
 * A throwaway primary and hot standby pair, for tests of reads on a replica: the primary is a
 * throwaway server (scripts/postgres.ts) with WAL for streaming replication, the standby a
 * `pg_basebackup -R` of it in a fresh directory under /tmp, streaming from it and open for
 * reads (`hot_standby = on`). As root, every server program runs as the `postgres` user.
 *
 * Run directly to get a pair until Ctrl-C:  npx tsx scripts/standby.ts
 */
import { appendFileSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  findBinDirectory,
  freePort,
  type PostgresServer,
  run,
  type StartOptions,
  serverDirectory,
  startPostgres,
} from './postgres.js';

/** A hot standby: connections to it read what the primary has replayed so far. */
export interface StandbyServer {
  readonly host: string;
  readonly port: number;
  readonly dataDirectory: string;
  /** A connection string for `database` as the superuser `postgres`. */
  url(database?: string): string;
  /** The end of the standby's server log, for messages in failed tests. */
  log(): string;
  /** Stops the standby immediately and deletes its files. Safe to call twice. */
  stop(): Promise<void>;
}

export interface StandbyOptions {
  /** Directory of the PostgreSQL binaries. Default: as `startPostgres`. */
  readonly binDirectory?: string;
  /**
   * How long replay waits for conflicting standby queries before cancelling them
   * (`max_standby_streaming_delay`). Default: `'100ms'`, so conflicts show at once.
   */
  readonly maxStandbyStreamingDelay?: string;
  /** Whether the standby tells the primary which rows its queries still need. Default: off. */
  readonly hotStandbyFeedback?: boolean;
  /** Extra `-c name=value` settings. */
  readonly settings?: Readonly<Record<string, string | number>>;
}

/**
 * Starts a throwaway server fit to be a primary: `wal_level = replica`, WAL senders, and a
 * `replication` line for 127.0.0.1 in pg_hba.conf (trust, as every local connection of a
 * throwaway server).
 */
export async function startPrimary(options: StartOptions = {}): Promise<PostgresServer> {
  const server = await startPostgres({
    ...options,
    settings: { wal_level: 'replica', max_wal_senders: 5, ...options.settings },
  });
  const hba = join(server.dataDirectory, 'pg_hba.conf');
  const lines = readFileSync(hba, 'utf8').split('\n');
  const hasReplication = lines.some((line) =>
    /^\s*host\s+replication\s+all\s+127\.0\.0\.1\/32\s+trust\b/.test(line),
  );
  if (!hasReplication) {
    appendFileSync(hba, '\nhost replication all 127.0.0.1/32 trust\n');
    await server.control('restart');
  }
  return server;
}

/**
 * Starts a hot standby of `primary`: a base backup taken with `pg_basebackup -R` (which writes
 * `primary_conninfo` and `standby.signal`), then started with `hot_standby = on`. Resolves once
 * the standby accepts connections, that is, once it has replayed to a consistent state.
 */
export async function startStandby(
  primary: Pick<PostgresServer, 'host' | 'port'>,
  options: StandbyOptions = {},
): Promise<StandbyServer> {
  const bin = options.binDirectory ?? findBinDirectory();
  const asPostgres = process.getuid?.() === 0;
  const base = serverDirectory('meter-sync-standby-');
  const data = join(base, 'data');
  const host = '127.0.0.1';
  const port = await freePort();
  const logFile = join(base, 'server.log');
  const settings: Record<string, string | number> = {
    listen_addresses: host,
    port,
    unix_socket_directories: base,
    hot_standby: 'on',
    max_standby_streaming_delay: options.maxStandbyStreamingDelay ?? '100ms',
    hot_standby_feedback: options.hotStandbyFeedback ? 'on' : 'off',
    fsync: 'off',
    synchronous_commit: 'off',
    full_page_writes: 'off',
    // A hot standby needs at least the primary's max_connections (startPostgres: 200).
    max_connections: 200,
    ...options.settings,
  };
  const serverOptions = Object.entries(settings)
    .map(([name, value]) => `-c ${name}=${value}`)
    .join(' ');
  const log = () => (existsSync(logFile) ? readFileSync(logFile, 'utf8').slice(-3000) : '');
  const pgCtl = (action: string, extra: string[] = []) =>
    run(join(bin, 'pg_ctl'), ['-D', data, '-l', logFile, '-w', ...extra, action], asPostgres);

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await pgCtl('stop', ['-m', 'immediate']).catch(() => undefined);
    rmSync(base, { recursive: true, force: true });
  };
  try {
    await run(
      join(bin, 'pg_basebackup'),
      [
        '-h',
        primary.host,
        '-p',
        String(primary.port),
        '-U',
        'postgres',
        '-D',
        data,
        '-R',
        '-X',
        'stream',
        '-c',
        'fast',
        '--no-sync',
      ],
      asPostgres,
    );
    await pgCtl('start', ['-o', serverOptions]);
  } catch (error) {
    const message = `${(error as Error).message}\n${log()}`;
    await stop();
    throw new Error(message);
  }
  return {
    host,
    port,
    dataDirectory: data,
    url: (database = 'postgres') => `postgres://postgres@${host}:${port}/${database}`,
    log,
    stop,
  };
}

if (process.argv[1]?.endsWith('standby.ts')) {
  const primary = await startPrimary();
  const standby = await startStandby(primary).catch(async (error: unknown) => {
    await primary.stop();
    throw error;
  });
  console.log(`primary: ${primary.url()}\nstandby: ${standby.url()}  (Ctrl-C stops both)`);
  const stop = () => void Promise.all([standby.stop(), primary.stop()]).then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
