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
 * lets the per-bucket aggregate group in a hash table rather than sort a million rows.
 */
const SOURCE_SETTINGS = { work_mem: '64MB', max_parallel_workers_per_gather: '0' };
const TARGET_SETTINGS = { work_mem: '256MB', max_parallel_workers_per_gather: '0' };

function pin(settings: Readonly<Record<string, string>>): Statement {
  const entries = Object.entries(settings);
  const calls = entries.map((_, i) => `set_config($${2 * i + 1}, $${2 * i + 2}, true)`);
  return { text: `SELECT ${calls.join(', ')}`, values: entries.flat() };
}

/** One statement, transaction-local: nothing leaks to the pool's next user. */
export const PIN_SOURCE = pin({ ...OUTPUT_SETTINGS, ...SOURCE_SETTINGS });
export const PIN_TARGET = pin({ ...OUTPUT_SETTINGS, ...TARGET_SETTINGS });
