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
  for (const secret of secrets) {
    if (secret.length >= MIN_LITERAL_LENGTH) masked = masked.split(secret).join(MASK);
  }
  return masked;
}

/** The passwords in these connection strings, as written and percent-decoded. */
export function passwordsIn(urls: readonly (string | undefined)[]): string[] {
  const found = new Set<string>();
  for (const url of urls) {
    if (!url) continue;
    try {
      const { password } = new URL(url);
      if (password) {
        found.add(password);
        found.add(safeDecode(password));
      }
    } catch {
      // Not a URL: the patterns of maskSecrets still apply to it.
    }
  }
  return [...found];
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
