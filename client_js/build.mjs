// Bundles the admin page into dist/ (served by the app at /admin/): one script, one stylesheet,
// and the HTML shell. Same-origin only, so the output has no configuration baked in.
import { build } from 'esbuild';
import { copyFile, mkdir, rename, rm } from 'node:fs/promises';

const out = new URL('./dist/', import.meta.url);
await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });
await build({
  entryPoints: { app: 'src/admin/app.js', 'app-css': 'src/admin/app.css' },
  bundle: true,
  format: 'iife',
  platform: 'browser',
  target: ['chrome100', 'firefox100', 'safari15'],
  minify: true,
  sourcemap: true,
  outdir: out.pathname,
  entryNames: '[name]',
  logLevel: 'warning',
  absWorkingDir: new URL('.', import.meta.url).pathname,
});
// esbuild names a CSS entry after its key; the page links app.css.
await rename(new URL('app-css.css', out), new URL('app.css', out));
await rm(new URL('app-css.css.map', out), { force: true });
await copyFile(new URL('./src/admin/index.html', import.meta.url), new URL('index.html', out));
console.log('built', out.pathname);
