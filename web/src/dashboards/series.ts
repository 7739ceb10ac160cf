import type { WalletLine } from "../api/types.ts";

export interface DayValue {
  /** YYYY-MM-DD */
  date: string;
  value: number;
}

/**
 * Daily values with the missing days filled with zero, from the first day with data (or
 * `minDays` before the last day, whichever is earlier) to the last day or today.
 */
export function fillDays(points: readonly DayValue[], minDays = 14, today: Date = new Date()): DayValue[] {
  const byDate = new Map<string, number>();
  for (const point of points) byDate.set(point.date, (byDate.get(point.date) ?? 0) + point.value);
  const dates = [...byDate.keys()].sort();
  const todayKey = dayKey(today);
  const last = dates.length && dates[dates.length - 1]! > todayKey ? dates[dates.length - 1]! : todayKey;
  const end = parseDay(last);
  let start = new Date(end);
  start.setUTCDate(start.getUTCDate() - (minDays - 1));
  if (dates.length && parseDay(dates[0]!) < start) start = parseDay(dates[0]!);
  const out: DayValue[] = [];
  // A year of days at most: older history is still in the totals.
  for (let day = start, n = 0; day <= end && n < 366; n++) {
    const key = dayKey(day);
    out.push({ date: key, value: byDate.get(key) ?? 0 });
    day = new Date(day);
    day.setUTCDate(day.getUTCDate() + 1);
  }
  return out.slice(-366);
}

/** "12 Mar" for a YYYY-MM-DD day. */
export function dayLabel(date: string): string {
  const day = parseDay(date);
  if (Number.isNaN(day.getTime())) return date;
  return new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short", timeZone: "UTC" }).format(day);
}

function dayKey(date: Date): string {
  return date.toISOString().slice(0, 10);
}

function parseDay(date: string): Date {
  return new Date(`${date.slice(0, 10)}T00:00:00Z`);
}

export interface BalancePoint {
  /** epoch ms */
  x: number;
  /** coins after that moment */
  y: number;
}

/**
 * The wallet's balance over time, from its history (newest first) and today's balance:
 * walking back, each line's amount is undone to get the balance before it.
 */
export function balanceSeries(lines: readonly WalletLine[], balance: number, now: number = Date.now()): BalancePoint[] {
  const points: BalancePoint[] = [{ x: now, y: balance }];
  let after = balance;
  for (const line of lines) {
    const at = Date.parse(line.created_at);
    if (Number.isNaN(at)) continue;
    points.push({ x: at, y: after });
    after -= line.amount;
  }
  const oldest = lines[lines.length - 1];
  if (oldest) {
    const at = Date.parse(oldest.created_at);
    // Just before the oldest movement known: what the wallet held then.
    if (!Number.isNaN(at)) points.push({ x: at - 1, y: after });
  }
  return points.sort((a, b) => a.x - b.x);
}

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

/**
 * An epoch-ms moment as precisely as an axis spanning `span` ms needs: "14:05:09" within an
 * hour, "14:05" within two days, "12 Mar" beyond; 0 for a full "12 Mar, 14:05".
 */
export function timeLabel(ms: number, span = 0): string {
  const options: Intl.DateTimeFormatOptions =
    span <= 0
      ? { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" }
      : span < HOUR_MS
        ? { hour: "2-digit", minute: "2-digit", second: "2-digit" }
        : span < 2 * DAY_MS
          ? { hour: "2-digit", minute: "2-digit" }
          : { day: "numeric", month: "short" };
  return new Intl.DateTimeFormat(undefined, options).format(new Date(ms));
}
