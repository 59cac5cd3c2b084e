import fs from 'node:fs';
import path from 'node:path';
import type { RequestHandler } from 'express';
import { AppError } from '../errors';

/** The page's own files (index.html, app.js, style.css), copied next to the compiled code by `npm run build`. */
export const UI_DIR = path.resolve(__dirname, '../ui');

/** The directory of an installed package (its package.json's folder). */
function packageDir(name: string): string {
  return path.dirname(require.resolve(`${name}/package.json`));
}

/**
 * The files served under /ui/: the page's own and the libraries it loads, from the
 * installed packages (no CDN: the page works with no network). Names map to absolute
 * paths, so nothing outside this list can be asked for.
 */
function uiFiles(): Map<string, string> {
  const files = new Map<string, string>();
  for (const name of fs.readdirSync(UI_DIR)) {
    if (name !== 'index.html') files.set(name, path.join(UI_DIR, name));
  }
  const uplot = path.join(packageDir('uplot'), 'dist');
  files.set('uPlot.iife.min.js', path.join(uplot, 'uPlot.iife.min.js'));
  files.set('uPlot.min.css', path.join(uplot, 'uPlot.min.css'));
  return files;
}

/** The files of swagger-ui-dist served under /docs/. */
function swaggerFiles(): Map<string, string> {
  const dir = packageDir('swagger-ui-dist');
  return new Map(
    ['swagger-ui.css', 'swagger-ui-bundle.js', 'favicon-32x32.png', 'favicon-16x16.png'].map((name) => [name, path.join(dir, name)]),
  );
}

/**
 * Serves the listed files by the name in the route's `*file` parameter; any other name
 * is a 404 not_found. Files of the page revalidate on every load (Last-Modified),
 * library files are cached for a day.
 */
function fileHandler(files: Map<string, string>, maxAgeMs: number): RequestHandler {
  return (req, res, next) => {
    const raw = (req.params as Record<string, unknown>).file;
    const name = Array.isArray(raw) ? raw.join('/') : typeof raw === 'string' ? raw : '';
    const file = files.get(name);
    if (file === undefined) {
      next(new AppError('not_found', `no file ${req.path}`));
      return;
    }
    res.sendFile(file, { maxAge: maxAgeMs, dotfiles: 'deny' }, (err) => {
      if (err !== undefined && !res.headersSent) next(err);
    });
  };
}

/** GET /ui/*file: the page's scripts, styles and libraries. */
export function uiAssetsHandler(): RequestHandler {
  return fileHandler(uiFiles(), 0);
}

/** GET /docs/*file: Swagger UI's files. */
export function swaggerAssetsHandler(): RequestHandler {
  return fileHandler(swaggerFiles(), 24 * 3_600_000);
}

/** GET /: the explorer page (it loads its data from the API with the browser's key, if one is needed). */
export function pageHandler(): RequestHandler {
  const page = fs.readFileSync(path.join(UI_DIR, 'index.html'), 'utf8');
  return (_req, res) => {
    res.status(200).type('text/html; charset=utf-8').set('Cache-Control', 'no-cache').send(page);
  };
}

/**
 * GET /docs: Swagger UI over /openapi.json with try-it-out on, every file served locally.
 * The bearer key typed into its Authorize dialog is kept across reloads (persistAuthorization).
 */
export function swaggerPageHandler(): RequestHandler {
  const page = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>log-aggregator API</title>
<link rel="icon" type="image/png" href="/docs/favicon-32x32.png">
<link rel="stylesheet" href="/docs/swagger-ui.css">
<style>body { margin: 0; } .topbar-links { font: 14px sans-serif; padding: 8px 20px; } </style>
</head>
<body>
<nav class="topbar-links"><a href="/">← Explorer</a></nav>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({
  url: '/openapi.json',
  dom_id: '#swagger-ui',
  deepLinking: true,
  tryItOutEnabled: true,
  persistAuthorization: true,
  displayRequestDuration: true,
});
</script>
</body>
</html>
`;
  return (_req, res) => {
    res.status(200).type('text/html; charset=utf-8').send(page);
  };
}

/** GET /openapi.json: the document, serialised once. */
export function openApiHandler(document: Record<string, unknown>): RequestHandler {
  const body = JSON.stringify(document);
  return (_req, res) => {
    res.status(200).type('application/json').send(body);
  };
}
