import { createHmac, timingSafeEqual } from "node:crypto";

/** Return the lowercase hex HMAC-SHA256 of the exact `body` bytes (a string is UTF-8), keyed by `key`. */
export function sign(body: string | Uint8Array, key: string): string {
  return createHmac("sha256", key).update(body).digest("hex");
}

/** Tell, in constant time, whether `signature` is the `x-durable-signature` of `body` under `key`. */
export function verify(body: string | Uint8Array, key: string, signature: string | null | undefined): boolean {
  if (!signature) return false;
  const expected = Buffer.from(sign(body, key));
  const given = Buffer.from(signature.trim().toLowerCase());
  return given.length === expected.length && timingSafeEqual(given, expected);
}
