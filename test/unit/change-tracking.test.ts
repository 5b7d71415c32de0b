import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SAFE_DISTANCE, trackChanges } from '../../src/db/pg/changes.js';

/** Tracking for a snapshot whose xmin and `age()` origin are these 64-bit xids. */
const trackingAt = (xmin: bigint, now: bigint) =>
  trackChanges(
    { xmin: String(xmin), now: String(now), system: '7', timeline: '1', database: '5' },
    async () => {
      throw new Error('no statements in a unit test');
    },
    async () => {
      throw new Error('no statements in a unit test');
    },
  );

const xid = (max: bigint) => fc.bigInt({ min: 3n, max });

describe('change tracking by xmin', () => {
  it('counts from any watermark at or before the snapshot within 2^30 xids, across epochs (property)', () => {
    fc.assert(
      fc.property(
        xid(2n ** 40n),
        fc.bigInt({ min: 0n, max: 2n ** 30n - 1n }),
        fc.bigInt({ min: 0n, max: 1000n }),
        (watermark, behind, running) => {
          const xmin = watermark + behind;
          const tracking = trackingAt(xmin, xmin + running);
          const distance = xmin + running - watermark;
          if (distance < SAFE_DISTANCE * 2n)
            expect(tracking.unreadableSince(String(watermark))).toBeUndefined();
          else expect(tracking.unreadableSince(String(watermark))).toMatch(/wraparound horizon/);
          expect(tracking.within(String(watermark))).toBe(String(distance));
          expect(tracking.ageing(String(watermark))).toBe(distance >= SAFE_DISTANCE);
        },
      ),
    );
  });

  it('refuses a watermark ahead of the snapshot: the source went back (property)', () => {
    fc.assert(
      fc.property(xid(2n ** 40n), fc.bigInt({ min: 1n, max: 2n ** 33n }), (xmin, ahead) => {
        expect(trackingAt(xmin, xmin + 5n).unreadableSince(String(xmin + ahead))).toMatch(
          /behind the watermark/,
        );
      }),
    );
  });

  it('refuses a watermark 2^30 xids or more behind, and keeps the distance within what age() counts', () => {
    const now = 5n * 2n ** 32n + 17n;
    const tracking = trackingAt(now, now);
    expect(tracking.unreadableSince(String(now - 2n ** 30n))).toMatch(/wraparound/);
    expect(tracking.unreadableSince(String(now - 2n ** 30n + 1n))).toBeUndefined();
    // What is compared with age(xmin)::oid stays far below 2^31, where age() turns negative.
    expect(BigInt(tracking.within(String(now - 2n ** 30n + 1n)))).toBeLessThan(2n ** 31n);
    expect(tracking.origin).toBe('7:1:5');
    expect(tracking.watermark).toBe(String(now));
  });
});
