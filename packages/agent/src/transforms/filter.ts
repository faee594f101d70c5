// `include[]` / `exclude[]` rules of a source: keep a line if no include rule is set or one
// matches, and no exclude rule matches.

/** A regex without the flags that make test() stateful ('g' and 'y' move lastIndex). */
function stateless(re: RegExp): RegExp {
  return re.global || re.sticky ? new RegExp(re.source, re.flags.replace(/[gy]/g, '')) : re;
}

/** The filter for one source, or null when it has no rules (the pipeline then skips the step). */
export function compileFilter(
  include: readonly RegExp[],
  exclude: readonly RegExp[],
): ((message: string) => boolean) | null {
  const inc = include.map(stateless);
  const exc = exclude.map(stateless);
  if (inc.length === 0 && exc.length === 0) return null;
  return (message: string): boolean => {
    if (inc.length > 0) {
      let kept = false;
      for (let i = 0; i < inc.length; i++) {
        if (inc[i]!.test(message)) {
          kept = true;
          break;
        }
      }
      if (!kept) return false;
    }
    for (let i = 0; i < exc.length; i++) {
      if (exc[i]!.test(message)) return false;
    }
    return true;
  };
}
