/**
 * Which class a prompt asks for: the class whose name appears in it. Used to score the class accuracy
 * of samples from a class-conditioned recipe (e.g. "a photo of an ankle boot" -> `Ankle boot`).
 *
 * A class name may list alternatives (`T-shirt/top`); each is matched as a whole word, case-insensitive,
 * with an optional plural `s`/`es` ("trousers" matches `Trouser`). A match inside a longer one does not
 * count ("shirt" within "t-shirt"); a prompt naming two different classes is ambiguous (null).
 */

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The phrases that name each class, lower-cased. */
function classPhrases(classNames: readonly string[]): string[][] {
  return classNames.map((name) =>
    name
      .toLowerCase()
      .split('/')
      .map((p) => p.trim())
      .filter((p) => p.length > 0),
  );
}

/** Builds a matcher for `classNames`: prompt -> class index, or null when no class or several match. */
export function classMatcher(classNames: readonly string[]): (prompt: string) => number | null {
  const patterns = classPhrases(classNames).map((phrases) =>
    phrases.map((p) => new RegExp(`(?<![a-z0-9])${escapeRegExp(p)}(?:s|es)?(?![a-z0-9])`, 'g')),
  );
  return (prompt) => {
    const text = prompt.toLowerCase();
    // 1. Every occurrence of every class phrase, as a span.
    const spans: Array<{ cls: number; start: number; end: number }> = [];
    patterns.forEach((res, cls) => {
      for (const re of res) for (const m of text.matchAll(re)) spans.push({ cls, start: m.index!, end: m.index! + m[0].length });
    });
    // 2. Drop spans inside a longer one ("shirt" within "t-shirt"); what is left must name one class.
    const kept = spans.filter((a) => !spans.some((b) => b !== a && b.start <= a.start && b.end >= a.end && b.end - b.start > a.end - a.start));
    const classes = new Set(kept.map((k) => k.cls));
    return classes.size === 1 ? [...classes][0] : null;
  };
}
