// @ts-check
/**
 * Durable example app for the TypeScript SDK: four functions served on a plain Node http server.
 *
 *   (cd sdks/typescript && npm ci && npm run build)
 *   node examples/typescript/app.mjs
 *
 * Environment: DURABLE_URL (default http://localhost:3030), DURABLE_APP_ID and DURABLE_SIGNING_KEY,
 * PORT (default 4001), HOST (default 127.0.0.1), DURABLE_APP_URL (default http://localhost:PORT/api/durable).
 * Without DURABLE_APP_ID and DURABLE_SIGNING_KEY the app provisions the workspace DURABLE_APP_NAME
 * (default "demo-typescript") in DURABLE_ENV (default "dev") itself, as `durable dev` expects; set
 * DURABLE_ADMIN_TOKEN when the engine requires it. Syncs once listening, retrying for 30 s.
 */
import { createServer } from "node:http";
import { pathToFileURL } from "node:url";
import { createFunction, DurableClient, serve } from "../../sdks/typescript/dist/index.js";

/** Welcome a new user: load them, let things settle for two seconds, then send the email. */
export const onboarding = createFunction({
  id: "onboarding",
  trigger: { event: "user.created" },
  handler: async ({ event, step }) => {
    const userId = event.data.userId ?? "u1";
    const user = await step.run("load-user", () => ({ id: userId, email: `${userId}@example.com` }));
    await step.sleep("cooldown", "2s");
    const sent = await step.run("send-email", () => ({ to: user.email, template: "welcome" }));
    return { user: user.id, email: sent };
  },
});

/** Hold an order until an `approval.received` event for it arrives, or an hour passes. */
export const approval = createFunction({
  id: "approval",
  trigger: { event: "order.placed" },
  handler: async ({ event, step }) => {
    const orderId = event.data.orderId;
    const decision = await step.waitForEvent("approve", {
      event: "approval.received",
      match: { orderId },
      timeout: "1h",
    });
    return step.run("record", () => ({ orderId, approved: decision !== null, by: decision?.data.by ?? null }));
  },
});

/** A "nightly" report, every 30 seconds so the demo shows it: a cron run gets the `$cron` event. */
export const nightlyReport = createFunction({
  id: "nightly-report",
  trigger: { cron: "*/30 * * * * *" },
  handler: async ({ event, step }) => {
    const totals = await step.run("collect", () => ({ signups: 3, orders: 2 }));
    return step.run("publish", () => ({
      scheduledAt: event.data.scheduledAt,
      summary: `${totals.signups} signups, ${totals.orders} orders`,
    }));
  },
});

/** Push a changed contact to the CRM: two at a time per tenant, one run per burst of edits of a contact. */
export const syncCrm = createFunction({
  id: "sync-crm",
  trigger: { event: "contact.changed" },
  concurrency: { limit: 2, key: "tenantId" },
  debounce: { period: "2s", key: "contactId" },
  handler: async ({ event, step }) => {
    const { tenantId, contactId } = event.data;
    const contact = await step.run("load-contact", () => ({ tenantId, contactId, email: `${contactId}@example.com` }));
    return step.run("push-to-crm", () => ({ pushed: contact.contactId, tenant: contact.tenantId }));
  },
});

export const FUNCTIONS = [onboarding, approval, nightlyReport, syncCrm];

const sleep = (/** @type {number} */ ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Retry `attempt` once a second for up to 30 s (the engine may still be starting).
 * @template T
 * @param {string} what
 * @param {() => Promise<T>} attempt
 * @returns {Promise<T>}
 */
async function retrying(what, attempt) {
  for (let i = 1; ; i++) {
    try {
      return await attempt();
    } catch (error) {
      if (i >= 30) throw error;
      console.error(`${what} attempt ${i} failed: ${error instanceof Error ? error.message : error}`);
      await sleep(1000);
    }
  }
}

/**
 * Create (or fetch: the call is idempotent) this demo's workspace; resolves with its id and signing key.
 * @param {string} durableUrl
 * @returns {Promise<{ id: string, signingKey: string }>}
 */
async function provision(durableUrl) {
  /** @type {Record<string, string>} */
  const headers = { "content-type": "application/json" };
  if (process.env.DURABLE_ADMIN_TOKEN) headers.authorization = `Bearer ${process.env.DURABLE_ADMIN_TOKEN}`;
  const body = JSON.stringify({
    name: process.env.DURABLE_APP_NAME || "demo-typescript",
    environment: process.env.DURABLE_ENV || "dev",
  });
  const response = await fetch(`${durableUrl}/api/apps`, { method: "POST", headers, body });
  if (!response.ok) throw new Error(`POST /api/apps: ${response.status} ${await response.text()}`);
  return /** @type {{ id: string, signingKey: string }} */ (await response.json());
}

async function main() {
  const durableUrl = (process.env.DURABLE_URL || "http://localhost:3030").replace(/\/+$/, "");
  const port = Number(process.env.PORT || 4001);
  const host = process.env.HOST || "127.0.0.1";
  const appUrl = process.env.DURABLE_APP_URL || `http://localhost:${port}/api/durable`;
  let appId = process.env.DURABLE_APP_ID;
  let signingKey = process.env.DURABLE_SIGNING_KEY;
  if (!appId || !signingKey) ({ id: appId, signingKey } = await retrying("provision", () => provision(durableUrl)));

  const handler = serve(FUNCTIONS, { signingKey });
  const server = createServer(async (req, res) => {
    const started = Date.now();
    await handler(req, res);
    console.log(`${req.method} ${req.url} -> ${res.statusCode} (${Date.now() - started} ms)`);
  });
  await new Promise((resolve) => server.listen(port, host, () => resolve(undefined)));
  console.log(`serving on http://${host}:${port}/api/durable`);

  const client = new DurableClient({ baseUrl: durableUrl, appId, signingKey, appUrl });
  await retrying("sync", () => client.sync(FUNCTIONS));
  console.log(`synced ${FUNCTIONS.map((fn) => fn.id).join(", ")} -> ${appUrl}`);

  for (const signal of /** @type {const} */ (["SIGINT", "SIGTERM"]))
    process.once(signal, () => {
      server.close(() => process.exit(0)); // in-flight invokes finish; the engine retries any it loses
      server.closeIdleConnections();
    });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  main().catch((error) => {
    console.error(`example app failed: ${error instanceof Error ? error.message : error}`);
    process.exit(1);
  });
}
