/** Seeded randomness and the figures each fault test prints, so a run can be reproduced and quoted. */

/** mulberry32: a small seeded generator of numbers in [0, 1); the same seed, the same numbers. */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A seeded generator, its seed printed. The seed comes from FAULTS_SEED when set, so a failing
 * run can be repeated with the same kill points and mutations.
 */
export function seededRandom(label: string): { seed: number; next: () => number } {
  const seed = Number(process.env.FAULTS_SEED ?? Math.floor(Math.random() * 2 ** 31));
  report(label, { seed });
  return { seed, next: mulberry32(seed) };
}

/** Prints one line of figures, `[faults] label {…}`, for the run's log and the README. */
export function report(label: string, figures: Record<string, unknown>): void {
  console.log(
    `[faults] ${label} ${JSON.stringify(figures, (_, value) => (typeof value === 'bigint' ? value.toString() : value))}`,
  );
}
