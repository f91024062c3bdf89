// The part of README.md that bench/summary.mjs writes: what lies between two marker comments,
// so that the prose around it stays hand-written.
export const BEGIN = '<!-- bench:begin -->';
export const END = '<!-- bench:end -->';

/** `text` with what lies between the markers replaced by `block` (markers kept). */
export function spliceBlock(text, block) {
  const begin = text.indexOf(BEGIN);
  const end = text.indexOf(END);
  if (begin < 0 || end < begin) throw new Error(`no ${BEGIN} … ${END} in the README`);
  return `${text.slice(0, begin + BEGIN.length)}\n${block}${text.slice(end)}`;
}
