// Types of summary.mjs (a plain ES module run by node; the tests import it).
export interface Row {
  measure: string;
  rack: string;
  /** the limit or peer it is measured against ('' when neither) */
  ref: string;
  /** RACK / limit or peer, one per size for a series ('1 / 2 / 3 kernels'); empty when there is no ratio */
  ratios: number[];
  /** e.g. '≤ 2x'; null when the row has no target */
  target: string | null;
  met: boolean | null;
}
export interface Group {
  suite: string;
  date: string;
  rows: Row[];
}
export function summarize(results: unknown): Group[];
export function markdown(results: unknown): string;
export function text(results: unknown): string;
export const README: string;
export function writeReadme(results: unknown, file?: string): boolean;
