import { Command, CommanderError, Option } from 'commander';
import packageJson from '../../package.json' with { type: 'json' };
import { messageOf } from '../errors.js';
import { runDemoCommand } from './commands/demo.js';
import { runInitCommand } from './commands/init.js';
import { runSyncCommand, type SyncCommandOptions } from './commands/run-sync.js';
import { DATABASES } from './connections.js';
import { CliError, ExitCode, type ExitCodeValue } from './exit-codes.js';
import { processOutput } from './output.js';
import { maskSecrets, passwordsIn } from './secrets.js';

const urlOption = (side: 'source' | 'target') => {
  const { option, env, role } = DATABASES[side];
  return new Option(`${option} <url>`, `connection string of ${role}`).env(env);
};

/**
 * Runs the CLI on `argv` (as `process.argv`) and resolves with the exit code. Prints results to
 * stdout, and one line to stderr for anything that stops a command.
 */
export async function runCli(argv: readonly string[]): Promise<ExitCodeValue> {
  let exitCode: ExitCodeValue = ExitCode.ok;
  // The passwords of every URL given, so errors hide them even where a driver echoes them bare.
  const secrets = passwordsIn([
    ...argv,
    process.env[DATABASES.source.env],
    process.env[DATABASES.target.env],
  ]);
  const mask = (text: string) => maskSecrets(text, secrets);
  const program = new Command('meter-sync')
    .description('Keep a PostgreSQL sync database in step with a remote Client System.')
    .version(packageJson.version)
    .exitOverride()
    .showSuggestionAfterError()
    .configureOutput({
      writeErr: (text) => void process.stderr.write(mask(text)),
      outputError: (text, write) =>
        write(`meter-sync: ${oneLine(text.replace(/^error: /, ''))} (see meter-sync --help)\n`),
    });

  program
    .command('init')
    .description("create the sync database's tables for the built-in entities (idempotent)")
    .addOption(urlOption('target'))
    .action(async (options: { target?: string }) => {
      exitCode = await runInitCommand(options, processOutput({ progress: false }));
    });

  const addSyncOptions = (command: Command) =>
    command
      .addOption(urlOption('source'))
      .addOption(urlOption('target'))
      .option(
        '--tenant <id>',
        'the tenant to sync (required by the tenant-scoped meter and register)',
      )
      .option('--entities <names>', 'sync only these entities, comma-separated (e.g. device,meter)')
      .option('--json', 'print the result as JSON (no progress)')
      .option(
        '--wait',
        'wait for another sync into the target to finish instead of exiting with 3',
      );

  addSyncOptions(
    program.command('sync').description('sync the Client System into the sync database, once'),
  ).action(async (options: SyncCommandOptions) => {
    exitCode = await runSyncCommand(options, processOutput({ progress: !options.json }), {
      plan: false,
    });
  });

  addSyncOptions(
    program.command('plan').description('dry run: show what a sync would change; writes nothing'),
  )
    .option('--verbose', 'list the key of every row that would change')
    .action(async (options: SyncCommandOptions) => {
      exitCode = await runSyncCommand(options, processOutput({ progress: !options.json }), {
        plan: true,
      });
    });

  program
    .command('demo')
    .description('the whole story on embedded PostgreSQL (PGlite): no server, no configuration')
    .action(async () => {
      exitCode = await runDemoCommand(processOutput({ progress: false }));
    });

  try {
    if (argv.length <= 2) {
      program.outputHelp({ error: true });
      return ExitCode.usage;
    }
    await program.parseAsync(argv);
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version end here too, successfully.
      return error.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
    }
    const message =
      error instanceof CliError ? error.message : `unexpected error: ${messageOf(error)}`;
    process.stderr.write(`meter-sync: ${mask(oneLine(message))}\n`);
    return error instanceof CliError ? error.exitCode : ExitCode.entityFailed;
  }
}

const oneLine = (text: string) => text.trim().replace(/\s*\n\s*/g, ' ');
