/** RFC 3339 date-time with Z or an offset, optional fractions (the form the event schema takes). */
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:?\d{2})$/;

/** A time before now: a whole number and a unit, `30s`, `15m`, `2h`, `7d`, `1w`. */
const RELATIVE = /^(\d{1,6})(s|m|h|d|w)$/;

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** What an instant may be written as, for error messages (API and CLI say the same). */
export const INSTANT_SYNTAX =
  'an RFC 3339 date-time with Z or an offset (2025-10-23T10:00:00Z), or a time before now (15m, 2h, 7d; units s m h d w)';

/**
 * Reads `since`/`until` values: an RFC 3339 instant, a relative time counted back from
 * `nowMs` (`15m` = 15 minutes before now), or `now`. Returns epoch milliseconds, or null
 * for anything else (including RFC 3339 text naming no real instant, such as month 13).
 */
export function parseInstant(text: string, nowMs: number): number | null {
  if (text === 'now') return nowMs;
  const relative = RELATIVE.exec(text);
  if (relative !== null) return nowMs - Number(relative[1]) * UNIT_MS[relative[2]!]!;
  if (!RFC3339.test(text)) return null;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? null : ms;
}
