/**
 * An order-independent checksum of a set of rows: the sum, mod 2^64, of a 64-bit hash of each
 * row's canonical form. Children commit chunks in any order; the table and the input file give
 * the same value exactly when they hold the same multiset of rows (up to hash collisions).
 *
 * Canonical form of a row: the number of fields, then for each field its length in UTF-16 code
 * units followed by its code units. The 64-bit hash is two independent 32-bit multiplicative
 * hashes of that sequence (high and low word), each finished with the murmur3 avalanche.
 */

const TWO32 = 0x1_0000_0000;

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The 64-bit hash of one row, as [high 32 bits, low 32 bits]. */
export function rowHash(fields: readonly string[]): [number, number] {
  let h1 = Math.imul(0x811c9dc5 ^ fields.length, 0x01000193);
  let h2 = Math.imul(0x9747b28c ^ fields.length, 0x5bd1e995);
  for (let f = 0; f < fields.length; f++) {
    const s = fields[f]!;
    const n = s.length;
    h1 = Math.imul(h1 ^ n, 0x01000193);
    h2 = Math.imul(h2 ^ n, 0x5bd1e995);
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      h1 = Math.imul(h1 ^ c, 0x01000193);
      h2 = Math.imul((h2 ^ c) + (h2 >>> 15), 0x5bd1e995);
    }
  }
  return [fmix32(h1), fmix32(h2 ^ 0x2545f491)];
}

export class RowChecksum {
  /** Rows added. */
  count = 0;
  private hi = 0;
  private lo = 0;

  add(fields: readonly string[]): void {
    const [h, l] = rowHash(fields);
    let lo = this.lo + l;
    let hi = this.hi + h;
    if (lo >= TWO32) {
      lo -= TWO32;
      hi++;
    }
    this.lo = lo;
    this.hi = hi >= TWO32 ? hi - TWO32 : hi;
    this.count++;
  }

  /** Adds another checksum's rows (sums are associative: chunk checksums add up to the file's). */
  merge(other: RowChecksum | { count: number; value: bigint }): void {
    const v = (BigInt(this.hi) * 0x1_0000_0000n + BigInt(this.lo) + other.value) & 0xffff_ffff_ffff_ffffn;
    this.hi = Number(v >> 32n);
    this.lo = Number(v & 0xffff_ffffn);
    this.count += other.count;
  }

  /** The sum as an unsigned 64-bit BigInt. */
  get value(): bigint {
    return (BigInt(this.hi) << 32n) | BigInt(this.lo);
  }

  /** The sum as 16 hex digits. */
  get hex(): string {
    return checksumHex(this.value);
  }
}

export function checksumHex(v: bigint): string {
  return BigInt.asUintN(64, v).toString(16).padStart(16, '0');
}

/** Parses 16 hex digits (or passes a BigInt through). */
export function checksumValue(v: bigint | string): bigint {
  return typeof v === 'bigint' ? BigInt.asUintN(64, v) : BigInt.asUintN(64, BigInt(`0x${v}`));
}
