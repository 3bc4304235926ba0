// Bundles src/ into dist/: index.html, assets/app.js and assets/app.css, and nothing else.
// The server embeds exactly these three files (src/page.rs), so the names are fixed and carry
// no hash. The output is the same bytes for the same sources: no timestamps, no absolute
// paths, no sourcemaps.
import { build } from 'esbuild';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(root, 'dist');

const result = await build({
  absWorkingDir: root,
  entryPoints: { app: 'src/main.tsx' },
  outdir: 'dist/assets',
  bundle: true,
  format: 'esm',
  target: ['es2022', 'chrome111', 'firefox113', 'safari16.4'],
  platform: 'browser',
  minify: true,
  sourcemap: false,
  // Licence comments are replaced by one note that names every bundled package (below).
  legalComments: 'none',
  charset: 'utf8',
  metafile: true,
  write: false,
  logLevel: 'warning',
  define: { 'process.env.NODE_ENV': '"production"' },
});

// The packages bundled into app.js: the inputs that left code in it.
const packages = new Map();
const jsOutput = Object.entries(result.metafile.outputs).find(([name]) => name.endsWith('.js'))?.[1];
for (const [input, { bytesInOutput }] of Object.entries(jsOutput?.inputs ?? {})) {
  if (bytesInOutput === 0) continue;
  const match = input.match(/node_modules\/((?:@[^/]+\/)?[^/]+)\//);
  if (!match || packages.has(match[1])) continue;
  const manifest = JSON.parse(await readFile(path.join(root, 'node_modules', match[1], 'package.json'), 'utf8'));
  packages.set(match[1], `${manifest.name}@${manifest.version} (${manifest.license ?? 'see package'})`);
}
const notice =
  '/*! Mission Control page. Bundled third-party code, each under its own licence as published with it: ' +
  [...packages.values()].sort().join(', ') +
  '. */\n';

const outputs = new Map();
for (const file of result.outputFiles) {
  outputs.set(path.relative(path.join(root, 'dist/assets'), file.path), file.text);
}
const js = outputs.get('app.js');
const css = outputs.get('app.css');
if (js === undefined || css === undefined || outputs.size !== 2) {
  throw new Error(`unexpected esbuild outputs: ${[...outputs.keys()].join(', ')}`);
}

// No inline script or style: the CSP allows neither. The empty data: icon stops the browser
// asking for /favicon.ico.
const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<meta name="referrer" content="no-referrer">
<title>Mission Control</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/assets/app.css">
<script type="module" src="/assets/app.js"></script>
</head>
<body>
<div id="app"></div>
</body>
</html>
`;

await rm(dist, { recursive: true, force: true });
await mkdir(path.join(dist, 'assets'), { recursive: true });
await writeFile(path.join(dist, 'index.html'), html);
await writeFile(path.join(dist, 'assets/app.js'), notice + js);
await writeFile(path.join(dist, 'assets/app.css'), css);

const { gzipSync } = await import('node:zlib');
const size = (text) => gzipSync(Buffer.from(text)).length;
console.log(
  `dist/assets/app.js ${(Buffer.byteLength(notice + js) / 1024).toFixed(1)} KiB (${(size(notice + js) / 1024).toFixed(1)} KiB gzipped), ` +
    `app.css ${(Buffer.byteLength(css) / 1024).toFixed(1)} KiB (${(size(css) / 1024).toFixed(1)} KiB gzipped)`,
);
