/**
 * The daemon's log: one line per event, `<ISO time> <level> <component>: <message>`, or a
 * JSON object per line with `--json`, to stderr, so a service manager or `2>file` keeps it.
 */
export type Level = "debug" | "info" | "warn" | "error";

const RANK: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };

export const LEVELS = Object.keys(RANK) as Level[];

export interface Logger {
  (level: Level, component: string, message: string): void;
  readonly level: Level;
}

/** A logger that prints events at `level` and above through `write` (stderr by default). */
export function createLogger(
  level: Level,
  write: (line: string) => void = (line) => process.stderr.write(line),
  now: () => Date = () => new Date(),
  json = false,
): Logger {
  const threshold = RANK[level];
  const log = (eventLevel: Level, component: string, message: string) => {
    if (RANK[eventLevel] < threshold) return;
    if (json) {
      const time = now().toISOString();
      write(`${JSON.stringify({ time, level: eventLevel, component, message })}\n`);
      return;
    }
    // One event, one line: a message with newlines (a peer's nickname, an error's stack)
    // must not forge log lines.
    const flat = message.replace(/[\r\n]+/g, " | ");
    write(`${now().toISOString()} ${eventLevel} ${component}: ${flat}\n`);
  };
  return Object.assign(log, { level });
}

export function isLevel(text: string): text is Level {
  return Object.hasOwn(RANK, text);
}
