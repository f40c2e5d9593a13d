/** The example app's functions (examples/typescript/app.mjs) replay as its README describes. */
import assert from "node:assert/strict";
import { mock, test } from "node:test";
import { serve, type DurableFunction } from "@durable/sdk";
import { fetchCall, KEY, signed } from "./helpers.js";

const example = await import(new URL("../../../../examples/typescript/app.mjs", import.meta.url).href);
const NOW = 1767225600000;

/** One invoke of `fn` with `data` and the memoized `steps`; resolves with the op. */
async function replay(fn: DurableFunction, data: unknown, steps: Record<string, unknown>): Promise<unknown> {
  const event = { id: "e", name: "x", data, ts: NOW };
  const body = Buffer.from(JSON.stringify({ runId: "r", functionId: fn.id, attempt: 1, event, steps }));
  mock.timers.enable({ apis: ["Date"], now: NOW });
  try {
    const answer = await fetchCall(serve(example.FUNCTIONS, { signingKey: KEY }), body, signed(body));
    assert.equal(answer.status, 200);
    return answer.json();
  } finally {
    mock.timers.reset();
  }
}

test("the example defines the four functions with their triggers and options", () => {
  assert.deepStrictEqual(
    example.FUNCTIONS.map((fn: DurableFunction) => fn.definition),
    [
      { id: "onboarding", trigger: { event: "user.created" } },
      { id: "approval", trigger: { event: "order.placed" } },
      { id: "nightly-report", trigger: { cron: "*/30 * * * * *" } },
      {
        id: "sync-crm",
        trigger: { event: "contact.changed" },
        concurrency: { limit: 2, key: "tenantId" },
        debounce: { period: "2s", key: "contactId" },
      },
    ],
  );
});

test("onboarding: load-user and the two-second sleep in one invoke, then send-email and done", async () => {
  const user = { id: "ada", email: "ada@example.com" };
  assert.deepStrictEqual(await replay(example.onboarding, { userId: "ada" }, {}), {
    op: "checkpoint",
    steps: [{ id: "load-user", data: user }],
    then: { op: "sleep", id: "cooldown", until: "2026-01-01T00:00:02.000Z" },
  });
  const steps = { "load-user": { type: "run", data: user }, cooldown: { type: "sleep" } };
  const email = { to: "ada@example.com", template: "welcome" };
  assert.deepStrictEqual(await replay(example.onboarding, { userId: "ada" }, steps), {
    op: "checkpoint",
    steps: [{ id: "send-email", data: email }],
    then: { op: "done", data: { user: "ada", email } },
  });
  const all = { ...steps, "send-email": { type: "run", data: email } };
  assert.deepStrictEqual(await replay(example.onboarding, { userId: "ada" }, all), { op: "done", data: { user: "ada", email } });
});

test("approval: waits for approval.received matched on orderId for an hour, then records", async () => {
  assert.deepStrictEqual(await replay(example.approval, { orderId: "o1" }, {}), {
    op: "wait",
    id: "approve",
    event: "approval.received",
    match: { orderId: "o1" },
    until: "2026-01-01T01:00:00.000Z",
  });
  const recorded = (data: unknown) => ({ op: "checkpoint", steps: [{ id: "record", data }], then: { op: "done", data } });
  const approved = { approve: { type: "wait", data: { id: "e2", name: "approval.received", data: { orderId: "o1", by: "bob" }, ts: NOW } } };
  assert.deepStrictEqual(await replay(example.approval, { orderId: "o1" }, approved), recorded({ orderId: "o1", approved: true, by: "bob" }));
  assert.deepStrictEqual(
    await replay(example.approval, { orderId: "o1" }, { approve: { type: "wait", data: null } }),
    recorded({ orderId: "o1", approved: false, by: null }),
  );
});

test("nightly-report: collects, then publishes for the $cron occurrence", async () => {
  const cron = { cron: "*/30 * * * * *", scheduledAt: "2026-01-01T00:00:30.000Z" };
  const report = { scheduledAt: "2026-01-01T00:00:30.000Z", summary: "3 signups, 2 orders" };
  assert.deepStrictEqual(await replay(example.nightlyReport, cron, {}), {
    op: "checkpoint",
    steps: [
      { id: "collect", data: { signups: 3, orders: 2 } },
      { id: "publish", data: report },
    ],
    then: { op: "done", data: report },
  });
});

test("sync-crm: loads the contact, then pushes it, in one invoke", async () => {
  const data = { tenantId: "t1", contactId: "c1" };
  const contact = { tenantId: "t1", contactId: "c1", email: "c1@example.com" };
  const pushed = { pushed: "c1", tenant: "t1" };
  assert.deepStrictEqual(await replay(example.syncCrm, data, {}), {
    op: "checkpoint",
    steps: [
      { id: "load-contact", data: contact },
      { id: "push-to-crm", data: pushed },
    ],
    then: { op: "done", data: pushed },
  });
  assert.deepStrictEqual(await replay(example.syncCrm, data, { "load-contact": { type: "run", data: contact } }), {
    op: "checkpoint",
    steps: [{ id: "push-to-crm", data: pushed }],
    then: { op: "done", data: pushed },
  });
});
