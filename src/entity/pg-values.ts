/**
 * Normalisers from the forms a driver hands back (PostgreSQL text output, or the JS values an
 * emulator such as pg-mem produces) to one exact canonical form per SQL type. They never throw:
 * a value they cannot read is returned unchanged so the zod schema reports it.
 */

const INTEGER_TEXT = /^[+-]?\d+$/;

/** `int2`/`int4`: a JS number. */
export function toInteger(value: unknown): unknown {
  if (typeof value === 'string' && INTEGER_TEXT.test(value.trim())) return Number(value.trim());
  if (
    typeof value === 'bigint' &&
    value >= BigInt(Number.MIN_SAFE_INTEGER) &&
    value <= BigInt(Number.MAX_SAFE_INTEGER)
  ) {
    return Number(value);
  }
  return value;
}

/** `int8`: a JS bigint, exact. */
export function toBigInt(value: unknown): unknown {
  if (typeof value === 'string' && INTEGER_TEXT.test(value.trim())) return BigInt(value.trim());
  if (typeof value === 'number' && Number.isInteger(value)) return BigInt(value);
  return value;
}

/** `float4`/`float8`: a JS number. */
export function toDouble(value: unknown): unknown {
  if (typeof value !== 'string') return value;
  const text = value.trim();
  if (text === 'NaN') return Number.NaN;
  if (text === 'Infinity') return Number.POSITIVE_INFINITY;
  if (text === '-Infinity') return Number.NEGATIVE_INFINITY;
  const parsed = Number(text);
  return text !== '' && !Number.isNaN(parsed) ? parsed : value;
}

/** `bool`: PostgreSQL's text forms `t`/`f` as well as JS booleans. */
export function toBoolean(value: unknown): unknown {
  if (typeof value !== 'string') return value;
  const text = value.trim().toLowerCase();
  if (text === 't' || text === 'true') return true;
  if (text === 'f' || text === 'false') return false;
  return value;
}

const DECIMAL = /^([+-])?(\d*)(?:\.(\d*))?(?:e([+-]?\d+))?$/i;

/**
 * `numeric`: a decimal string without insignificant zeros, so `1.50` (numeric(10,2)) and `1.5`
 * (numeric) compare equal and no digit is ever lost to a float.
 */
export function toNumericText(value: unknown): unknown {
  let text: string;
  if (typeof value === 'string') text = value.trim();
  else if (typeof value === 'number' && Number.isFinite(value)) text = String(value);
  else if (typeof value === 'bigint') text = value.toString();
  else if (typeof value === 'number')
    return Number.isNaN(value) ? 'NaN' : value > 0 ? 'Infinity' : '-Infinity';
  else return value;
  if (text === 'NaN' || text === 'Infinity' || text === '-Infinity') return text;
  const match = DECIMAL.exec(text);
  if (!match || (match[2] === '' && (match[3] ?? '') === '')) return value;
  const [, sign = '', intPart = '', fracPart = '', exponent = '0'] = match;
  let digits = intPart + fracPart;
  let point = intPart.length + Number(exponent);
  if (point < 0) {
    digits = '0'.repeat(-point) + digits;
    point = 0;
  }
  if (point > digits.length) digits += '0'.repeat(point - digits.length);
  const whole = digits.slice(0, point).replace(/^0+(?=\d)/, '') || '0';
  const fraction = digits.slice(point).replace(/0+$/, '');
  const magnitude = fraction ? `${whole}.${fraction}` : whole;
  return sign === '-' && /[1-9]/.test(magnitude) ? `-${magnitude}` : magnitude;
}

const DATE_TIME =
  /^(\d{4,})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?\s*(Z|[+-]\d{2}(?::?\d{2}(?::?\d{2})?)?)?$/i;

interface DateTimeParts {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
  /** Fraction of a second as exactly six digits (microseconds). */
  micros: string;
  /** Offset east of UTC in seconds, or undefined when the text has none. */
  offsetSeconds: number | undefined;
}

function parseDateTime(text: string): DateTimeParts | undefined {
  const match = DATE_TIME.exec(text.trim());
  if (!match) return undefined;
  const [, y, mo, d, h = '0', mi = '0', s = '0', frac = '', zone] = match;
  return {
    year: Number(y),
    month: Number(mo),
    day: Number(d),
    hour: Number(h),
    minute: Number(mi),
    second: Number(s),
    micros: frac.padEnd(6, '0').slice(0, 6),
    offsetSeconds: zone === undefined ? undefined : parseOffset(zone),
  };
}

function parseOffset(zone: string): number {
  if (zone.toUpperCase() === 'Z') return 0;
  const sign = zone.startsWith('-') ? -1 : 1;
  const digits = zone.slice(1).replace(/:/g, '');
  const hours = Number(digits.slice(0, 2));
  const minutes = Number(digits.slice(2, 4) || '0');
  const seconds = Number(digits.slice(4, 6) || '0');
  return sign * (hours * 3600 + minutes * 60 + seconds);
}

const pad = (n: number, width = 2) => String(n).padStart(width, '0');

function formatDateTime(parts: Omit<DateTimeParts, 'offsetSeconds'>, zone: string): string {
  const fraction = parts.micros.replace(/0+$/, '');
  const date = `${pad(parts.year, 4)}-${pad(parts.month)}-${pad(parts.day)}`;
  const time = `${pad(parts.hour)}:${pad(parts.minute)}:${pad(parts.second)}`;
  return `${date}T${time}${fraction ? `.${fraction}` : ''}${zone}`;
}

function utcParts(date: Date): Omit<DateTimeParts, 'offsetSeconds'> {
  return {
    year: date.getUTCFullYear(),
    month: date.getUTCMonth() + 1,
    day: date.getUTCDate(),
    hour: date.getUTCHours(),
    minute: date.getUTCMinutes(),
    second: date.getUTCSeconds(),
    micros: pad(date.getUTCMilliseconds(), 3).padEnd(6, '0'),
  };
}

const SPECIAL_TIMES = new Set(['infinity', '-infinity']);

/**
 * `timestamp without time zone`: `YYYY-MM-DDTHH:MM:SS[.ffffff]`, microseconds kept. A JS Date
 * (as an emulator returns) is read by its UTC fields, which is how pg-mem stores naive times.
 */
export function toTimestampText(value: unknown): unknown {
  if (value instanceof Date)
    return Number.isNaN(value.getTime()) ? value : formatDateTime(utcParts(value), '');
  if (typeof value !== 'string') return value;
  if (SPECIAL_TIMES.has(value.trim().toLowerCase())) return value.trim().toLowerCase();
  const parts = parseDateTime(value);
  return parts ? formatDateTime(parts, '') : value;
}

/**
 * `timestamp with time zone`: the instant in UTC as `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`, whatever
 * the session's TimeZone setting printed, microseconds kept.
 */
export function toTimestamptzText(value: unknown): unknown {
  if (value instanceof Date)
    return Number.isNaN(value.getTime()) ? value : formatDateTime(utcParts(value), 'Z');
  if (typeof value !== 'string') return value;
  if (SPECIAL_TIMES.has(value.trim().toLowerCase())) return value.trim().toLowerCase();
  const parts = parseDateTime(value);
  if (!parts) return value;
  const utc = new Date(0);
  utc.setUTCFullYear(parts.year, parts.month - 1, parts.day);
  utc.setUTCHours(parts.hour, parts.minute, parts.second - (parts.offsetSeconds ?? 0), 0);
  return formatDateTime({ ...utcParts(utc), micros: parts.micros }, 'Z');
}

/** `date`: `YYYY-MM-DD`, never shifted by a time zone. A JS Date is read by its UTC fields. */
export function toDateText(value: unknown): unknown {
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime())) return value;
    const p = utcParts(value);
    return `${pad(p.year, 4)}-${pad(p.month)}-${pad(p.day)}`;
  }
  if (typeof value !== 'string') return value;
  if (SPECIAL_TIMES.has(value.trim().toLowerCase())) return value.trim().toLowerCase();
  const parts = parseDateTime(value);
  return parts ? `${pad(parts.year, 4)}-${pad(parts.month)}-${pad(parts.day)}` : value;
}
