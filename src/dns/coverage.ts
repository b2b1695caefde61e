/**
 * Which versions of one owner's entries a replica has complete knowledge of: a sorted set
 * of disjoint ranges (after, upTo]. A range is covered when some replica vouched that it
 * sent every entry of that owner whose current version lies in it (see entries.ts).
 * Union is commutative, associative and idempotent, so coverage is a CRDT of its own.
 */

/** Versions after `after`, up to and including `upTo`. */
export interface VersionRange {
  readonly after: number;
  readonly upTo: number;
}

/** Sorted, disjoint, non-adjacent ranges. */
export type Coverage = readonly VersionRange[];

/** `coverage` with `range` added, adjacent and overlapping ranges joined. */
export function addRange(coverage: Coverage, range: VersionRange): Coverage {
  const out: VersionRange[] = [];
  let { after, upTo } = range;
  let placed = false;
  for (const r of coverage) {
    if (r.upTo < after) {
      out.push(r);
    } else if (r.after > upTo) {
      if (!placed) {
        out.push({ after, upTo });
        placed = true;
      }
      out.push(r);
    } else {
      after = Math.min(after, r.after);
      upTo = Math.max(upTo, r.upTo);
    }
  }
  if (!placed) out.push({ after, upTo });
  return out;
}

/** Whether `version` lies in a range of `coverage`. */
export function covers(coverage: Coverage, version: number): boolean {
  for (const r of coverage) {
    if (version <= r.after) return false;
    if (version <= r.upTo) return true;
  }
  return false;
}

/** Whether every version of `range` is already covered. */
export function coversRange(coverage: Coverage, range: VersionRange): boolean {
  return coverage.some((r) => r.after <= range.after && range.upTo <= r.upTo);
}

/** The highest version up to which everything is covered: the end of a range from 0, else 0. */
export function watermark(coverage: Coverage): number {
  const first = coverage[0];
  return first !== undefined && first.after === 0 ? first.upTo : 0;
}

/** The parts of `coverage` above `version`, clipped to start there. */
export function rangesAbove(coverage: Coverage, version: number): VersionRange[] {
  const out: VersionRange[] = [];
  for (const r of coverage) {
    if (r.upTo <= version) continue;
    out.push({ after: Math.max(r.after, version), upTo: r.upTo });
  }
  return out;
}
