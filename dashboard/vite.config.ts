import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { defineConfig, type Plugin } from "vite";
import preact from "@preact/preset-vite";

const here = dirname(fileURLToPath(import.meta.url));
const outDir = resolve(here, "../src/durable/dashboard/static");

// The API docs page (/api/docs) runs swagger-ui from these bundled files, never from a CDN: the engine
// serves them from static/swagger/ (src/durable/api/docs.py).
function swaggerUi(): Plugin {
  const files = ["swagger-ui-bundle.js", "swagger-ui.css", "LICENSE"];
  return {
    name: "durable-swagger-ui",
    apply: "build",
    closeBundle() {
      const target = resolve(outDir, "swagger");
      mkdirSync(target, { recursive: true });
      for (const file of files) copyFileSync(resolve(here, "node_modules/swagger-ui-dist", file), resolve(target, file));
    },
  };
}

// `npm run dev` proxies the API to a running engine (DURABLE_URL, default http://127.0.0.1:3030).
const engine = process.env.DURABLE_URL ?? "http://127.0.0.1:3030";

export default defineConfig({
  base: "/",
  plugins: [preact(), swaggerUi()],
  build: {
    outDir,
    emptyOutDir: true,
    assetsDir: "assets",
    target: "es2022",
    sourcemap: false,
    reportCompressedSize: false,
  },
  server: {
    proxy: { "/api": { target: engine, changeOrigin: false } },
  },
});
