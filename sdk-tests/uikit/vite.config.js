// Builds the UIKit test app into dist/ (never committed). The app reads the server it talks to
// from its query string at run time, so one build serves every test server.
import { defineConfig } from 'vite';

export default defineConfig({
  base: './',
  build: { outDir: 'dist', emptyOutDir: true, chunkSizeWarningLimit: 20000, sourcemap: false },
  logLevel: 'warn',
});
