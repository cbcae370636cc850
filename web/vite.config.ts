import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// `npm run dev` proxies the API to a hub on :8080; `npm run build` writes dist/, which `hub serve`
// serves at /.
export default defineConfig({
  plugins: [react()],
  server: { proxy: { "/v1": "http://127.0.0.1:8080" } },
  build: { outDir: "dist", sourcemap: true, chunkSizeWarningLimit: 700 },
  test: { environment: "jsdom", globals: true, include: ["src/**/*.test.{ts,tsx}"] },
});
