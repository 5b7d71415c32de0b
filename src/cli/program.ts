import { Command, CommanderError, Option } from 'commander';
import packageJson from '../../package.json' with { type: 'json' };
import { messageOf } from '../errors.js';
import { runAgentCommand } from './commands/agent.js';
import { runCheckCommand } from './commands/check.js';
import { runDemoCommand } from './commands/demo.js';
import { runInitCommand } from './commands/init.js';
import { runSyncCommand } from './commands/run-sync.js';
import { DATABASES, type Side } from './connections.js';
import { CliError, ExitCode, type ExitCodeValue } from './exit-codes.js';
import { cliLogger, LOG_LEVELS, type LogLevel } from './log.js';
import type { Outcome } from './outcome.js';
import { type Output, processOutput } from './output.js';
import { maskDeep, passwordsIn } from './secrets.js';
import { type CommandOptions, resolveSettings, type Settings } from './settings.js';

const connectionOption = (side: Side) => {
  const { option, env, role } = DATABASES[side];
  return new Option(
    `${option} <connection>`,
    `connection string of ${role}: a postgres:// URL or host=… dbname=…`,
  ).env(env);
};

/** What a command does once its settings are known. */
type Run = (
  settings: Settings,
  output: Output,
  logger: ReturnType<typeof cliLogger>,
  options: CommandOptions,
) => Promise<Outcome>;

/**
 * Runs the CLI on `argv` (as `process.argv`) and resolves with the exit code. Prints results to
 * stdout, and one line to stderr for anything that stops a command; with `--json`, stdout gets
 * exactly one JSON object whatever the outcome.
 */
export async function runCli(argv: readonly string[]): Promise<ExitCodeValue> {
  // The passwords of every connection given, so output hides them even where echoed bare.
  const secrets = passwordsIn([
    ...argv,
    process.env[DATABASES.source.env],
    process.env[DATABASES.target.env],
  ]);
  if (process.env.PGPASSWORD) secrets.push(process.env.PGPASSWORD);
  const output = processOutput({ progress: true, secrets });
  const optionsEnd = argv.indexOf('--');
  const json = (optionsEnd < 0 ? argv : argv.slice(0, optionsEnd)).includes('--json');
  // The agent writes JSON lines: its last object must be one line too.
  const compact = argv[2] === 'agent';
  let outcome: Outcome | undefined;

  const program = new Command('meter-sync')
    .description('Keep a PostgreSQL sync database in step with a remote Client System.')
    .version(packageJson.version)
    .exitOverride()
    .showSuggestionAfterError()
    .configureOutput({
      writeErr: (text) => void process.stderr.write(output.mask(text)),
      outputError: (text, write) =>
        write(`meter-sync: ${oneLine(text.replace(/^error: /, ''))} (see meter-sync --help)\n`),
    });

  const command = (
    name: string,
    description: string,
    sides: readonly Side[],
    defaultLogLevel: LogLevel,
    run: Run,
  ) => {
    const cmd = program.command(name).description(description);
    for (const side of sides) cmd.addOption(connectionOption(side));
    cmd
      .option('--config <path>', 'the config file (default: meter-sync.config.* here or above)')
      .option('--json', 'print one JSON object on stdout, whatever the outcome')
      .option('--quiet', 'print nothing but errors (same as --log-level error, and no table)')
      .addOption(
        new Option(
          '--log-level <level>',
          `what to log on stderr (default: ${defaultLogLevel})`,
        ).choices(LOG_LEVELS),
      );
    cmd.action(async (options: CommandOptions, self: Command) => {
      const settings = await resolveSettings(self, options, { logLevel: defaultLogLevel });
      output.hide(settings.secrets);
      const logger = cliLogger({
        level: settings.logLevel,
        json: settings.json,
        write: (line) => output.error(line),
      });
      outcome = await run(settings, output, logger, options);
    });
    return cmd;
  };

  command(
    'init',
    "create the sync database's missing tables (built-ins, and the config's entities from the source's catalog)",
    ['source', 'target'],
    'silent',
    (settings, out, _logger, options) =>
      runInitCommand(settings, out, { print: options.print === true }),
  )
    .option('--entities <names>', 'only the tables of these entities, comma-separated')
    .option('--print', 'print the DDL instead of running it');

  /** Options of every command that runs syncs: `run` says which (`the run`, `a run`). */
  const runOptions = (cmd: Command, run: string) =>
    cmd
      .option('--statement-timeout <ms>', `statement_timeout for every statement of ${run}`)
      .option('--lock-timeout <ms>', `lock_timeout for every target statement of ${run}`)
      .option(
        '--no-incremental',
        'compare every row, never only the rows changed since the last sync',
      )
      .option(
        '--retries <n>',
        'tries of an entity again after a transient failure (default 2; 0 for none)',
      );

  const syncOptions = (cmd: Command) =>
    runOptions(
      cmd
        .option('--tenant <id>', 'the tenant to sync (required by tenant-scoped entities)')
        .option(
          '--entities <names>',
          'sync only these entities, comma-separated (e.g. device,meter)',
        )
        .option(
          '--wait',
          'wait for another sync into the target to finish instead of exiting with 3',
        ),
      'the run',
    )
      .option('--full', 'compare every row this run, whatever the watermarks say')
      .option('--verbose', 'with a dry run, list the key of every row that would change');

  syncOptions(
    command(
      'sync',
      'sync the Client System into the sync database, once',
      ['source', 'target'],
      'silent',
      (settings, out, logger, options) =>
        runSyncCommand(settings, out, logger, {
          plan: options.dryRun === true,
          verbose: options.verbose === true,
        }),
    ),
  ).option('--dry-run', 'show what a sync would change and write nothing (as plan)');

  syncOptions(
    command(
      'plan',
      'dry run: show what a sync would change; writes nothing',
      ['source', 'target'],
      'silent',
      (settings, out, logger, options) =>
        runSyncCommand(settings, out, logger, { plan: true, verbose: options.verbose === true }),
    ),
  );

  command(
    'check',
    'check the config, both databases and every entity; writes nothing',
    ['source', 'target'],
    'silent',
    (settings, out) => runCheckCommand(settings, out),
  )
    .option('--tenant <id>', 'the tenant a source query is described with')
    .option('--entities <names>', 'check only these entities, comma-separated');

  runOptions(
    command(
      'agent',
      'sync on a schedule until SIGTERM or SIGINT, one line per run',
      ['source', 'target'],
      'warn',
      (settings, out, logger) => runAgentCommand(settings, out, logger),
    )
      .option('--tenant <id>', 'the tenant to sync (required by tenant-scoped entities)')
      .option('--entities <names>', 'sync only these entities, comma-separated')
      .option(
        '--schedule <ms|cron>',
        "interval in milliseconds or a cron expression (default: the config's)",
      )
      .option('--wait', 'wait for another sync holding the lock instead of skipping the run'),
    'a run',
  );

  program
    .command('demo')
    .description('the whole story on embedded PostgreSQL (PGlite): no server, no configuration')
    .action(async () => {
      outcome = { exitCode: await runDemoCommand(processOutput({ progress: false, secrets })) };
    });

  try {
    if (argv.length <= 2) {
      program.outputHelp({ error: true });
      return ExitCode.usage;
    }
    await program.parseAsync(argv);
    const done = outcome ?? { exitCode: ExitCode.ok };
    if (json) printJson(output, compact, done.exitCode, done.json, done.error);
    return done.exitCode;
  } catch (error) {
    let exitCode: ExitCodeValue;
    let message: string;
    if (error instanceof CommanderError) {
      // --help and --version end here too, successfully.
      exitCode = error.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
      message = oneLine(error.message.replace(/^error: /, ''));
      if (exitCode === ExitCode.ok) return exitCode;
    } else {
      exitCode = error instanceof CliError ? error.exitCode : ExitCode.entityFailed;
      message = error instanceof CliError ? error.message : `unexpected error: ${messageOf(error)}`;
      process.stderr.write(`meter-sync: ${output.mask(oneLine(message))}\n`);
    }
    if (json) printJson(output, compact, exitCode, undefined, oneLine(message), errorName(error));
    return exitCode;
  }
}

function printJson(
  output: Output,
  compact: boolean,
  exitCode: ExitCodeValue,
  result: Record<string, unknown> | undefined,
  error?: string,
  errorName = 'Error',
): void {
  const document = {
    ...result,
    ok: exitCode === ExitCode.ok,
    exitCode,
    ...(error === undefined ? {} : { error: { name: errorName, message: error } }),
  };
  output.print(JSON.stringify(maskDeep(document, output.mask), null, compact ? undefined : 2));
}

function errorName(error: unknown): string {
  if (error instanceof CliError) return error.kind;
  if (error instanceof CommanderError) return 'UsageError';
  return error instanceof Error ? error.name : 'Error';
}

const oneLine = (text: string) => text.trim().replace(/\s*\n\s*/g, ' ');
