import type { Logger } from '../logger.js';

/** How much the CLI logs, from most to least. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function isLogLevel(value: unknown): value is LogLevel {
  return typeof value === 'string' && (LOG_LEVELS as readonly string[]).includes(value);
}

/**
 * A logger that writes one line per entry to `write` (stderr): `level message key=value …`, or
 * with `json` one JSON object per line. `mask` hides passwords in every line.
 */
export function cliLogger(options: {
  readonly level: LogLevel;
  readonly json: boolean;
  readonly write: (line: string) => void;
}): Logger {
  const threshold = LOG_LEVELS.indexOf(options.level);
  const entry =
    (level: Exclude<LogLevel, 'silent'>) => (data: Record<string, unknown>, message: string) => {
      if (LOG_LEVELS.indexOf(level) < threshold) return;
      const fields = Object.entries(data ?? {}).map(([key, value]) => [key, plain(value)] as const);
      if (options.json) {
        options.write(
          JSON.stringify({
            time: new Date().toISOString(),
            level,
            msg: message,
            ...Object.fromEntries(fields),
          }),
        );
      } else {
        const pairs = fields
          .filter(([, value]) => value !== undefined)
          .map(
            ([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`,
          );
        options.write([new Date().toISOString(), level.padEnd(5), message, ...pairs].join(' '));
      }
    };
  return { debug: entry('debug'), info: entry('info'), warn: entry('warn'), error: entry('error') };
}

function plain(value: unknown): unknown {
  if (value instanceof Error) return value.message.replace(/\s*\n\s*/g, ' ');
  if (typeof value === 'bigint') return value.toString();
  return value;
}
