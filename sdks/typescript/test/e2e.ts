/**
 * End-to-end against a real engine: `node dist/test/e2e.js` (or `npm run test:e2e`).
 *
 * Env: DURABLE_URL, DURABLE_APP_ID, DURABLE_SIGNING_KEY (a provisioned workspace), and DURABLE_ADMIN_TOKEN
 * when the engine has one. Serves its functions on an ephemeral port with serve(), syncs them, sends
 * their events, resumes the wait with a matching event, waits for every run to complete (30 s) and checks
 * each run's output and steps through the read API. Then composition: a parent invokes a child (no
 * trigger) and uses its output, runs two steps in parallel (executing together, in one invoke), and sends
 * an event that triggers a third function; a function that fails for good runs its onFailure handler.
 * Exits 0 on success, 1 with a message on failure.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { isDeepStrictEqual } from "node:util";
import { createFunction, DurableClient, NonRetryableError, serve } from "@durable/sdk";

const TIMEOUT_MS = 30_000;
const nonce = `${process.pid}-${Date.now()}`;
let threeStepInvokes = 0; // the handler is replayed once per invoke

const threeSteps = createFunction({
  id: "ts-e2e-three",
  trigger: { event: "ts-e2e.three" },
  handler: async ({ event, step }) => {
    threeStepInvokes += 1;
    const a = await step.run("a", () => 1);
    const b = await step.run("b", async () => `${event.data.nonce}:${a + 1}`);
    const c = await step.run("c", () => ({ three: 3 }));
    return { a, b, c };
  },
});

const sleeper = createFunction({
  id: "ts-e2e-sleep",
  trigger: { event: "ts-e2e.sleep" },
  handler: async ({ step }) => {
    const before = await step.run("before", () => Date.now());
    await step.sleep("nap", "1s");
    const after = await step.run("after", () => Date.now());
    return { slept: after - before >= 1000 };
  },
});

const approval = createFunction({
  id: "ts-e2e-wait",
  trigger: { event: "ts-e2e.order" },
  handler: async ({ event, step }) => {
    const decision = await step.waitForEvent<{ orderId: string; by: string }>("approve", {
      event: "ts-e2e.approved",
      match: { orderId: event.data.orderId },
      timeout: "1m",
    });
    return { orderId: event.data.orderId, approvedBy: decision?.data.by ?? null };
  },
});

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
let parentInvokes = 0;
const branches: Record<string, { calls: number; start: number; end: number }> = {};
/** A parallel branch: counts its executions and records when it ran. */
const branch = (name: string, value: number) => async () => {
  const seen = (branches[name] ??= { calls: 0, start: 0, end: 0 });
  seen.calls += 1;
  seen.start = Date.now();
  await pause(300);
  seen.end = Date.now();
  return value;
};

const child = createFunction({
  id: "ts-e2e-child", // no trigger: started only by invoke
  handler: async ({ event, step }) => step.run("double", () => ({ doubled: (event.data.n as number) * 2 })),
});

const parent = createFunction({
  id: "ts-e2e-parent",
  trigger: { event: "ts-e2e.parent" },
  handler: async ({ event, step }) => {
    parentInvokes += 1;
    const out = await step.invoke("call-child", { function: child, data: { n: 21 }, timeout: "1m" });
    const [left, right] = await Promise.all([step.run("left", branch("left", out.doubled + 1)), step.run("right", branch("right", out.doubled + 2))]);
    const sent = await step.sendEvent("notify", { name: "ts-e2e.notified", data: { nonce: event.data.nonce } });
    return { doubled: out.doubled, left, right, sent };
  },
});

const notified = createFunction({
  id: "ts-e2e-notified",
  trigger: { event: "ts-e2e.notified" },
  handler: ({ event }) => ({ nonce: event.data.nonce }),
});

const failing = createFunction({
  id: "ts-e2e-fails",
  trigger: { event: "ts-e2e.fails" },
  retries: 0,
  handler: async ({ step }) => {
    await step.run("explode", () => {
      throw new NonRetryableError(`kaput ${nonce}`);
    });
  },
  onFailure: async ({ event, step }) =>
    step.run("report", () => ({
      failedRun: event.data.runId,
      functionId: event.data.functionId,
      message: event.data.error.message,
      eventName: event.data.event.name,
    })),
});

const EXPECTED: Record<string, unknown> = {
  "ts-e2e-three": { a: 1, b: `${nonce}:2`, c: { three: 3 } },
  "ts-e2e-sleep": { slept: true },
  "ts-e2e-wait": { orderId: `o-${nonce}`, approvedBy: "ana" },
};
const STEPS: Record<string, string[]> = {
  "ts-e2e-three": ["a:run", "b:run", "c:run"],
  "ts-e2e-sleep": ["before:run", "nap:sleep", "after:run"],
  "ts-e2e-wait": ["approve:wait"],
};

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

async function main(): Promise<void> {
  const baseUrl = env("DURABLE_URL").replace(/\/+$/, "");
  const appId = env("DURABLE_APP_ID");
  const signingKey = env("DURABLE_SIGNING_KEY");
  const adminToken = process.env.DURABLE_ADMIN_TOKEN;
  const api = async (path: string): Promise<any> => {
    const response = await fetch(baseUrl + path, { headers: adminToken ? { authorization: `Bearer ${adminToken}` } : {} });
    if (!response.ok) throw new Error(`GET ${path}: ${response.status} ${await response.text()}`);
    return response.json();
  };
  const until = async <T>(what: string, probe: () => Promise<T | undefined>): Promise<T> => {
    const deadline = Date.now() + TIMEOUT_MS;
    for (;;) {
      const found = await probe();
      if (found !== undefined) return found;
      if (Date.now() > deadline) throw new Error(`timed out after ${TIMEOUT_MS / 1000} s waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };

  const functions = [threeSteps, sleeper, approval, child, parent, notified, failing];
  const handler = serve(functions, { signingKey });
  const server = createServer(handler); // the Node http form: the handler reads the request stream
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const appUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/durable`;
    const client = new DurableClient({ baseUrl, appId, signingKey, appUrl });
    await client.sync(functions);
    const [threeId, sleepId, orderId, parentId, failsId] = await client.send([
      { name: "ts-e2e.three", data: { nonce } },
      { name: "ts-e2e.sleep", data: { nonce } },
      { name: "ts-e2e.order", data: { orderId: `o-${nonce}` } },
      { name: "ts-e2e.parent", data: { nonce } },
      { name: "ts-e2e.fails", data: { nonce } },
    ]);
    console.log(`synced ${functions.map((f) => f.id).join(", ")} -> ${appUrl}; sent ${threeId}, ${sleepId}, ${orderId}, ${parentId}, ${failsId}`);

    await until("the wait to be parked", async () => {
      const { items } = await api(`/api/apps/${appId}/runs?activity=waiting`);
      return items.find((run: { eventId: string }) => run.eventId === orderId);
    });
    await client.send({ name: "ts-e2e.approved", data: { orderId: `o-${nonce}`, by: "ana" } });

    const completed = await until("every run to complete", async () => {
      const { items } = await api(`/api/apps/${appId}/runs?status=completed&limit=500`);
      const mine = new Map<string, { id: string }>();
      for (const run of items) if (run.functionId in EXPECTED && [threeId, sleepId, orderId].includes(run.eventId)) mine.set(run.functionId, run);
      if (mine.size === Object.keys(EXPECTED).length) return mine;
      const { items: failed } = await api(`/api/apps/${appId}/runs?status=failed&limit=500`);
      const broken = failed.find((run: { functionId: string }) => run.functionId in EXPECTED);
      if (broken) throw new Error(`run ${broken.id} of ${broken.functionId} failed: ${JSON.stringify(broken.error)}`);
      return undefined;
    });
    for (const [functionId, { id }] of completed) {
      const run = await api(`/api/runs/${id}`);
      if (JSON.stringify(run.output) !== JSON.stringify(EXPECTED[functionId]))
        throw new Error(`${functionId}: output ${JSON.stringify(run.output)}, expected ${JSON.stringify(EXPECTED[functionId])}`);
      const steps = run.steps.map((s: { id: string; type: string }) => `${s.id}:${s.type}`);
      if (JSON.stringify(steps) !== JSON.stringify(STEPS[functionId]))
        throw new Error(`${functionId}: steps ${steps.join(", ")}, expected ${STEPS[functionId]!.join(", ")}`);
      console.log(`ok ${functionId} run ${id}: ${JSON.stringify(run.output)}`);
    }
    // Checkpointed (the default): the three steps and done travel in one answer.
    if (threeStepInvokes !== 1) throw new Error(`the 3-step function was invoked ${threeStepInvokes} times, expected 1 (one checkpoint)`);
    await composition(api, until, appId, parentId!, failsId!);
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

type Api = (path: string) => Promise<any>;
type Until = <T>(what: string, probe: () => Promise<T | undefined>) => Promise<T>;
const same = isDeepStrictEqual; // key order aside: the engine stores outputs as jsonb

/** The composition runs: invoke + parallel + sendEvent, and onFailure. */
async function composition(api: Api, until: Until, appId: string, parentEventId: string, failsEventId: string): Promise<void> {
  const runs = async (status: string): Promise<any[]> => (await api(`/api/apps/${appId}/runs?status=${status}&limit=500`)).items;
  const mine = ["ts-e2e-parent", "ts-e2e-child", "ts-e2e-notified", "ts-e2e-fails:failure"];
  const completed = async (functionId: string, eventId?: string): Promise<any | undefined> => {
    const found = (await runs("completed")).find((run) => run.functionId === functionId && (eventId === undefined || run.eventId === eventId));
    if (found) return api(`/api/runs/${found.id}`);
    const broken = (await runs("failed")).find((run) => mine.includes(run.functionId));
    if (broken) throw new Error(`run ${broken.id} of ${broken.functionId} failed: ${JSON.stringify(broken.error)}`);
    return undefined;
  };

  const parentRun = await until("the parent run to complete", () => completed("ts-e2e-parent", parentEventId));
  const output = parentRun.output;
  if (!same({ ...output, sent: [] }, { doubled: 42, left: 43, right: 44, sent: [] }) || !Array.isArray(output?.sent) || output.sent.length !== 1)
    throw new Error(`ts-e2e-parent: output ${JSON.stringify(output)}, expected {doubled: 42, left: 43, right: 44, sent: [<one event id>]}`);
  const steps = parentRun.steps.map((s: { id: string; type: string }) => `${s.id}:${s.type}`).sort();
  if (!same(steps, ["call-child:invoke", "left:run", "notify:send", "right:run"]))
    throw new Error(`ts-e2e-parent: steps ${steps.join(", ")}, expected call-child:invoke, left:run, notify:send, right:run`);
  const [kid] = parentRun.children ?? [];
  if (parentRun.children?.length !== 1 || kid.functionId !== "ts-e2e-child" || kid.stepId !== "call-child")
    throw new Error(`ts-e2e-parent: children ${JSON.stringify(parentRun.children)}, expected the one ts-e2e-child run of step call-child`);
  const childRun = await api(`/api/runs/${kid.runId}`);
  if (childRun.parentRunId !== parentRun.id || !same(childRun.output, { doubled: 42 }))
    throw new Error(`ts-e2e-child: parentRunId ${childRun.parentRunId}, output ${JSON.stringify(childRun.output)}; expected ${parentRun.id}, {"doubled":42}`);
  const { left, right } = branches;
  if (left?.calls !== 1 || right?.calls !== 1) throw new Error(`the parallel steps executed ${left?.calls} and ${right?.calls} times, expected once each`);
  if (!(left.start < right.end && right.start < left.end)) throw new Error(`the parallel steps did not overlap: ${JSON.stringify(branches)}`);
  if (parentInvokes !== 4) throw new Error(`the parent was invoked ${parentInvokes} times, expected 4 (invoke, parallel, send, done)`);
  console.log(`ok ts-e2e-parent run ${parentRun.id}: ${JSON.stringify(output)}; child ${childRun.id}`);

  const notifiedRun = await until("the sent event's run to complete", () => completed("ts-e2e-notified", output.sent[0]));
  if (!same(notifiedRun.output, { nonce })) throw new Error(`ts-e2e-notified: output ${JSON.stringify(notifiedRun.output)}, expected {"nonce":"${nonce}"}`);
  console.log(`ok ts-e2e-notified run ${notifiedRun.id}, started by the sent event ${output.sent[0]}`);

  const failed = await until("ts-e2e-fails to fail", async () => (await runs("failed")).find((run) => run.functionId === "ts-e2e-fails" && run.eventId === failsEventId));
  const report = await until("the failure handler to complete", () => completed("ts-e2e-fails:failure"));
  const expected = { failedRun: failed.id, functionId: "ts-e2e-fails", message: `kaput ${nonce}`, eventName: "ts-e2e.fails" };
  if (!same(report.output, expected)) throw new Error(`ts-e2e-fails:failure: output ${JSON.stringify(report.output)}, expected ${JSON.stringify(expected)}`);
  console.log(`ok ts-e2e-fails run ${failed.id} failed; its failure handler ran ${report.id}: ${JSON.stringify(report.output)}`);
}

main().then(
  () => {
    console.log("e2e ok");
    process.exit(0);
  },
  (error: unknown) => {
    console.error(`e2e failed: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
