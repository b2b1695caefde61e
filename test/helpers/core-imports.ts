/**
 * Finds runtime-specific code in a core source file: `node:*` or `bun:*` imports, and
 * uses of the `Deno` or `Bun` globals. Comments are ignored so they may name runtimes.
 */

const FORBIDDEN: ReadonlyArray<readonly [RegExp, string]> = [
  [/\b(?:from|import)\s*\(?\s*["'](?:node|bun):[^"']*["']/, "imports a runtime module"],
  [/\brequire\s*\(\s*["'](?:node|bun):/, "requires a runtime module"],
  [/\b(?:Deno|Bun)\s*(?:\.|\[)/, "uses a runtime global"],
  [/\bglobalThis\s*\.\s*(?:Deno|Bun|process)\b/, "reaches for a runtime global"],
  [/\bprocess\s*\.\s*(?:env|argv|exit|versions|platform|stdout|stderr)\b/, "uses Node's process"],
];

/** Removes // and /* comments, leaving strings alone well enough for source we write. */
function stripComments(source: string): string {
  return source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`\\])\/\/.*$/gm, "$1");
}

export interface Violation {
  line: number;
  reason: string;
  text: string;
}

/** Every line of `source` that would tie the core to one runtime. */
export function findRuntimeSpecificCode(source: string): Violation[] {
  const violations: Violation[] = [];
  const lines = stripComments(source).split("\n");
  lines.forEach((text, index) => {
    for (const [pattern, reason] of FORBIDDEN) {
      if (pattern.test(text)) violations.push({ line: index + 1, reason, text: text.trim() });
    }
  });
  return violations;
}

/** Files under src/ that are glue, allowed to touch the runtime: the CLI (cli.ts, cli/) and the daemon. */
export function isGlue(relativePath: string): boolean {
  return /^src\/(cli\.ts|cli\/|daemon\/)/.test(relativePath);
}
