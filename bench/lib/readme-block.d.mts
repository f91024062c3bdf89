// Types of readme-block.mjs (a plain ES module; the tests import it).
export const BEGIN: string;
export const END: string;
export function spliceBlock(text: string, block: string): string;
