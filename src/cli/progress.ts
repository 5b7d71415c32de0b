import type { SyncEvent } from '../engine/events.js';
import type { ProgressStream } from './output.js';

/** Redraw at most this often, so a fast run does not spend its time on the terminal. */
const REDRAW_MS = 100;

const PHASES = { reading: 'read', comparing: 'compared', writing: 'written' } as const;

/**
 * One status line on the terminal, redrawn in place: the entity being synced and how many rows
 * it has read, compared or written so far. Cleared when the entity ends, so only the result
 * table remains.
 */
export function terminalProgress(stream: ProgressStream) {
  let shown = false;
  let drawnAt = 0;
  const draw = (text: string) => {
    stream.write(`\r\x1b[2K${text}`);
    shown = true;
    drawnAt = Date.now();
  };
  const clear = () => {
    if (shown) stream.write('\r\x1b[2K');
    shown = false;
  };
  return {
    onEvent(event: SyncEvent): void {
      switch (event.type) {
        case 'entity-start':
          draw(`${event.entity}: starting…`);
          break;
        case 'entity-progress':
          if (Date.now() - drawnAt >= REDRAW_MS) {
            draw(
              `${event.entity}: ${event.rows.toLocaleString('en-US')} rows ${PHASES[event.phase]}`,
            );
          }
          break;
        case 'entity-end':
        case 'run-end':
          clear();
          break;
      }
    },
    clear,
  };
}
