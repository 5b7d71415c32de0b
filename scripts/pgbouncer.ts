/**
 * Starts a throwaway PgBouncer in front of a PostgreSQL server, for tests: a fresh directory under
 * /tmp with its ini, user list, log and pid file, listening on 127.0.0.1 only. PgBouncer refuses
 * to run as root, so as root it runs as the `postgres` user.
 *
 * Run directly to get one in front of a new throwaway server until Ctrl-C:
 *   npx tsx scripts/pgbouncer.ts
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { freePort, run, serverDirectory, startPostgres } from './postgres.js';

export interface PgBouncer {
  readonly host: string;
  readonly port: number;
  /** A connection string through PgBouncer for `database` (an entry of `databases`) as `user`. */
  url(database: string, user?: string): string;
  /** The end of PgBouncer's log, for messages in failed tests. */
  log(): string;
  /** Stops PgBouncer at once (SIGTERM) and deletes its files. Safe to call twice. */
  stop(): Promise<void>;
}

/** One `[databases]` entry: the name clients connect to, and the pool behind it. */
export interface PgBouncerDatabase {
  /** The name clients use. */
  readonly name: string;
  /** The database on the upstream server. Default: `name`. */
  readonly dbname?: string;
  /** Server connections of this entry's pool. Default: `default_pool_size`. */
  readonly poolSize?: number;
  /** The upstream port of this entry. Default: the upstream's. */
  readonly port?: number;
}

export interface PgBouncerOptions {
  /** The PostgreSQL server behind PgBouncer. */
  readonly upstream: { readonly host: string; readonly port: number };
  /** `pool_mode`. Default: `'transaction'`. */
  readonly poolMode?: 'session' | 'transaction' | 'statement';
  /** The `[databases]` entries. Default: one entry, `postgres`. */
  readonly databases?: readonly (PgBouncerDatabase | string)[];
  /** Users let in (`auth_type = trust`; the server behind trusts 127.0.0.1). Default: `postgres`. */
  readonly users?: readonly string[];
  /** More `[pgbouncer]` settings (`default_pool_size`, `query_wait_timeout`, …). */
  readonly settings?: Readonly<Record<string, string | number>>;
}

/** True when a `pgbouncer` program is on the PATH (or at /usr/sbin/pgbouncer). */
export function findPgBouncer(): string | undefined {
  const candidates = [
    ...(process.env.PATH ?? '').split(':').filter(Boolean),
    '/usr/sbin',
    '/usr/bin',
  ].map((directory) => join(directory, 'pgbouncer'));
  return candidates.find((candidate) => existsSync(candidate));
}

/** Quotes a value for a PgBouncer connection string (`key='value'`). */
const connValue = (value: string | number) => `'${String(value).replace(/['\\]/g, '\\$&')}'`;

export async function startPgBouncer(options: PgBouncerOptions): Promise<PgBouncer> {
  const program = findPgBouncer();
  if (!program) throw new Error('pgbouncer not found: install the pgbouncer package');
  const asPostgres = process.getuid?.() === 0;
  const base = serverDirectory('meter-sync-pgbouncer-');
  const host = '127.0.0.1';
  const port = await freePort();
  const users = options.users ?? ['postgres'];
  const databases = (options.databases ?? ['postgres']).map((entry) =>
    typeof entry === 'string' ? { name: entry } : entry,
  );
  for (const { name } of databases) {
    if (!/^[A-Za-z0-9_]+$/.test(name))
      throw new Error(`PgBouncer database name ${name}: letters, digits, _`);
  }
  const databaseLines = databases.map(({ name, dbname, poolSize, port: entryPort }) =>
    [
      `${name} =`,
      `host=${options.upstream.host}`,
      `port=${entryPort ?? options.upstream.port}`,
      `dbname=${connValue(dbname ?? name)}`,
      ...(poolSize === undefined ? [] : [`pool_size=${poolSize}`]),
    ].join(' '),
  );
  const settings: Record<string, string | number> = {
    listen_addr: host,
    listen_port: port,
    unix_socket_dir: '',
    auth_type: 'trust',
    auth_file: join(base, 'userlist.txt'),
    pool_mode: options.poolMode ?? 'transaction',
    logfile: join(base, 'pgbouncer.log'),
    pidfile: join(base, 'pgbouncer.pid'),
    admin_users: 'postgres',
    ...options.settings,
  };
  const ini = [
    '[databases]',
    ...databaseLines,
    '',
    '[pgbouncer]',
    ...Object.entries(settings).map(([name, value]) => `${name} = ${value}`),
    '',
  ].join('\n');
  const iniPath = join(base, 'pgbouncer.ini');
  writeFileSync(iniPath, ini, { mode: 0o644 });
  writeFileSync(
    join(base, 'userlist.txt'),
    users
      .map((user) => `${JSON.stringify(user)} ""`)
      .join('\n')
      .concat('\n'),
    { mode: 0o644 },
  );
  if (asPostgres) await run('chown', ['-R', 'postgres:', base], false);

  const [file, argv] = asPostgres
    ? ['runuser', ['-u', 'postgres', '--', program, iniPath]]
    : [program, [iniPath]];
  const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk) => {
    output += chunk;
  });
  child.stderr.on('data', (chunk) => {
    output += chunk;
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let running = true;
  void exited.then(() => {
    running = false;
  });

  const log = () => {
    const path = join(base, 'pgbouncer.log');
    return (existsSync(path) ? readFileSync(path, 'utf8') : output).slice(-3000);
  };
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (running) {
      // SIGTERM is PgBouncer's immediate shutdown. Sent to PgBouncer itself (its pid file), not
      // to runuser, which would take seconds to pass it on.
      const pidFile = join(base, 'pgbouncer.pid');
      const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : Number.NaN;
      try {
        if (Number.isSafeInteger(pid) && pid > 0) process.kill(pid, 'SIGTERM');
        else child.kill('SIGTERM');
      } catch {
        child.kill('SIGTERM');
      }
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(base, { recursive: true, force: true });
  };

  const deadline = Date.now() + 10_000;
  while (!(await accepts(host, port))) {
    if (!running || Date.now() > deadline) {
      await stop();
      throw new Error(`pgbouncer did not start:\n${output}\n${log()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }

  return {
    host,
    port,
    url: (database, user = 'postgres') =>
      `postgres://${encodeURIComponent(user)}@${host}:${port}/${encodeURIComponent(database)}`,
    log,
    stop,
  };
}

function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

if (process.argv[1]?.endsWith('pgbouncer.ts')) {
  const server = await startPostgres();
  const bouncer = await startPgBouncer({ upstream: server }).catch(async (error: unknown) => {
    await server.stop();
    throw error;
  });
  console.log(
    `PgBouncer (transaction pooling) is up: ${bouncer.url('postgres')}  (Ctrl-C stops it)`,
  );
  const stop = () => void Promise.all([bouncer.stop(), server.stop()]).then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
