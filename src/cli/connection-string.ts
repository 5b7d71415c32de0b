/**
 * Connection strings as libpq reads them — `postgres://` URLs and `key=value` strings — turned
 * into a node-postgres pool configuration. Nothing here ever puts a password, or any part of
 * one, into an error message or a display string.
 *
 * Fields a string leaves out are left to node-postgres, which takes them from `PGHOST`,
 * `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`, `PGSSLMODE`, `PGAPPNAME` and `PGOPTIONS`, as
 * libpq does.
 */

/** The subset of a `pg.Pool` configuration a connection string can set. */
export interface ConnectionConfig {
  connectionString?: string;
  host?: string;
  port?: number;
  user?: string;
  password?: string;
  database?: string;
  ssl?: boolean | { rejectUnauthorized: boolean };
  application_name?: string;
  options?: string;
  connectionTimeoutMillis?: number;
}

/** A parsed connection string: the pool configuration, how to show it, the secrets it holds. */
export interface ParsedConnection {
  readonly config: ConnectionConfig;
  /** The connection as the CLI prints it: the password, if any, as `***`. */
  readonly display: string;
  /** The password, as written and decoded, for masking wherever it might be echoed. */
  readonly secrets: readonly string[];
}

/** A connection string that cannot be used. The message never contains a password. */
export class ConnectionStringError extends Error {
  override readonly name = 'ConnectionStringError';
}

const MASK = '***';
const URL_START = /^([a-z][a-z0-9+.-]*):\/\//i;
const KEYWORDS = new Set([
  'host',
  'hostaddr',
  'port',
  'dbname',
  'user',
  'password',
  'sslmode',
  'application_name',
  'options',
  'connect_timeout',
]);
const SSL_MODES = [
  'disable',
  'allow',
  'prefer',
  'require',
  'verify-ca',
  'verify-full',
  'no-verify',
];

/**
 * Parses a URL (`postgres://user:password@host:5432/db?sslmode=require`) or a keyword/value
 * string (`host=db user=meter password='s3 cret' dbname=sync`).
 *
 * URLs are read leniently where libpq is strict but the meaning is plain: a password holding
 * `/`, `@`, `:`, `#`, `?` or spaces without percent-encoding is taken up to the last `@`.
 *
 * @throws {ConnectionStringError} with a message that names the problem, never the password.
 */
export function parseConnectionString(text: string): ParsedConnection {
  const trimmed = text.trim();
  if (trimmed === '') throw new ConnectionStringError('is empty');
  const scheme = URL_START.exec(trimmed)?.[1];
  if (scheme !== undefined) return parseUrl(trimmed, scheme);
  if (/^[a-z_]+\s*=/i.test(trimmed)) return parseKeywordValue(trimmed);
  throw new ConnectionStringError(
    'is neither a postgres:// URL nor a keyword/value string (host=… dbname=…)',
  );
}

/** The passwords a connection string seems to hold, even one too malformed to parse. */
export function passwordCandidates(text: string): string[] {
  const found = new Set<string>();
  const add = (value: string | undefined) => {
    if (value) {
      found.add(value);
      found.add(safeDecode(value));
    }
  };
  const trimmed = text.trim();
  const scheme = URL_START.exec(trimmed);
  if (scheme) {
    const rest = trimmed.slice(scheme[0].length);
    const { user, password, hostPart } = splitAuthority(rest);
    add(password);
    // No user info at all: a "port" that is not a number may be a password missing its "@".
    const port = user === undefined ? /^[^/:]*:([^/]*)/.exec(hostPart)?.[1] : undefined;
    if (port !== undefined && !/^\d*$/.test(port)) add(port);
  }
  for (const match of trimmed.matchAll(/(?:^|[\s?&])password\s*=\s*('(?:[^'\\]|\\.)*'?|\S+)/gi)) {
    const value = match[1] ?? '';
    add(value);
    if (value.startsWith("'")) add(unquote(value));
    add(value.split('&')[0]);
  }
  return [...found].filter((value) => value !== '');
}

function parseUrl(text: string, scheme: string): ParsedConnection {
  const lower = scheme.toLowerCase();
  if (lower !== 'postgres' && lower !== 'postgresql') {
    throw new ConnectionStringError(
      `must be a postgres:// or postgresql:// URL (or a keyword/value string), got ${lower}://…`,
    );
  }
  const rest = text.slice(scheme.length + 3);
  const { user, password, hostPart } = splitAuthority(rest);
  const display = `${lower}://${user === undefined ? '' : `${user}${password === undefined ? '' : `:${MASK}`}@`}${maskedHostPart(hostPart, password === undefined)}`;
  const secrets = password === undefined ? [] : unique([password, safeDecode(password)]);
  if (/\s/.test(hostPart.split(/[?#]/)[0] ?? '')) {
    throw new ConnectionStringError(`${display}: the host or database name contains a space`);
  }
  const userinfo =
    user === undefined
      ? ''
      : `${encode(user)}${password === undefined ? '' : `:${encode(password)}`}@`;
  let url: URL;
  try {
    url = new URL(`${lower}://${userinfo}${hostPart}`);
  } catch {
    throw new ConnectionStringError(`${display}: ${authorityProblem(hostPart)}`);
  }
  if (url.hash !== '') {
    throw new ConnectionStringError(
      `${display}: "#" after the host starts a fragment, which a connection URL cannot have`,
    );
  }
  const sslmode = url.searchParams.get('sslmode');
  if (sslmode !== null && !SSL_MODES.includes(sslmode)) {
    throw new ConnectionStringError(
      `${display}: sslmode must be one of ${SSL_MODES.join(', ')}, got "${sslmode}"`,
    );
  }
  return {
    config: { connectionString: url.toString() },
    display: maskQuery(display),
    secrets: unique([...secrets, ...(url.searchParams.getAll('password') ?? [])]),
  };
}

/** Splits `user:password@host…` at the last `@`: a password may hold `@`, a host never does. */
function splitAuthority(rest: string): {
  user?: string | undefined;
  password?: string | undefined;
  hostPart: string;
} {
  const at = rest.lastIndexOf('@');
  if (at < 0) return { hostPart: rest };
  const userinfo = rest.slice(0, at);
  // An "@" after the path or query starts (`/db?application_name=a@b`) is not the userinfo's,
  // unless a "user:" comes first: then it ends a password that holds "/" or "?".
  const pathStart = userinfo.search(/[/?]/);
  const colonAt = userinfo.indexOf(':');
  if (pathStart >= 0 && (colonAt < 0 || colonAt > pathStart)) return { hostPart: rest };
  const colon = userinfo.indexOf(':');
  return colon < 0
    ? { user: userinfo, hostPart: rest.slice(at + 1) }
    : {
        user: userinfo.slice(0, colon),
        password: userinfo.slice(colon + 1),
        hostPart: rest.slice(at + 1),
      };
}

/** The host part as shown: a port that is not a number may be a password missing its `@`. */
function maskedHostPart(hostPart: string, noUserinfo: boolean): string {
  const authorityEnd = hostPart.search(/[/?#]/);
  const authority = authorityEnd < 0 ? hostPart : hostPart.slice(0, authorityEnd);
  const after = authorityEnd < 0 ? '' : hostPart.slice(authorityEnd);
  const colon = authority.lastIndexOf(':');
  const bracketed = authority.startsWith('[') && authority.lastIndexOf(']') > colon;
  const port = colon < 0 || bracketed ? '' : authority.slice(colon + 1);
  const shownAuthority =
    port !== '' && !/^\d+$/.test(port) ? `${authority.slice(0, colon)}:${MASK}` : authority;
  // With no "@" at all, the text after the authority may be the rest of a password too.
  const shownAfter = noUserinfo && shownAuthority !== authority ? '/…' : maskQuery(after);
  return `${shownAuthority}${shownAfter}`;
}

function authorityProblem(hostPart: string): string {
  const authority = hostPart.split(/[/?#]/)[0] ?? '';
  const colon = authority.lastIndexOf(':');
  if (colon >= 0 && !authority.endsWith(']')) {
    const port = authority.slice(colon + 1);
    if (!/^\d+$/.test(port) || Number(port) > 65535) {
      return 'the port is not a number from 1 to 65535 (a password with "/" or "@" in it may need percent-encoding: / is %2F, @ is %40)';
    }
  }
  return 'the host is not valid; expected postgres://user:password@host:5432/database';
}

function parseKeywordValue(text: string): ParsedConnection {
  const values = new Map<string, string>();
  let i = 0;
  const skipSpace = () => {
    while (i < text.length && /\s/.test(text[i] as string)) i++;
  };
  while (true) {
    skipSpace();
    if (i >= text.length) break;
    const keyStart = i;
    while (i < text.length && /[a-z_]/i.test(text[i] as string)) i++;
    const key = text.slice(keyStart, i).toLowerCase();
    skipSpace();
    if (key === '' || text[i] !== '=') {
      throw new ConnectionStringError(
        `keyword/value string: expected keyword=value${key ? ` after "${key}"` : ''}`,
      );
    }
    i++;
    skipSpace();
    let value = '';
    if (text[i] === "'") {
      i++;
      let closed = false;
      while (i < text.length) {
        const char = text[i] as string;
        if (char === '\\' && i + 1 < text.length) {
          value += text[i + 1];
          i += 2;
        } else if (char === "'") {
          closed = true;
          i++;
          break;
        } else {
          value += char;
          i++;
        }
      }
      if (!closed) {
        throw new ConnectionStringError(
          `keyword/value string: the quoted value of "${key}" has no closing quote`,
        );
      }
    } else {
      while (i < text.length && !/\s/.test(text[i] as string)) {
        if (text[i] === '\\' && i + 1 < text.length) i++;
        value += text[i];
        i++;
      }
    }
    if (!KEYWORDS.has(key)) {
      throw new ConnectionStringError(
        `keyword/value string: unknown keyword "${key}"; meter-sync reads ${[...KEYWORDS].join(', ')}`,
      );
    }
    values.set(key, value);
  }

  const config: ConnectionConfig = {};
  const host = values.get('host') || values.get('hostaddr');
  if (host) config.host = host;
  const port = values.get('port');
  if (port !== undefined && port !== '') {
    if (!/^\d+$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
      throw new ConnectionStringError('keyword/value string: port is not a number from 1 to 65535');
    }
    config.port = Number(port);
  }
  const pick = (key: string) => {
    const value = values.get(key);
    return value === undefined || value === '' ? undefined : value;
  };
  const user = pick('user');
  if (user !== undefined) config.user = user;
  const password = values.get('password');
  if (password !== undefined) config.password = password;
  const database = pick('dbname');
  if (database !== undefined) config.database = database;
  const applicationName = pick('application_name');
  if (applicationName !== undefined) config.application_name = applicationName;
  const options = pick('options');
  if (options !== undefined) config.options = options;
  const timeout = pick('connect_timeout');
  if (timeout !== undefined) {
    if (!/^\d+$/.test(timeout)) {
      throw new ConnectionStringError(
        'keyword/value string: connect_timeout is not a whole number of seconds',
      );
    }
    config.connectionTimeoutMillis = Number(timeout) * 1000;
  }
  const sslmode = pick('sslmode');
  if (sslmode !== undefined) config.ssl = sslFor(sslmode);

  const display = [...values]
    .map(([key, value]) =>
      key === 'password'
        ? `password=${MASK}`
        : `${key}=${/[\s'\\]/.test(value) || value === '' ? quote(value) : value}`,
    )
    .join(' ');
  return {
    config,
    display,
    secrets: password === undefined || password === '' ? [] : [password],
  };
}

/** `sslmode` as node-postgres reads `PGSSLMODE`: it has no opportunistic TLS. */
function sslFor(mode: string): boolean | { rejectUnauthorized: boolean } {
  switch (mode) {
    case 'disable':
    case 'allow':
      return false;
    case 'prefer':
    case 'require':
    case 'verify-ca':
    case 'verify-full':
      return true;
    case 'no-verify':
      return { rejectUnauthorized: false };
    default:
      throw new ConnectionStringError(
        `keyword/value string: sslmode must be one of ${SSL_MODES.join(', ')}, got "${mode}"`,
      );
  }
}

/** A pool configuration given as an object, shown as a URL without its password. */
export function describeConfig(config: Readonly<Record<string, unknown>>): ParsedConnection {
  if (typeof config.connectionString === 'string') {
    const parsed = parseConnectionString(config.connectionString);
    const password = typeof config.password === 'string' ? [config.password] : [];
    return {
      config: { ...(config as ConnectionConfig), ...parsed.config },
      display: parsed.display,
      secrets: [...parsed.secrets, ...password],
    };
  }
  const text = (key: string) =>
    typeof config[key] === 'string' || typeof config[key] === 'number' ? String(config[key]) : '';
  const user = text('user');
  const host = text('host');
  const port = text('port');
  const database = text('database');
  const password = typeof config.password === 'string' ? config.password : undefined;
  const userinfo = user ? `${user}${password ? `:${MASK}` : ''}@` : password ? `:${MASK}@` : '';
  return {
    config: config as ConnectionConfig,
    display: `postgres://${userinfo}${host}${port ? `:${port}` : ''}/${database}`,
    secrets: password ? [password] : [],
  };
}

const maskQuery = (text: string) => text.replace(/([?&]password=)[^&#]*/gi, `$1${MASK}`);

const encode = (component: string) => encodeURIComponent(safeDecode(component));

const quote = (value: string) => `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

function unquote(value: string): string {
  return value.replace(/^'/, '').replace(/'$/, '').replace(/\\(.)/g, '$1');
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

const unique = (values: readonly string[]) => [...new Set(values.filter((value) => value !== ''))];
