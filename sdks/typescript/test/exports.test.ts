/** The public surface: exactly these names, each documented, and no runtime dependencies. */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { test } from "node:test";
import * as sdk from "@durable/sdk";

const dist = new URL("../", import.meta.url); // dist/, where the package's .js and .d.ts live
const RUNTIME = ["DurableClient", "DurableError", "InvokeError", "NonRetryableError", "createFunction", "serve", "sign", "signV2", "verify", "verifyV2", "version"];
const TYPES = [
  "CancelOn", "CheckpointOptions", "DurableClientOptions", "DurableEvent", "DurableFunction", "DurableHandler", "Duration", "EventPayload",
  "FailureData", "FunctionOptions", "Handler", "HandlerContext", "InvokeFailure", "InvokeOptions", "NodeLikeRequest",
  "NodeLikeResponse", "Op", "RefusalReason", "Sender", "ServeOptions", "SignV2Options", "Step", "StepOp", "Trigger",
  "VerifyV2Options", "VerifyV2Result", "WaitOptions", "WireEvent",
];
const declarations = readdirSync(dist)
  .filter((name) => name.endsWith(".d.ts"))
  .map((name) => readFileSync(new URL(name, dist), "utf8"))
  .join("\n");

test("the runtime exports are exactly these", () => {
  assert.deepStrictEqual(Object.keys(sdk).sort(), [...RUNTIME].sort());
  assert.equal(sdk.version, JSON.parse(readFileSync(new URL("../package.json", dist), "utf8")).version);
});

test("the type exports are exactly these", () => {
  const index = readFileSync(new URL("index.d.ts", dist), "utf8");
  const exported = [...index.matchAll(/type (\w+)/g)].map((m) => m[1]);
  const listed = [...index.matchAll(/export type \{([^}]*)\}/g)].flatMap((m) => m[1]!.split(",").map((s) => s.trim()).filter(Boolean));
  assert.deepStrictEqual([...exported, ...listed].sort(), [...TYPES].sort());
});

test("every public name has a TSDoc comment", () => {
  const undocumented = [...RUNTIME, ...TYPES].filter(
    (name) => !new RegExp(`\\*/\\s*export (declare )?(abstract )?(function|class|interface|type|const) ${name}\\b`).test(declarations),
  );
  assert.deepStrictEqual(undocumented, []);
  for (const method of ["run", "sleep", "waitForEvent", "invoke", "sendEvent", "sync", "send"])
    assert.match(declarations, new RegExp(`\\*/\\s*(async )?${method}(<[^(]*>)?\\(`), method);
});

test("no runtime dependencies: only node: built-ins and the package's own modules are imported", () => {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", dist), "utf8"));
  assert.equal(pkg.dependencies, undefined);
  for (const name of readdirSync(dist).filter((file) => file.endsWith(".js"))) {
    const source = readFileSync(new URL(name, dist), "utf8");
    for (const [, specifier] of source.matchAll(/from "([^"]+)"/g)) assert.match(specifier!, /^(node:|\.\/)/, `${name} imports ${specifier}`);
  }
});
