import { beforeAll, describe, expect, it } from 'vitest';
import { createDatabase } from '../support/postgres.js';
import { runCli } from './run-cli.js';

/**
 * [name, password, connection string, the password as written in it when escaped]: each is
 * malformed, unusable or unreachable.
 */
const RAW_CASES: readonly (readonly [string, string, string, string?])[] = [
  ['unescaped / and +', 'Zm9v/YmFy+cXV4', 'postgres://reader:Zm9v/YmFy+cXV4@127.0.0.1:1/db'],
  ['unescaped @ : / and a space', 'p@ss:w/rd 1', 'postgres://reader:p@ss:w/rd 1@127.0.0.1:1/db'],
  ['unescaped #', 'hash#tag#secret', 'postgres://reader:hash#tag#secret@127.0.0.1:1/db'],
  ['unescaped ?', 'quest?ion=secret', 'postgres://reader:quest?ion=secret@127.0.0.1:1/db'],
  ['spaces', 'with spaces inside', 'postgres://reader:with spaces inside@127.0.0.1:1/db'],
  ['missing host', 'Missing-H0st', 'postgres://reader:Missing-H0st@/db'],
  ['port not a number', 'BadP0rt-pw', 'postgres://reader:BadP0rt-pw@127.0.0.1:54x32/db'],
  ['port out of range', 'R4nge-pw', 'postgres://reader:R4nge-pw@127.0.0.1:99999/db'],
  ['unknown scheme', 'My5ql-secret', 'mysql://reader:My5ql-secret@127.0.0.1:1/db'],
  ['misspelt scheme', 'Typo-secret', 'postgress://reader:Typo-secret@127.0.0.1:1/db'],
  ['one slash after the scheme', 'S1ngle-slash', 'postgres:/reader:S1ngle-slash@127.0.0.1:1/db'],
  ['no @ after the password', 'N0-at-sign', 'postgres://reader:N0-at-sign/127.0.0.1/db'],
  ['a stray %', '100%zz-pct', 'postgres://reader:100%zz-pct@127.0.0.1:1/db'],
  [
    '@ in the password and a bad port',
    'a@b@c-secret',
    'postgres://reader:a@b@c-secret@127.0.0.1:port/db',
  ],
  ['a password without a user', '0nly-pass', 'postgres://:0nly-pass@127.0.0.1:1/db'],
  ['brackets in the password', '[br4ck]et', 'postgres://reader:[br4ck]et@127.0.0.1:1/db'],
  ['a broken IPv6 host', 'Ipv6-secret', 'postgres://reader:Ipv6-secret@[::1/db'],
  ['a space in the host', 'Sp4ce-h0st', 'postgres://reader:Sp4ce-h0st@127.0.0.1 :1/db'],
  [
    'password in the query, bad sslmode',
    'Qu3ry-secret',
    'postgres://reader@127.0.0.1:1/db?password=Qu3ry-secret&sslmode=bogus',
  ],
  ['a bare password', 'Jx7-Bare-Qz9k', 'Jx7-Bare-Qz9k'],
  [
    'key/value, quoted with an escaped quote',
    "p w'x-secret",
    "host=127.0.0.1 port=1 user=u password='p w\\'x-secret' dbname=d",
    "p w\\'x-secret",
  ],
  [
    'key/value, unquoted',
    'Unqu0ted-secret',
    'host=127.0.0.1 port=1 user=u password=Unqu0ted-secret dbname=d',
  ],
  [
    'key/value, no closing quote',
    'Unterm-secret',
    "host=127.0.0.1 password='Unterm-secret dbname=d",
  ],
  ['key/value, unknown keyword', 'Passwd-secret', 'host=127.0.0.1 passwd=Passwd-secret dbname=d'],
  ['key/value, bad port', 'KvP0rt-secret', 'host=127.0.0.1 port=abc password=KvP0rt-secret'],
  [
    'key/value, escaped backslash',
    'back\\slash-secret',
    "password='back\\\\slash-secret' host=127.0.0.1 port=1",
    'back\\\\slash-secret',
  ],
];

const CASES = RAW_CASES.map(
  ([name, password, input, written]) => [name, password, input, written ?? password] as const,
);

/** Every piece of 4+ characters of the password that the rest of the input does not contain. */
function revealingPieces(password: string, input: string, written?: string): string[] {
  written ??= password;
  const rest = input.split(written).join('\u0000');
  const pieces = new Set<string>();
  for (const secret of [password, written]) {
    for (let start = 0; start < secret.length; start++) {
      for (let end = start + 4; end <= secret.length; end++) {
        const piece = secret.slice(start, end);
        if (!rest.includes(piece)) pieces.add(piece);
      }
    }
  }
  return [...pieces];
}

// A reachable target, so that what fails is the source.
let TARGET = '';
beforeAll(async () => {
  TARGET = (await createDatabase('masking')).url;
});
// Fields a string leaves out must not lead anywhere reachable either.
const ENV = { PGHOST: '127.0.0.1', PGPORT: '1', PGCONNECT_TIMEOUT: '2' };

describe('passwords are never printed', () => {
  it('the table has at least 20 cases, each with something to hide', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(20);
    for (const [, password, input, written] of CASES) {
      expect(input).toContain(written ?? password);
      expect(revealingPieces(password, input, written).length).toBeGreaterThan(0);
    }
  });

  it.each(CASES)('%s, given as --source (and --json)', async (_, password, input, written) => {
    const run = await runCli(
      ['sync', '--source', input, '--target', TARGET, '--tenant', '1', '--json'],
      { env: ENV },
    );
    expect(run.code).toBe(2);
    for (const piece of revealingPieces(password, input, written)) {
      expect(run.stdout).not.toContain(piece);
      expect(run.stderr).not.toContain(piece);
    }
    expect(run.stderr).toMatch(/--source/);
    const document = JSON.parse(run.stdout);
    expect(document).toMatchObject({
      ok: false,
      exitCode: 2,
      error: { message: expect.any(String) },
    });
  });

  it.each(CASES)('%s, given as METER_SYNC_SOURCE_URL', async (_, password, input, written) => {
    const run = await runCli(['sync', '--target', TARGET, '--tenant', '1'], {
      env: { ...ENV, METER_SYNC_SOURCE_URL: input },
    });
    expect(run.code).toBe(2);
    for (const piece of revealingPieces(password, input, written)) {
      expect(run.stdout).not.toContain(piece);
      expect(run.stderr).not.toContain(piece);
    }
    expect(run.stderr).toMatch(/METER_SYNC_SOURCE_URL/);
    expect(run.stderr).not.toMatch(/--source\b/);
  });

  it.each([
    ['init', []],
    ['check', []],
    ['plan', ['--tenant', '1']],
    ['agent', ['--tenant', '1', '--schedule', '1000']],
  ])(
    '%s keeps the password of a malformed target hidden, and names its origin',
    async (command, args) => {
      for (const [, password, input, written] of CASES.slice(0, 8)) {
        for (const json of [false, true]) {
          // An agent whose target parses but cannot be reached keeps trying on schedule: it is
          // stopped (SIGTERM) after a while, and must have printed nothing it should not have.
          const run = await runCli([command, ...args, ...(json ? ['--json'] : [])], {
            env: { ...ENV, METER_SYNC_SOURCE_URL: TARGET, METER_SYNC_TARGET_URL: input },
            ...(command === 'agent' ? { timeoutMs: 1500 } : {}),
          });
          const keptRunning = command === 'agent' && run.code === 0;
          if (!keptRunning) expect(run.code).toBe(2);
          for (const piece of revealingPieces(password, input, written)) {
            expect(run.stdout).not.toContain(piece);
            expect(run.stderr).not.toContain(piece);
          }
          expect(run.stdout + run.stderr).toMatch(/METER_SYNC_TARGET_URL/);
          if (!json) continue;
          // The agent writes JSON lines; the other commands one (indented) object.
          const documents =
            command === 'agent'
              ? run.stdout
                  .trim()
                  .split('\n')
                  .map((line) => JSON.parse(line))
              : [JSON.parse(run.stdout)];
          if (keptRunning) {
            expect(documents.map((document) => document.type)).toContain('run-failed');
            expect(documents.at(-1)).toMatchObject({ type: 'stopped', ok: true });
          } else {
            expect(documents).toMatchObject([{ ok: false, exitCode: 2 }]);
          }
        }
      }
    },
  );
});
