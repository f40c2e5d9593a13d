/**
 * Message signatures (docs/protocol.md, "Signing").
 *
 * v2, `x-durable-signature-v2: t=<epoch ms>,n=<nonce>[,r=<nonce answered>],s=<mac>`, with
 * `mac = hex(HMAC-SHA256(key, "v2\n" + sender + "\n" + t + "\n" + n + "\n" + r + "\n" + body))`: the MAC
 * covers the time, a single-use nonce, the request an answer is for and the direction (`sender` is not
 * sent: the receiver knows whom it expects). v1, `x-durable-signature: hex(HMAC-SHA256(key, body))`, is
 * the seed's signature: replayable, kept for engines and apps that only speak it.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

/** Who sent a v2-signed message: `engine` (invokes, the engine's answers) or `app` (requests, answers to invokes). */
export type Sender = "engine" | "app";

/** The header that carries a v2 signature. */
export const V2_HEADER = "x-durable-signature-v2";
/** The header that carries a v1 signature. */
export const V1_HEADER = "x-durable-signature";
/** How far a v2 `t` may be from the receiver's clock, either way (inclusive). */
export const FRESHNESS_MS = 5 * 60 * 1000;

const NONCE = /^[A-Za-z0-9_-]{16,64}$/;
const TIME = /^(0|[1-9][0-9]{0,14})$/; // integer epoch ms, canonical (the MAC covers the digits as sent), a safe integer
const MAC = /^[0-9a-fA-F]{64}$/;

/** Return the lowercase hex HMAC-SHA256 of the exact `body` bytes (a string is UTF-8), keyed by `key`. */
export function sign(body: string | Uint8Array, key: string): string {
  return createHmac("sha256", key).update(body).digest("hex");
}

/** Tell, in constant time, whether `signature` is the `x-durable-signature` of `body` under `key`. */
export function verify(body: string | Uint8Array, key: string, signature: string | null | undefined): boolean {
  if (!signature) return false;
  return equalHex(sign(body, key), signature.trim());
}

/** A fresh nonce: 16 random bytes as 32 lowercase hex digits. */
export function newNonce(): string {
  return randomBytes(16).toString("hex");
}

/** What {@link signV2} signs besides the body and the key. */
export interface SignV2Options {
  /** `engine` or `app`: who sends the message. */
  sender: Sender;
  /** The send time, integer epoch milliseconds (default `Date.now()`). */
  t?: number | undefined;
  /** The message's nonce (default: a fresh one, 32 hex digits). Keep it to check the answer's `r`. */
  n?: string | undefined;
  /** On an answer only: the nonce of the request it answers (default `""`: a request). */
  r?: string | undefined;
}

/** The `x-durable-signature-v2` header value of `body` (a string is UTF-8) under `key`. */
export function signV2(body: string | Uint8Array, key: string, options: SignV2Options): string {
  const { sender, t = Date.now(), n = newNonce(), r = "" } = options;
  if (sender !== "engine" && sender !== "app") throw new Error(`signV2: sender must be "engine" or "app", got ${JSON.stringify(sender)}`);
  if (!Number.isSafeInteger(t) || t < 0) throw new Error(`signV2: t must be integer epoch milliseconds, got ${t}`);
  if (!NONCE.test(n)) throw new Error(`signV2: n must be 16 to 64 characters of [A-Za-z0-9_-], got ${JSON.stringify(n)}`);
  if (r !== "" && !NONCE.test(r)) throw new Error(`signV2: r must be empty or a nonce, got ${JSON.stringify(r)}`);
  const mac = macV2(body, key, sender, t, n, r);
  return r === "" ? `t=${t},n=${n},s=${mac}` : `t=${t},n=${n},r=${r},s=${mac}`;
}

/** The fields of a parsed v2 header. `r` is null on a request. */
export interface ParsedV2 {
  t: number;
  n: string;
  r: string | null;
  s: string;
}

/** Parse a v2 header value, or return what is wrong with it (naming the field). */
export function parseV2(header: string | null | undefined): ParsedV2 | string {
  if (header === null || header === undefined || header.trim() === "") return "the header is missing";
  const fields = new Map<string, string>();
  for (const part of header.split(",")) {
    const eq = part.indexOf("=");
    const name = (eq < 0 ? part : part.slice(0, eq)).trim();
    if (eq < 0 || !["t", "n", "r", "s"].includes(name)) return `${JSON.stringify(part.trim())} is not one of t=, n=, r=, s=`;
    if (fields.has(name)) return `${name}= appears twice`;
    fields.set(name, part.slice(eq + 1).trim());
  }
  const t = fields.get("t");
  const n = fields.get("n");
  const r = fields.get("r");
  const s = fields.get("s");
  if (t === undefined || !TIME.test(t)) return `t must be integer epoch milliseconds, got ${t === undefined ? "none" : JSON.stringify(t)}`;
  if (n === undefined || !NONCE.test(n)) return `n must be 16 to 64 characters of [A-Za-z0-9_-], got ${n === undefined ? "none" : JSON.stringify(n)}`;
  if (r !== undefined && !NONCE.test(r)) return `r must be 16 to 64 characters of [A-Za-z0-9_-], got ${JSON.stringify(r)}`;
  if (s === undefined || !MAC.test(s)) return `s must be 64 hex digits, got ${s === undefined ? "none" : JSON.stringify(s)}`;
  return { t: Number(t), n, r: r ?? null, s };
}

/** How {@link verifyV2} checks a message. */
export interface VerifyV2Options {
  /** The keys tried in order (the primary, then a fallback while rotating); any one may match. */
  keys: readonly string[];
  /** Who must have sent the message; a message signed by the other side does not verify. */
  sender: Sender;
  /** The nonce of the request this message answers, or null when the message is a request (which must carry no `r`). */
  replyTo: string | null;
  /** The receiver's clock, epoch milliseconds (default `Date.now()`). */
  now?: number | undefined;
}

/** Why {@link verifyV2} refused a message (the nonce store adds `replay`). */
export type RefusalReason = "malformed" | "stale" | "mac" | "reply";

/**
 * The outcome of {@link verifyV2}: the accepted fields, or the reason and a message naming what was
 * wrong, `x-durable-signature-v2 refused (<reason>): <what>`.
 */
export type VerifyV2Result =
  | { ok: true; t: number; n: string; r: string | null }
  | { ok: false; reason: RefusalReason; message: string };

/**
 * Verify a v2-signed message. Checks, in order: the header parses (`malformed`); the MAC matches under
 * one of `keys` for `sender` (`mac`); `t` is within 5 minutes of `now` (`stale`); `r` is the expected
 * `replyTo`, or absent on a request (`reply`). The MAC is checked first so that only authentic messages
 * learn more than "mac". Single use is the caller's: keep the nonces of accepted requests.
 */
export function verifyV2(body: string | Uint8Array, header: string | null | undefined, options: VerifyV2Options): VerifyV2Result {
  const parsed = parseV2(header);
  if (typeof parsed === "string") return refused("malformed", parsed);
  const { t, n, r, s } = parsed;
  const matches = options.keys.some((key) => key !== "" && equalHex(macV2(body, key, options.sender, t, n, r ?? ""), s));
  if (!matches) return refused("mac", `s does not match (a wrong key, an altered body, or not signed by the ${options.sender})`);
  const now = options.now ?? Date.now();
  if (!(Math.abs(now - t) <= FRESHNESS_MS)) // written so that a NaN clock refuses
    return refused("stale", `t=${t} is ${Math.round(Math.abs(now - t) / 1000)} s ${t < now ? "behind" : "ahead of"} this clock (at most ${FRESHNESS_MS / 1000} s either way)`);
  if (options.replyTo === null && r !== null)
    return refused("reply", "r is set, but a request carries no r (an answer replayed as a request)");
  if (options.replyTo !== null && r !== options.replyTo)
    return refused("reply", `r=${r ?? "(none)"} is not the nonce of the request this answers (${options.replyTo})`);
  return { ok: true, t, n, r };
}

function refused(reason: RefusalReason, detail: string): VerifyV2Result {
  return { ok: false, reason, message: `${V2_HEADER} refused (${reason}): ${detail}` };
}

function macV2(body: string | Uint8Array, key: string, sender: string, t: number, n: string, r: string): string {
  return createHmac("sha256", key).update(`v2\n${sender}\n${t}\n${n}\n${r}\n`).update(body).digest("hex");
}

/** Compare a lowercase hex MAC with a given one (hex case not significant) in constant time. */
function equalHex(expected: string, given: string): boolean {
  const a = Buffer.from(expected);
  const b = Buffer.from(given.toLowerCase());
  return a.length === b.length && timingSafeEqual(a, b);
}
