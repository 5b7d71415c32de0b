import { passwordCandidates } from './connection-string.js';

/**
 * Keeps passwords out of everything the CLI prints: connection strings, driver errors that echo
 * them, and the passwords of the URLs it was given wherever they turn up.
 */

const MASK = '***';

// scheme://user:password@host — greedy up to the authority's last "@", as URL parsers read it.
const URL_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^:/?#@\s]*:)([^\s/]*)@/gi;
// password=secret or password='se cret' in keyword/value connection strings and query strings.
const KEY_VALUE_PASSWORD = /\b(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&;]*)/gi;
// Shorter strings are too likely to occur in ordinary words to be replaced wherever they appear.
const MIN_LITERAL_LENGTH = 4;

/** `text` with every password replaced by `***`; `secrets` are also hidden wherever they occur. */
export function maskSecrets(text: string, secrets: readonly string[] = []): string {
  let masked = text.replace(URL_PASSWORD, `$1${MASK}@`).replace(KEY_VALUE_PASSWORD, `$1${MASK}`);
  // Longest first, so a password that contains another is masked whole.
  for (const secret of [...secrets].sort((a, b) => b.length - a.length)) {
    if (secret.length >= MIN_LITERAL_LENGTH) masked = masked.split(secret).join(MASK);
  }
  return masked;
}

/** The passwords in these connection strings (URLs or key=value), as written and decoded. */
export function passwordsIn(texts: readonly (string | undefined)[]): string[] {
  const found = new Set<string>();
  for (const text of texts) {
    if (!text) continue;
    // `--source=postgres://…` as one argument.
    const value = text.replace(/^--[a-z-]+=/, '');
    for (const password of passwordCandidates(value)) found.add(password);
  }
  return [...found];
}

/** `value` with every string in it masked, for JSON output (escaping would defeat the mask). */
export function maskDeep(value: unknown, mask: (text: string) => string): unknown {
  if (typeof value === 'string') return mask(value);
  if (Array.isArray(value)) return value.map((item) => maskDeep(item, mask));
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [key, maskDeep(item, mask)]),
    );
  }
  return value;
}
