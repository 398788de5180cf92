/**
 * Where a segmentation's time goes: milliseconds per sub-stage, summed into a plain record that the run
 * manifest carries next to its load / segment / write times (keys `segment.<stage>`). One clock, lapped at each
 * stage boundary, so the sub-stages add up to the stage they divide.
 */
export class StageClock {
  #t = performance.now();

  constructor(readonly into?: Record<string, number>) {}

  /** Charges the time since the last lap (or reset) to `key`. */
  lap(key: string): void {
    const now = performance.now();
    if (this.into) this.into[key] = (this.into[key] ?? 0) + (now - this.#t);
    this.#t = now;
  }

  /** Starts the next lap now without charging anyone (time spent elsewhere, e.g. in a callback). */
  reset(): void {
    this.#t = performance.now();
  }

  /** Adds a duration measured apart from the laps (an overlapping span such as the first batch). */
  add(key: string, ms: number): void {
    if (this.into) this.into[key] = (this.into[key] ?? 0) + ms;
  }
}

/** Whole milliseconds, as the manifest stores them. */
export function roundTimings(t: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(t).map(([k, v]) => [k, Math.round(v)]));
}
