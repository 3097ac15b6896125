// How the CLI shows a long operation's progress on stderr: a bar redrawn in place on a terminal
// (percentage, done/total, rate, time left; a counter when the total is unknown), plain lines at most
// once a second otherwise (a log file or a pipe keeps a readable history).
import type { Progress } from '../admin/command.js';

const BAR_WIDTH = 24;
/** Redraws of a terminal bar, at most. */
const TTY_INTERVAL_MS = 100;
/** Plain lines, at most one per this interval. */
const LINE_INTERVAL_MS = 1000;

function amount(n: number, unit: string | undefined): string {
  if (unit === 'bytes') {
    if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(1)} GiB`;
    if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
    if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(1)} KiB`;
    return `${n} B`;
  }
  return String(n);
}

export function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/**
 * One line for a position: `phase [#####-----]  42% 4200/10000 records  1234/s  ETA 5s`, or without a
 * total `phase 4200 records 1234/s`. rate is units per second (null: not known yet); bar false gives
 * the plain form without the bar.
 */
export function renderProgress(p: Progress, rate: number | null, opts: { bar: boolean; width?: number } = { bar: true }): string {
  const unit = p.unit && p.unit !== 'bytes' ? ` ${p.unit}` : '';
  const rateText = rate !== null && rate > 0 ? `  ${amount(Math.round(rate), p.unit)}/s` : '';
  if (p.total === undefined || p.total <= 0) return `${p.phase} ${amount(p.done, p.unit)}${unit}${rateText}`;
  const fraction = Math.min(1, Math.max(0, p.done / p.total));
  const pct = `${Math.floor(fraction * 100)}%`.padStart(4);
  const width = opts.width ?? BAR_WIDTH;
  const filled = Math.round(fraction * width);
  const bar = opts.bar ? ` [${'#'.repeat(filled)}${'-'.repeat(width - filled)}]` : '';
  const eta = rate !== null && rate > 0 && p.done < p.total ? `  ETA ${duration((p.total - p.done) / rate)}` : '';
  return `${p.phase}${bar} ${pct} ${amount(p.done, p.unit)}/${amount(p.total, p.unit)}${unit}${rateText}${eta}`;
}

/** Draws progress on a stream: in place on a terminal, throttled lines elsewhere. */
export class ProgressView {
  private phase = '';
  private start = { t: 0, done: 0 };
  private lastDraw = -Infinity;
  private drawn = false;
  private last: Progress | null = null;
  private lastDrawn: Progress | null = null;

  constructor(private readonly out: { write(text: string): void; tty: boolean }, private readonly now: () => number = Date.now) {}

  update(p: Progress): void {
    const t = this.now();
    if (p.phase !== this.phase) {
      // A new phase: the previous one's last position stays on screen.
      if (this.drawn && this.out.tty && this.last) { this.draw(this.last, t); this.out.write('\n'); this.drawn = false; }
      this.phase = p.phase;
      this.start = { t, done: p.done };
      // A terminal shows a new phase at once; plain lines keep their one-per-second pace across phases.
      if (this.out.tty) this.lastDraw = -Infinity;
    }
    this.last = p;
    if (this.out.tty) {
      const complete = p.total !== undefined && p.done >= p.total;
      if (!complete && t - this.lastDraw < TTY_INTERVAL_MS) return;
    } else if (t - this.lastDraw < LINE_INTERVAL_MS) return;
    this.draw(p, t);
  }

  /** Ends the display (a terminal's bar keeps its last state on its own line). */
  finish(): void {
    // Plain lines: the final position too, which the once-a-second pace may have held back.
    if (!this.out.tty && this.last && this.last !== this.lastDrawn) this.draw(this.last, this.now());
    if (this.drawn && this.out.tty) this.out.write('\n');
    this.drawn = false;
  }

  private draw(p: Progress, t: number): void {
    const seconds = (t - this.start.t) / 1000;
    const rate = seconds >= 0.5 ? (p.done - this.start.done) / seconds : null;
    this.lastDraw = t;
    this.lastDrawn = p;
    if (this.out.tty) {
      this.out.write(`\r${renderProgress(p, rate, { bar: true })}\x1b[K`);
      this.drawn = true;
    } else {
      this.out.write(renderProgress(p, rate, { bar: false }) + '\n');
    }
  }
}
