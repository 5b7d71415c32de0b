/**
 * Like `Promise.all` for work on different connections, but settles only when every piece has:
 * a failure on one connection must not leave a statement running on another while the caller
 * rolls back on it. Throws the first failure, in argument order.
 */
export async function allSettledOrFirstError<T extends readonly unknown[]>(
  work: {
    readonly [K in keyof T]: Promise<T[K]>;
  },
): Promise<T> {
  const settled = await Promise.allSettled(work);
  const failure = settled.find((outcome) => outcome.status === 'rejected');
  if (failure) throw failure.reason;
  return settled.map(
    (outcome) => (outcome as PromiseFulfilledResult<unknown>).value,
  ) as unknown as T;
}

/**
 * `work`, marked as handled: begun ahead, to be awaited later, or never where the caller fails
 * first (its failure then is no unhandled rejection).
 */
export function settledLater<T>(work: Promise<T>): Promise<T> {
  work.catch(() => undefined);
  return work;
}
