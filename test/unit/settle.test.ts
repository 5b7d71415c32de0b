import { describe, expect, it } from 'vitest';
import { allSettledOrFirstError } from '../../src/engine/settle.js';

const later = <T>(ms: number, value: T, onSettle: () => void) =>
  new Promise<T>((resolve) =>
    setTimeout(() => {
      onSettle();
      resolve(value);
    }, ms),
  );

describe('allSettledOrFirstError', () => {
  it('returns every value, in argument order', async () => {
    const values = await allSettledOrFirstError([later(20, 'a', () => {}), Promise.resolve(2)]);
    expect(values).toEqual(['a', 2]);
  });

  it('throws only once the other side has finished, and throws the failure of the earliest argument', async () => {
    let otherFinished = false;
    const failure = allSettledOrFirstError([
      later(10, 'x', () => {}).then(() => Promise.reject(new Error('earliest argument'))),
      Promise.reject(new Error('failed sooner')),
      later(40, 'slow', () => {
        otherFinished = true;
      }),
    ]);
    await expect(failure).rejects.toThrow('earliest argument');
    expect(otherFinished).toBe(true);
  });
});
