import type { Statement } from './sql.js';

/**
 * Settings the library pins for every transaction it runs, whatever the user's pool was
 * configured with, so that values read as text mean one thing: ISO dates in UTC, intervals in
 * PostgreSQL's own style, floats with every digit, bytea as hex, money without a locale.
 */
const OUTPUT_SETTINGS: Readonly<Record<string, string>> = {
  DateStyle: 'ISO, YMD',
  IntervalStyle: 'postgres',
  TimeZone: 'UTC',
  extra_float_digits: '3',
  bytea_output: 'hex',
  lc_monetary: 'C',
};

/**
 * A sync is background work: it should not claim every core of a production server. work_mem
 * lets the per-bucket aggregate group in a hash table rather than sort a million rows. A cursor
 * is planned by default for its first tenth of rows, which favours walking a whole index in key
 * order past rows out of scope; the library reads every cursor to its end.
 */
const BOTH_SIDES = { max_parallel_workers_per_gather: '0', cursor_tuple_fraction: '1' };
const SOURCE_SETTINGS = { ...BOTH_SIDES, work_mem: '64MB' };
const TARGET_SETTINGS = { ...BOTH_SIDES, work_mem: '256MB' };
/**
 * JIT compiles any statement the planner costs high, which a scan of a large table is: on a
 * 40k-row junction, compiling took 239 of a 272 ms statement, on every run, for a plan that runs
 * once. The setting exists from PostgreSQL 11.
 */
const NO_JIT = { jit: 'off' };
const JIT_FROM = 110000;

function pin(settings: Readonly<Record<string, string>>): Statement {
  const entries = Object.entries(settings);
  const calls = entries.map((_, i) => `set_config($${2 * i + 1}, $${2 * i + 2}, true)`);
  return { text: `SELECT ${calls.join(', ')}`, values: entries.flat() };
}

/**
 * One statement, transaction-local: nothing leaks to the pool's next user. `also` are the
 * library's own settings, set in the same statement.
 */
const pinned =
  (settings: Readonly<Record<string, string>>) =>
  (serverVersion: number | undefined, also: Readonly<Record<string, string>> = {}) =>
    pin({
      ...OUTPUT_SETTINGS,
      ...settings,
      ...((serverVersion ?? 0) >= JIT_FROM ? NO_JIT : {}),
      ...also,
    });
export const pinSource = pinned(SOURCE_SETTINGS);
export const pinTarget = pinned(TARGET_SETTINGS);
