/**
 * Progress on a TTY: one line rewritten in place with what runs now and an estimate of what is left.
 * Elsewhere (CI, pipes): one plain line per step.
 */
export class Progress {
  readonly #tty: boolean;
  #plannedSec = 0;
  #spentEstimateSec = 0;
  readonly #start = performance.now();
  #current = '';

  constructor(
    readonly stream: NodeJS.WriteStream = process.stderr,
    readonly quiet = false,
  ) {
    this.#tty = Boolean(stream.isTTY) && !process.env.CI;
  }

  plan(totalSec: number): void {
    this.#plannedSec = totalSec;
    this.#line(`bench: about ${Math.ceil(totalSec)} s of work planned`);
  }

  step(what: string, estimateSec: number): void {
    const elapsed = (performance.now() - this.#start) / 1000;
    const left = Math.max(0, this.#plannedSec - this.#spentEstimateSec);
    this.#spentEstimateSec += estimateSec;
    this.#current = `[${fmt(elapsed)} elapsed, ~${fmt(left)} left] ${what}`;
    if (this.#tty) this.stream.write(`\r\x1b[K${this.#current.slice(0, (this.stream.columns ?? 120) - 1)}`);
    else this.#line(this.#current);
  }

  note(text: string): void {
    if (this.#tty) this.stream.write(`\r\x1b[K${text}\n${this.#current.slice(0, (this.stream.columns ?? 120) - 1)}`);
    else this.#line(text);
  }

  done(text: string): void {
    if (this.#tty) this.stream.write('\r\x1b[K');
    this.#line(text);
  }

  #line(text: string): void {
    if (!this.quiet) this.stream.write(`${text}\n`);
  }
}

const fmt = (sec: number): string =>
  sec >= 60 ? `${Math.floor(sec / 60)}m${String(Math.round(sec % 60)).padStart(2, '0')}s` : `${Math.round(sec)}s`;
