import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { terminalProgress } from '../../src/cli/progress.js';
import type { EntityResult } from '../../src/index.js';

const result: EntityResult = {
  status: 'ok',
  inserted: 0,
  updated: 0,
  deleted: 0,
  skipped: 0,
  unchanged: 0,
  warnings: [],
  durationMs: 1,
  attempts: 1,
  failedAttempts: [],
};

describe('terminal progress', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('redraws one line with the rows read, compared and written, at most every 100 ms, and clears it', () => {
    let screen = '';
    const progress = terminalProgress({ write: (text: string) => (screen += text) });
    progress.onEvent({ type: 'entity-start', entity: 'register' });
    expect(screen).toBe('\r\x1b[2Kregister: starting…');

    progress.onEvent({ type: 'entity-progress', entity: 'register', phase: 'reading', rows: 10 });
    expect(screen).not.toMatch(/rows read/);
    vi.advanceTimersByTime(150);
    progress.onEvent({
      type: 'entity-progress',
      entity: 'register',
      phase: 'comparing',
      rows: 12_500,
    });
    expect(screen.endsWith('\r\x1b[2Kregister: 12,500 rows compared')).toBe(true);
    vi.advanceTimersByTime(150);
    progress.onEvent({ type: 'entity-progress', entity: 'register', phase: 'writing', rows: 300 });
    expect(screen.endsWith('\r\x1b[2Kregister: 300 rows written')).toBe(true);

    progress.onEvent({ type: 'entity-end', entity: 'register', result });
    expect(screen.endsWith('rows written\r\x1b[2K')).toBe(true);
    const length = screen.length;
    progress.clear();
    expect(screen).toHaveLength(length);
  });
});
