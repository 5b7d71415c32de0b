import { describe, expect, it } from 'vitest';
import {
  ConnectionStringError,
  parseConnectionString,
  passwordCandidates,
} from '../../src/cli/connection-string.js';
import { openPool, resolveConnection } from '../../src/cli/connections.js';
import { createDatabase } from '../support/postgres.js';

describe('connection strings', () => {
  it('takes a URL as it is, percent-encoding a password that needs it', () => {
    const parsed = parseConnectionString(
      'postgres://reader:Zm9v/YmFy+cXV4@crm.example:5433/client',
    );
    expect(parsed.display).toBe('postgres://reader:***@crm.example:5433/client');
    expect(parsed.secrets).toContain('Zm9v/YmFy+cXV4');
    const url = new URL(parsed.config.connectionString ?? '');
    expect(decodeURIComponent(url.password)).toBe('Zm9v/YmFy+cXV4');
    expect([url.hostname, url.port, url.pathname]).toEqual(['crm.example', '5433', '/client']);
  });

  it('splits a password holding @, : and spaces at the last @', () => {
    const parsed = parseConnectionString('postgresql://u:p@ss:w/rd 1@h/db?sslmode=require');
    const url = new URL(parsed.config.connectionString ?? '');
    expect(decodeURIComponent(url.password)).toBe('p@ss:w/rd 1');
    expect(url.hostname).toBe('h');
    expect(url.searchParams.get('sslmode')).toBe('require');
    expect(parsed.display).toBe('postgresql://u:***@h/db?sslmode=require');
  });

  it('keeps an @ in the query out of the user info', () => {
    const parsed = parseConnectionString('postgres://h/db?application_name=a@b');
    expect(new URL(parsed.config.connectionString ?? '').hostname).toBe('h');
  });

  it('reads keyword/value strings as libpq does', () => {
    const parsed = parseConnectionString(
      "host=db.example port=6432 user=meter password='p w\\'x' dbname=sync sslmode=no-verify application_name=edge connect_timeout=5 options='-c search_path=sync'",
    );
    expect(parsed.config).toEqual({
      host: 'db.example',
      port: 6432,
      user: 'meter',
      password: "p w'x",
      database: 'sync',
      ssl: { rejectUnauthorized: false },
      application_name: 'edge',
      connectionTimeoutMillis: 5000,
      options: '-c search_path=sync',
    });
    expect(parsed.display).toBe(
      "host=db.example port=6432 user=meter password=*** dbname=sync sslmode=no-verify application_name=edge connect_timeout=5 options='-c search_path=sync'",
    );
    expect(parsed.secrets).toEqual(["p w'x"]);
    expect(parseConnectionString('host = h  dbname = d password=a\\ b').config).toEqual({
      host: 'h',
      database: 'd',
      password: 'a b',
    });
    expect(parseConnectionString('dbname=d sslmode=disable').config.ssl).toBe(false);
    expect(parseConnectionString('dbname=d sslmode=verify-full').config.ssl).toBe(true);
  });

  it.each([
    ['', /is empty/],
    ['hunter2', /neither a postgres:\/\/ URL nor a keyword\/value string/],
    ['mysql://u:pw@h/db', /must be a postgres:\/\/ or postgresql:\/\/ URL/],
    ['postgres://u:pw@h:54x/db', /port is not a number/],
    ['postgres://u:pw@h/db?sslmode=always', /sslmode must be one of/],
    ["host=h password='open", /no closing quote/],
    ['host=h passwd=x', /unknown keyword "passwd"/],
    ['host=h port=0', /port is not a number from 1 to 65535/],
    ['host=h sslmode=maybe', /sslmode must be one of/],
    ['host=h dbname', /expected keyword=value after "dbname"/],
  ])('rejects %j, saying why', (text, message) => {
    expect(() => parseConnectionString(text)).toThrow(ConnectionStringError);
    expect(() => parseConnectionString(text)).toThrow(message);
  });

  it('finds the passwords of strings too malformed to parse', () => {
    expect(passwordCandidates('postgres://u:a/b@c@h:port/db')).toContain('a/b@c');
    expect(passwordCandidates('postgres://u:N0-at/h/db')).toContain('N0-at');
    expect(passwordCandidates("host=h password='se cret")).toContain('se cret');
    expect(passwordCandidates('postgres://h/db?password=Qs&x=1')).toContain('Qs');
    // A port is not a password.
    expect(passwordCandidates('postgres://u@h:5432/db')).toEqual([]);
    expect(passwordCandidates('postgres://h:5432/db')).toEqual([]);
  });

  it('connects with a keyword/value string, the rest from PG* variables', async () => {
    const database = await createDatabase('kv');
    const url = new URL(database.url);
    const saved = {
      PGHOST: process.env.PGHOST,
      PGPORT: process.env.PGPORT,
      PGUSER: process.env.PGUSER,
      PGOPTIONS: process.env.PGOPTIONS,
    };
    process.env.PGHOST = url.hostname;
    process.env.PGPORT = url.port;
    process.env.PGUSER = decodeURIComponent(url.username);
    process.env.PGOPTIONS = '-c lock_timeout=1234';
    try {
      const connection = resolveConnection('target', {
        value: `dbname=${database.name} application_name='meter sync test'`,
        origin: '--target',
      });
      const pool = openPool(connection);
      try {
        const { rows } = await pool.query(
          "SELECT current_database() AS db, current_setting('application_name') AS app, current_setting('lock_timeout') AS lock_timeout",
        );
        expect(rows[0]).toEqual({
          db: database.name,
          app: 'meter sync test',
          lock_timeout: '1234ms',
        });
      } finally {
        await pool.end();
      }
    } finally {
      for (const [key, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
    }
  });
});
