/** The CLI's exit codes. */
export const ExitCode = {
  /** Every entity synced (or planned) without error. */
  ok: 0,
  /** The run completed but at least one entity failed. */
  entityFailed: 1,
  /** Bad arguments or options, or a database that cannot be reached. */
  usage: 2,
  /** Another sync holds the sync lock on the target; nothing was done. */
  locked: 3,
} as const;

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

/** A failure the CLI reports as one line and an exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCodeValue,
    /** The kind of failure, as `--json` names it. Default: by the exit code. */
    readonly kind: string = exitCode === 3 ? 'LockedError' : 'UsageError',
  ) {
    super(message);
    this.name = 'CliError';
  }
}
