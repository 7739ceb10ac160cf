/**
 * The hub's clock as seen from this tab, estimated NTP-style from ping/pong round trips.
 *
 * Each sample gives `offset = server_time − (sent + received) / 2`, which is exact when the two
 * legs of the round trip took equally long and off by at most RTT/2 otherwise; so of the recent
 * samples, the one with the lowest RTT is the one to trust. Local times come from
 * `performance.now()` (monotonic) rather than `Date.now()`, so a wall-clock jump on this machine
 * cannot skew a measurement.
 */

export interface ClockSample {
  /** Round-trip time in milliseconds. */
  rtt: number;
  /** Server time minus local time, in milliseconds. */
  offset: number;
  /** Local time the sample was taken (ms, `localNow()` scale). */
  at: number;
}

/** Milliseconds since the Unix epoch by this machine's monotonic clock. */
export function localNow(): number {
  return performance.timeOrigin + performance.now();
}

/** Samples older than this no longer count: network paths and clock drift change. */
const SAMPLE_MAX_AGE_MS = 5 * 60_000;
const MAX_SAMPLES = 16;

export class ClockEstimate {
  private samples: ClockSample[] = [];
  private best: ClockSample | null = null;

  /** Record one ping/pong exchange (local send and receive times, the server's answer). */
  add(sentAt: number, receivedAt: number, serverTime: number): ClockSample {
    const sample: ClockSample = {
      rtt: Math.max(0, receivedAt - sentAt),
      offset: serverTime - (sentAt + receivedAt) / 2,
      at: receivedAt,
    };
    this.samples.push(sample);
    if (this.samples.length > MAX_SAMPLES) this.samples.shift();
    this.choose(receivedAt);
    return sample;
  }

  private choose(now: number): void {
    const fresh = this.samples.filter((s) => now - s.at <= SAMPLE_MAX_AGE_MS);
    this.samples = fresh.length ? fresh : this.samples.slice(-1);
    this.best = this.samples.reduce<ClockSample | null>(
      (best, s) => (best === null || s.rtt < best.rtt ? s : best),
      null,
    );
  }

  /** True once at least one exchange completed. */
  get synced(): boolean {
    return this.best !== null;
  }

  /** Server minus local, in ms (0 until synced). */
  get offset(): number {
    return this.best?.offset ?? 0;
  }

  /** RTT of the sample the offset comes from (null until synced): the estimate's error bound ×2. */
  get rtt(): number | null {
    return this.best?.rtt ?? null;
  }

  /** The hub's current time in ms since the epoch. */
  serverNow(): number {
    return localNow() + this.offset;
  }

  reset(): void {
    this.samples = [];
    this.best = null;
  }
}
