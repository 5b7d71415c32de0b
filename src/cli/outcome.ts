import type { ExitCodeValue } from './exit-codes.js';

/** How a command ended: its exit code, its result as JSON data, and why it failed. */
export interface Outcome {
  readonly exitCode: ExitCodeValue;
  /** The command's result for `--json`; `ok`, `exitCode` and `error` are added to it. */
  readonly json?: Record<string, unknown> | undefined;
  /** Why the command did not succeed, when it ran to the end but failed (e.g. an entity). */
  readonly error?: string | undefined;
}
