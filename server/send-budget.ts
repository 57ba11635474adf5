/**
 * What one connection may send (config.ts sendMessagesPerSec, sendBytesPerSec): a token bucket in two
 * dimensions, messages and bytes, each holding one second's worth and refilled continuously. A send
 * takes one message and its bytes, or nothing: a refused send costs the connection nothing, so a
 * client that backs off as told by `retryInMs` gets through.
 */
export class SendBudget {
  #messages: number;
  #bytes: number;
  #at: number;

  constructor(
    readonly messagesPerSec: number,
    readonly bytesPerSec: number,
    now = performance.now(),
  ) {
    this.#messages = messagesPerSec;
    this.#bytes = bytesPerSec;
    this.#at = now;
  }

  /**
   * Takes one send of `bytes` carrying `messages` (a batch: one per item): 0 when it may go, else how
   * many ms until it could (at least 1). A send of more than bytesPerSec (or messagesPerSec) goes with a
   * full bucket and leaves it below zero: the next waits longer.
   */
  take(bytes: number, messages = 1, now = performance.now()): number {
    const elapsedSec = Math.max(0, now - this.#at) / 1000;
    this.#at = now;
    this.#messages = Math.min(this.messagesPerSec, this.#messages + elapsedSec * this.messagesPerSec);
    this.#bytes = Math.min(this.bytesPerSec, this.#bytes + elapsedSec * this.bytesPerSec);
    // A send larger than the bucket goes when the bucket is full and leaves it in debt, so the rate holds.
    const need = Math.min(bytes, this.bytesPerSec);
    const count = Math.min(messages, this.messagesPerSec);
    if (this.#messages >= count && this.#bytes >= need) {
      this.#messages -= messages;
      this.#bytes -= bytes;
      return 0;
    }
    const forMessage = this.#messages >= count ? 0 : ((count - this.#messages) / this.messagesPerSec) * 1000;
    const forBytes = this.#bytes >= need ? 0 : ((need - this.#bytes) / this.bytesPerSec) * 1000;
    return Math.max(1, Math.ceil(Math.max(forMessage, forBytes)));
  }
}

/**
 * One budget per connection, made on its first send and forgotten with it (a WeakMap keyed by the
 * connection: the HTTP/1.1 socket, or the HTTP/2 session every stream of a page shares).
 */
export class ConnectionBudgets {
  readonly #budgets = new WeakMap<object, SendBudget>();
  constructor(
    readonly messagesPerSec: number,
    readonly bytesPerSec: number,
  ) {}
  of(connection: object): SendBudget {
    let b = this.#budgets.get(connection);
    if (b === undefined) {
      b = new SendBudget(this.messagesPerSec, this.bytesPerSec);
      this.#budgets.set(connection, b);
    }
    return b;
  }
}

/** An idempotency key as RFC draft-ietf-httpapi-idempotency-key-header allows it, kept to what a log line can show: 1–128 visible ASCII characters. */
const KEY = /^[\x21-\x7e]{1,128}$/;
export const isIdempotencyKey = (key: unknown): key is string => typeof key === 'string' && KEY.test(key);
