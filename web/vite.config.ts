import { resolve } from "node:path";
import { defineConfig } from "vite";

// Where `npm run dev` forwards /api calls; the hub is the only backend.
const apiTarget = process.env.COHORT_API_URL ?? "http://127.0.0.1:8000";

export default defineConfig({
  // The hub serves dist/index.html for every non-API path (e.g. /admin/applications),
  // so asset URLs must be absolute or nested routes would resolve them relative to the path.
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // swagger-ui ships as one ~1.7 MB prebuilt bundle that only the API docs page loads;
    // the app's own chunks stay far below this limit.
    chunkSizeWarningLimit: 1800,
    // Every browser that runs Lit 3 supports modulepreload natively.
    modulePreload: { polyfill: false },
    rolldownOptions: {
      input: {
        main: resolve(import.meta.dirname, "index.html"),
        "api-docs": resolve(import.meta.dirname, "api-docs.html"),
        // `/embed/projects/{id}`: the editor alone, for iframes (the hub serves it for /embed/*).
        embed: resolve(import.meta.dirname, "embed.html"),
      },
    },
  },
  server: {
    proxy: {
      "/api": { target: apiTarget, changeOrigin: false },
      // The real-time gateway (one WebSocket per tab).
      "/ws": { target: apiTarget, changeOrigin: false, ws: true },
      // HLS playlists, segments, posters, storyboards and downloads (signed paths).
      "/media": { target: apiTarget, changeOrigin: false },
      // The sandbox payment provider's checkout page (top-ups).
      "/sandbox": { target: apiTarget, changeOrigin: false },
      // Shared documents (y-websocket) of the IDE.
      "/yjs": { target: apiTarget, changeOrigin: false, ws: true },
    },
  },
});
