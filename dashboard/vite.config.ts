import { defineConfig } from "vite";
import preact from "@preact/preset-vite";

// `npm run dev` proxies the API to a running engine (DURABLE_URL, default http://127.0.0.1:3030).
const engine = process.env.DURABLE_URL ?? "http://127.0.0.1:3030";

export default defineConfig({
  base: "/",
  plugins: [preact()],
  build: {
    outDir: "../src/durable/dashboard/static",
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
