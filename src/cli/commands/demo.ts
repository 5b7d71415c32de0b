import { PGliteMissingError } from '../../demo/embedded-postgres.js';
import { runDemo } from '../../demo/run-demo.js';
import { CliError, ExitCode, type ExitCodeValue } from '../exit-codes.js';
import type { Output } from '../output.js';
import { renderResult } from '../render-result.js';

/** `meter-sync demo`: the whole story on embedded PostgreSQL, printed as it goes. */
export async function runDemoCommand(output: Output): Promise<ExitCodeValue> {
  let ok = true;
  const outcome = await runDemo({
    step: (text) => output.print(text),
    result(title, result) {
      ok &&= result.ok;
      output.print();
      output.print(`== ${title}`);
      output.print();
      for (const line of renderResult(result, { plan: false }))
        output.print(`   ${line}`.trimEnd());
      output.print();
    },
  }).catch((error: unknown) => {
    if (error instanceof PGliteMissingError) throw new CliError(error.message, ExitCode.usage);
    throw error;
  });
  ok &&= outcome.third.ok;
  output.print();
  output.print('Next: sync your own databases');
  output.print('  meter-sync init --target postgres://USER@HOST/SYNC_DB');
  output.print(
    '  meter-sync sync --source postgres://USER@HOST/CLIENT_DB --target postgres://USER@HOST/SYNC_DB --tenant 1',
  );
  return ok ? ExitCode.ok : ExitCode.entityFailed;
}
