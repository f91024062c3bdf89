/**
 * An order-independent checksum of rows: the sums (mod 2^32) of two 32-bit FNV-1a hashes of each
 * row's fields. Children commit in any order; equal tables and inputs give equal checksums.
 */
export class RowChecksum {
  private a = 0;
  private b = 0;
  count = 0;

  add(fields: readonly string[]): void {
    let h1 = 0x811c9dc5;
    let h2 = 0x01000193 ^ fields.length;
    for (const f of fields) {
      for (let i = 0; i < f.length; i++) {
        const c = f.charCodeAt(i);
        h1 = Math.imul(h1 ^ c, 0x01000193);
        h2 = Math.imul(h2 ^ c, 0x5bd1e995);
      }
      h1 = Math.imul(h1 ^ 0x1f, 0x01000193);
      h2 = Math.imul(h2 ^ 0x1f, 0x5bd1e995);
    }
    this.a = (this.a + (h1 >>> 0)) >>> 0;
    this.b = (this.b + (h2 >>> 0)) >>> 0;
    this.count++;
  }

  /** Adds another checksum's rows (a part of the same table). */
  merge(a: number, b: number, count: number): void {
    this.a = (this.a + a) >>> 0;
    this.b = (this.b + b) >>> 0;
    this.count += count;
  }

  get parts(): { a: number; b: number; count: number } {
    return { a: this.a, b: this.b, count: this.count };
  }

  get hex(): string {
    return this.a.toString(16).padStart(8, '0') + this.b.toString(16).padStart(8, '0');
  }
}
