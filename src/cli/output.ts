/** What every `weft` command shares: --json output, repeatable options, durations. */

export type Json = { json?: boolean };

/** Prints `value` as JSON with --json, else as `human(value)`. */
export function print<T>(options: Json, value: T, human: (value: T) => string): void {
  process.stdout.write(options.json ? `${JSON.stringify(value, null, 2)}\n` : `${human(value)}\n`);
}

/** Commander's accumulator for a repeatable option. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

const UNIT_MS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "90s", "30m", "24h", "7d" (or a sum such as "1h30m") in ms; throws naming `option`. */
export function parseDuration(text: string, option: string): number {
  const parts = /^(?:\d+[smhd])+$/.test(text) ? text.match(/\d+[smhd]/g)! : [];
  const ms = parts.reduce(
    (sum, part) => sum + Number(part.slice(0, -1)) * UNIT_MS[part.at(-1)!]!,
    0,
  );
  if (ms <= 0 || !Number.isSafeInteger(ms)) {
    throw new Error(`Invalid ${option} "${text}": a duration such as 90s, 30m, 24h or 7d`);
  }
  return ms;
}
