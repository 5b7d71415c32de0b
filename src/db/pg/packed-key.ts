/**
 * Integer keys packed into 64 bits: what a key set carries in place of a key's hash where the
 * key is small enough. Both sides then send the key itself, which costs the servers less than
 * hashing it, needs no row position to name the keys behind it, and is exact: no two keys pack
 * alike.
 *
 * The bits a column takes come from the SOURCE's types (a source `integer` takes 32 whatever
 * the target's type), so that a source key always fits; a target value that does not fit its
 * bits fails the read in a cast (SQLSTATE 22003), and the caller compares keys another way.
 */
import type { TableDescription } from '../types.js';

/** Bits of the source's integer types, by `format_type`'s name. */
const SOURCE_BITS: Readonly<Record<string, number>> = { smallint: 16, integer: 32, bigint: 64 };
/** The target's integer types by `typname`. */
const TARGET_BITS: Readonly<Record<string, number>> = { int2: 16, int4: 32, int8: 64 };
/** The type a value is cast to where it may not fit its bits. */
const TYPE_OF_BITS: Readonly<Record<number, string>> = { 16: 'int2', 32: 'int4' };

const totalBits = (bits: readonly number[]) => bits.reduce((total, width) => total + width, 0);

/**
 * How many bits each key column takes packed, in key order, where every key column is an
 * integer on both sides and they take 64 bits at most together; `undefined` otherwise.
 * `sourceTypes` are the source's columns' types as `format_type` names them.
 */
export function packedKeyBits(
  key: readonly string[],
  sourceTypes: ReadonlyMap<string, string>,
  description: TableDescription,
): number[] | undefined {
  const bits: number[] = [];
  for (const column of key) {
    const width = SOURCE_BITS[sourceTypes.get(column) ?? ''];
    const typeName = description.get(column)?.typeName ?? '';
    if (width === undefined || TARGET_BITS[typeName] === undefined) return undefined;
    bits.push(width);
  }
  return totalBits(bits) <= 64 ? bits : undefined;
}

/** Whether a target column of this `typname` can hold values wider than `bits`. */
export function widerThan(typeName: string, bits: number): boolean {
  return (TARGET_BITS[typeName] ?? 64) > bits;
}

/**
 * The key packed into one `int8`: each value (an SQL expression of an integer type) placed in
 * its bits as two's complement, the first column highest. A value that may not fit (`fits`
 * false) is cast to the integer type of its bits first, which fails where it does not.
 */
export function packedKeySql(
  values: readonly { readonly value: string; readonly fits: boolean }[],
  bits: readonly number[],
): string {
  let shift = totalBits(bits);
  return values
    .map(({ value, fits }, i) => {
      const width = bits[i] as number;
      shift -= width;
      const fitted =
        fits || width === 64 ? `(${value})::int8` : `(${value})::${TYPE_OF_BITS[width]}::int8`;
      // Bits above the highest column's fall off the end of the shift.
      const placed =
        width === 64 || i === 0 ? fitted : `(${fitted} & ${(1n << BigInt(width)) - 1n}::int8)`;
      return shift === 0 ? placed : `(${placed} << ${shift})`;
    })
    .join(' | ');
}

/**
 * The key packed at `position` (in 8-byte units) of `packed`, as the text of each value. A value
 * within one 32-bit half is read with 32-bit arithmetic; one across the halves (or of 64 bits)
 * through a bigint, which costs some microseconds.
 */
export function unpackKey(packed: Uint8Array, position: number, bits: readonly number[]): string[] {
  const view = new DataView(packed.buffer, packed.byteOffset, packed.byteLength);
  const high = view.getUint32(position * 8);
  const low = view.getUint32(position * 8 + 4);
  let whole: bigint | undefined;
  let shift = totalBits(bits);
  return bits.map((width) => {
    shift -= width;
    if (width <= 32 && (shift >= 32 || shift + width <= 32)) {
      const word = shift >= 32 ? high : low;
      // Its bits at the top of an int32, then back down: sign-extended from its highest bit.
      return String(((word >>> (shift % 32)) << (32 - width)) >> (32 - width));
    }
    whole ??= view.getBigUint64(position * 8);
    return BigInt.asIntN(width, whole >> BigInt(shift)).toString();
  });
}
