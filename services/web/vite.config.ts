// The pages: three HTML entries (watch, studio, ops) built into dist/public, assets hashed under /assets/.
// Plain TypeScript and the DOM; hls.js is the only library a page loads.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const page = (name: string) => fileURLToPath(new URL(`client/${name}.html`, import.meta.url));

export default defineConfig({
  root: fileURLToPath(new URL('client', import.meta.url)),
  // Absolute asset URLs: /watch/<id> is one level down, and every page shares /assets/.
  base: '/',
  logLevel: 'warn',
  build: {
    outDir: fileURLToPath(new URL('dist/public', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
    // No inline assets: the Content-Security-Policy allows scripts and styles from this origin only.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    // hls.js alone is ~590 kB minified (~180 kB gzipped); the watch page needs all of it.
    chunkSizeWarningLimit: 700,
    rolldownOptions: { input: { watch: page('watch'), studio: page('studio'), ops: page('ops') } },
  },
});
