/**
 * End-to-end against a real engine: `node dist/test/e2e.js` (or `npm run test:e2e`).
 *
 * Env: DURABLE_URL, DURABLE_APP_ID, DURABLE_SIGNING_KEY (a provisioned workspace), and DURABLE_ADMIN_TOKEN
 * when the engine has one. Serves three functions on an ephemeral port with serve(), syncs them, sends
 * their events, resumes the wait with a matching event, waits for every run to complete (30 s) and checks
 * each run's output and steps through the read API. Exits 0 on success, 1 with a message on failure.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { createFunction, DurableClient, serve } from "@durable/sdk";

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

  const functions = [threeSteps, sleeper, approval];
  const handler = serve(functions, { signingKey });
  const server = createServer(handler); // the Node http form: the handler reads the request stream
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const appUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/durable`;
    const client = new DurableClient({ baseUrl, appId, signingKey, appUrl });
    await client.sync(functions);
    const [threeId, sleepId, orderId] = await client.send([
      { name: "ts-e2e.three", data: { nonce } },
      { name: "ts-e2e.sleep", data: { nonce } },
      { name: "ts-e2e.order", data: { orderId: `o-${nonce}` } },
    ]);
    console.log(`synced ${functions.map((f) => f.id).join(", ")} -> ${appUrl}; sent ${threeId}, ${sleepId}, ${orderId}`);

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
    if (threeStepInvokes !== 4) throw new Error(`the 3-step function was invoked ${threeStepInvokes} times, expected 4`);
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
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
