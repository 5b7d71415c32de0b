import { maskSecrets } from './secrets.js';

/** Where the CLI writes; every line goes through the password mask. */
export interface Output {
  /** Writes a line to stdout. */
  print(line?: string): void;
  /** Writes a line to stderr. */
  error(line: string): void;
  /** The stderr stream, for progress; undefined when progress must not be shown. */
  readonly progressStream: ProgressStream | undefined;
  /** Hides these passwords too (the ones of the connections the command was given). */
  hide(secrets: readonly string[]): void;
  /** `text` with passwords masked. */
  mask(text: string): string;
}

/** A terminal stream progress is drawn on. */
export interface ProgressStream {
  write(text: string): unknown;
}

/**
 * The process's stdout and stderr; progress only when stderr is a terminal and it is wanted.
 * `secrets` is shared: passwords hidden through one output are hidden by all.
 */
export function processOutput(options: { progress: boolean; secrets?: string[] }): Output {
  const secrets = options.secrets ?? [];
  const mask = (text: string) => maskSecrets(text, secrets);
  return {
    print: (line = '') => void process.stdout.write(`${mask(line)}\n`),
    error: (line) => void process.stderr.write(`${mask(line)}\n`),
    progressStream:
      options.progress && process.stderr.isTTY
        ? { write: (text: string) => process.stderr.write(mask(text)) }
        : undefined,
    hide: (more) => void secrets.push(...more),
    mask,
  };
}
