/**
 * sign/verify (v1) and signV2/verifyV2, and what the served endpoint refuses in all its forms: a
 * missing or v1-only signature, a wrong key, a stale or app-signed invoke, an answer replayed as an
 * invoke, and a replayed invoke (whose handler must not run again).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createFunction, serve, sign, signV2, verify, verifyV2, type DurableHandler } from "@durable/sdk";
import { answerProblem, expressCall, fetchCall, httpCall, invokeBody, KEY, nodeServer, nonceOf, signed, signedV1, type Answer } from "./helpers.js";

/** The internal nonce store (not exported by the package), loaded from the built module. */
interface Store {
  accept(n: string, t: number, now: number): boolean;
  readonly size: number;
}
const { NonceStore } = (await import(new URL("../nonces.js", import.meta.url).href)) as { NonceStore: new (capacity?: number) => Store };

test("sign is the lowercase hex HMAC-SHA256 of the exact bytes", () => {
  const fox = "The quick brown fox jumps over the lazy dog"; // RFC-style reference value
  assert.equal(sign(fox, "key"), "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8");
  assert.match(sign('{"a":1}', KEY), /^[0-9a-f]{64}$/);
  assert.notEqual(sign('{"a":1}', KEY), sign('{"a": 1}', KEY)); // whitespace matters: no re-serialisation
  assert.equal(sign("é", KEY), sign(Buffer.from([0xc3, 0xa9]), KEY)); // strings are UTF-8
});

for (const signature of [undefined, null, "", "not-hex", "é".repeat(64), "0".repeat(63), "0".repeat(65)]) {
  test(`verify refuses ${JSON.stringify(signature)}`, () => {
    assert.equal(verify("{}", "k", signature), false);
  });
}

test("verify accepts surrounding whitespace and upper-case hex", () => {
  const signature = sign("{}", "k");
  assert.ok(verify("{}", "k", ` ${signature.toUpperCase()}\n`));
});

describe("signV2 / verifyV2", () => {
  test("signV2 stamps the current time and a fresh nonce of 32 lowercase hex digits", () => {
    const before = Date.now();
    const a = signV2("{}", KEY, { sender: "app" });
    const b = signV2("{}", KEY, { sender: "app" });
    assert.match(a, /^t=\d+,n=[0-9a-f]{32},s=[0-9a-f]{64}$/);
    assert.notEqual(nonceOf(a), nonceOf(b));
    const t = Number(/^t=(\d+)/.exec(a)?.[1]);
    assert.ok(t >= before && t <= Date.now(), `t=${t}`);
    assert.ok(verifyV2("{}", a, { keys: [KEY], sender: "app", replyTo: null }).ok);
  });

  test("signV2 refuses what it cannot sign", () => {
    assert.throws(() => signV2("{}", KEY, { sender: "both" as never }), { message: 'signV2: sender must be "engine" or "app", got "both"' });
    assert.throws(() => signV2("{}", KEY, { sender: "app", t: 1.5 }), { message: "signV2: t must be integer epoch milliseconds, got 1.5" });
    assert.throws(() => signV2("{}", KEY, { sender: "app", n: "short" }), { message: /^signV2: n must be 16 to 64 characters/ });
    assert.throws(() => signV2("{}", KEY, { sender: "app", r: "no spaces allowed here" }), { message: /^signV2: r must be empty or a nonce/ });
  });

  const t = 1767225600000;
  const good = signV2("{}", KEY, { sender: "engine", t, n: "abcdefghijklmnop" });
  const mac = good.slice(good.indexOf("s=") + 2);
  for (const [header, detail] of [
    [undefined, "the header is missing"],
    ["  ", "the header is missing"],
    [`t=${t},n=abcdefghijklmnop,x=1,s=${mac}`, `"x=1" is not one of t=, n=, r=, s=`],
    [`t=${t},n=abcdefghijklmnop,s=${mac},s=${mac}`, "s= appears twice"],
    [`t=0${t},n=abcdefghijklmnop,s=${mac}`, `t must be integer epoch milliseconds, got "0${t}"`],
    [`t=-${t},n=abcdefghijklmnop,s=${mac}`, `t must be integer epoch milliseconds, got "-${t}"`],
    [`t=${t},s=${mac}`, "n must be 16 to 64 characters of [A-Za-z0-9_-], got none"],
    [`t=${t},n=${"a".repeat(65)},s=${mac}`, `n must be 16 to 64 characters of [A-Za-z0-9_-], got "${"a".repeat(65)}"`],
    [`t=${t},n=abcdefghijklmnop,r=,s=${mac}`, `r must be 16 to 64 characters of [A-Za-z0-9_-], got ""`],
    [`t=${t},n=abcdefghijklmnop,s=${mac.slice(1)}`, `s must be 64 hex digits, got "${mac.slice(1)}"`],
  ] as const) {
    test(`malformed: ${detail}`, () => {
      const result = verifyV2("{}", header, { keys: [KEY], sender: "engine", replyTo: null, now: t });
      assert.deepStrictEqual(result, { ok: false, reason: "malformed", message: `x-durable-signature-v2 refused (malformed): ${detail}` });
    });
  }

  test("fields may come in any order, with spaces, and s in upper case", () => {
    const shuffled = ` s=${mac.toUpperCase()} , n=abcdefghijklmnop,t=${t} `;
    assert.ok(verifyV2("{}", shuffled, { keys: [KEY], sender: "engine", replyTo: null, now: t }).ok);
  });

  test("the MAC is checked before freshness and binding: an unauthentic message only learns 'mac'", () => {
    const stale = signV2("{}", KEY, { sender: "app", t, n: "abcdefghijklmnop", r: "qrstuvwxyzabcdef" });
    const options = { sender: "app", replyTo: null, now: t + 3_600_000 } as const;
    assert.equal((verifyV2("{}", stale, { ...options, keys: ["other"] }) as { reason: string }).reason, "mac");
    assert.equal((verifyV2("{}", stale, { ...options, keys: [KEY] }) as { reason: string }).reason, "stale");
    assert.equal((verifyV2("{}", stale, { ...options, keys: [KEY], now: t }) as { reason: string }).reason, "reply");
  });

  test("no keys, or only empty ones, match nothing; a clock that is not a number refuses as stale", () => {
    for (const keys of [[], [""]]) assert.equal((verifyV2("{}", good, { keys, sender: "engine", replyTo: null, now: t }) as { reason: string }).reason, "mac");
    assert.equal((verifyV2("{}", good, { keys: [KEY], sender: "engine", replyTo: null, now: Number.NaN }) as { reason: string }).reason, "stale");
  });
});

describe("the nonce store", () => {
  test("refuses a nonce it holds, forgets it 10 minutes after accepting it", () => {
    const store = new NonceStore();
    assert.equal(store.accept("n1", 1000, 1000), true);
    assert.equal(store.accept("n1", 1000, 1000 + 600_000 - 1), false);
    assert.equal(store.accept("n2", 2000, 1000 + 600_000), true); // n1 expired and was dropped
    assert.equal(store.size, 1);
    assert.equal(store.accept("n1", 1000, 1000 + 600_000), true);
  });

  test("is bounded: when full it drops the oldest and then refuses anything not newer than it", () => {
    const store = new NonceStore(2);
    assert.ok(store.accept("a", 100, 100));
    assert.ok(store.accept("b", 200, 200));
    assert.ok(store.accept("c", 300, 300)); // drops a (t=100)
    assert.equal(store.size, 2);
    assert.equal(store.accept("a", 100, 301), false, "the dropped nonce cannot come back");
    assert.equal(store.accept("late", 100, 301), false, "nor anything stamped at or before it");
    assert.ok(store.accept("d", 101, 302), "a newer one is still accepted");
  });
});

/** Every way the served endpoint is called, on one handler: Fetch, Express with a Buffer, an unread stream, Node http. */
async function everyForm(handler: DurableHandler, body: Buffer, headers: () => Record<string, string>): Promise<Answer[]> {
  const server = await nodeServer(handler);
  try {
    return [
      await fetchCall(handler, body, headers()),
      await expressCall(handler, { headers: headers(), body }),
      await expressCall(handler, { headers: headers(), stream: [body] }),
      await httpCall(server.url, body, headers()),
    ];
  } finally {
    await server.close();
  }
}

/** A served `hello` whose handler counts its runs (its side effect). */
function counted(options: { signingKeyFallback?: string; now?: () => number } = {}) {
  const runs = { count: 0 };
  const fn = createFunction({ id: "hello", trigger: { event: "demo.hello" }, handler: () => ++runs.count });
  return { handler: serve([fn], { signingKey: KEY, ...options }), runs };
}

const NOW = Date.now();
for (const [what, headers, error] of [
  ["no signature", () => ({}), /^x-durable-signature-v2 refused \(malformed\): the header is missing$/],
  ["only a v1 signature", () => signedV1(invokeBody()), /^this SDK requires signatures v2: the invoke carries only x-durable-signature \(v1\)/],
  ["a wrong key", () => signed(invokeBody(), { key: KEY + "-other" }), /^x-durable-signature-v2 refused \(mac\): /],
  ["an invoke 5 minutes and 1 ms old", () => signed(invokeBody(), { t: NOW - 300_001 }), /^x-durable-signature-v2 refused \(stale\): t=\d+ is 300 s behind/],
  ["an invoke from 6 minutes ahead", () => signed(invokeBody(), { t: NOW + 360_000 }), /^x-durable-signature-v2 refused \(stale\): t=\d+ is 360 s ahead of/],
  ["an invoke signed for the app direction", () => signed(invokeBody(), { sender: "app" }), /^x-durable-signature-v2 refused \(mac\): /],
  ["an answer replayed as an invoke (it carries r)", () => signed(invokeBody(), { r: "0123456789abcdef" }), /^x-durable-signature-v2 refused \(reply\): /],
] as const) {
  test(`the served endpoint refuses ${what} with a 401, and the handler does not run`, async () => {
    const { handler, runs } = counted({ now: () => NOW });
    for (const answer of await everyForm(handler, invokeBody(), headers)) {
      assert.equal(answer.status, 401);
      assert.equal(answer.headers["content-type"], "application/json");
      assert.deepStrictEqual(Object.keys(answer.json()), ["error"]);
      assert.match(answer.json().error, error);
      assert.ok(verify(answer.body, KEY, answer.headers["x-durable-signature"]), "the refusal is signed v1");
      assert.equal(answer.headers["x-durable-signature-v2"], undefined, "a refusal answers no invoke: no v2");
    }
    assert.equal(runs.count, 0, "the handler did not run");
  });
}

test("the served endpoint accepts an invoke exactly 5 minutes old or ahead, by its own clock", async () => {
  const { handler, runs } = counted({ now: () => NOW });
  for (const t of [NOW - 300_000, NOW + 300_000]) {
    const request = signed(invokeBody(), { t });
    const answer = await fetchCall(handler, invokeBody(), request);
    assert.equal(answer.status, 200, answer.body.toString());
    assert.equal(answerProblem(answer, request, KEY, NOW), null);
    assert.match(answer.headers["x-durable-signature-v2"]!, new RegExp(`^t=${NOW},`), "the answer is stamped by the same clock");
  }
  assert.equal(runs.count, 2);
});

test("a replayed invoke is refused in every form and across handlers; its side effect ran once", async () => {
  const { handler, runs } = counted();
  const body = invokeBody();
  const request = signed(body); // one capture, sent again and again
  const first = await fetchCall(handler, body, request);
  assert.equal(first.status, 200);
  assert.equal(answerProblem(first, request), null);
  const other = counted(); // another serve() in the same process shares the store
  for (const answer of [...(await everyForm(handler, body, () => request)), await fetchCall(other.handler, body, request)]) {
    assert.equal(answer.status, 401);
    assert.deepStrictEqual(answer.json(), { error: `x-durable-signature-v2 refused (replay): n=${nonceOf(request["x-durable-signature-v2"])} was already accepted by this app process` });
  }
  assert.equal(runs.count, 1, "the handler ran once");
  assert.equal(other.runs.count, 0);
});

test("the same invoke sent twice at once runs once", async () => {
  let release: () => void = () => {};
  const gate = new Promise<void>((resolve) => (release = resolve));
  let runs = 0;
  const slow = createFunction({
    id: "hello",
    trigger: { event: "demo.hello" },
    handler: async () => {
      runs += 1;
      await gate;
      return "done";
    },
  });
  const handler = serve([slow], { signingKey: KEY });
  const request = signed(invokeBody());
  const both = Promise.all([fetchCall(handler, invokeBody(), request), fetchCall(handler, invokeBody(), request)]);
  setTimeout(release, 50);
  const statuses = (await both).map((answer) => answer.status).sort();
  assert.deepStrictEqual(statuses, [200, 401]);
  assert.equal(runs, 1);
});

test("while rotating, an invoke under the fallback key is accepted and answered under the primary", async () => {
  const fn = createFunction({ id: "hello", trigger: { event: "demo.hello" }, handler: () => "hi" });
  const handler = serve([fn], { signingKey: "new-key", signingKeyFallback: KEY });
  for (const key of [KEY, "new-key"]) {
    const request = signed(invokeBody(), { key });
    const answer = await fetchCall(handler, invokeBody(), request);
    assert.equal(answer.status, 200, answer.body.toString());
    assert.equal(answerProblem(answer, request, "new-key"), null, "signed with the primary");
    assert.notEqual(answerProblem(answer, request, KEY), null, "never with the fallback");
  }
  const stranger = await fetchCall(handler, invokeBody(), signed(invokeBody(), { key: "third-key" }));
  assert.match(stranger.json().error, /refused \(mac\)/);
  const withoutFallback = await fetchCall(serve([fn], { signingKey: "new-key" }), invokeBody(), signed(invokeBody()));
  assert.match(withoutFallback.json().error, /refused \(mac\)/);
});
