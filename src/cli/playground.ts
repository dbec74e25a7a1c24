/**
 * `normkit playground`: a small static file server (node:http) for the built playground page in
 * dist/playground. The page is plain files with relative URLs, so any static host serves it as well.
 */
import { createServer, type Server } from 'node:http';
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NormkitError } from '../core/errors.js';

/** The built page, two levels above this module's compiled folder `dist/src/cli`. */
export const PLAYGROUND_DIR = fileURLToPath(new URL('../../playground/', import.meta.url));

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.gz': 'application/gzip',
};

/** Options of {@link servePlayground}. */
export interface PlaygroundServerOptions {
  /** Port; 0 picks a free one (default 0). */
  port?: number;
  /** Interface to listen on (default '127.0.0.1', this machine only). */
  host?: string;
  /** Folder to serve (default the built playground shipped in the package). */
  root?: string;
}

/** Serves `root` over HTTP; resolves with the server and the page's URL once it listens. */
export async function servePlayground(options: PlaygroundServerOptions = {}): Promise<{ server: Server; url: string }> {
  const where = 'servePlayground';
  const port = options.port ?? 0;
  const host = options.host ?? '127.0.0.1';
  const root = options.root ?? PLAYGROUND_DIR;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new NormkitError(where, 'port', 'an integer in 0..65535', port);
  if (typeof host !== 'string' || host.length === 0) throw new NormkitError(where, 'host', 'a host name or address', host);
  if (!existsSync(join(root, 'index.html'))) {
    throw new NormkitError(where, 'root', 'a folder holding the built page (index.html; run npm run build)', root);
  }
  const server = createServer((req, res) => {
    void (async () => {
      try {
        const path = decodeURIComponent(new URL(req.url ?? '/', 'http://localhost').pathname);
        const relative = normalize(path).replace(/^([/\\])+/, '');
        const file = join(root, relative.endsWith(sep) || relative === '' || relative === '.' ? join(relative, 'index.html') : relative);
        // Refuse anything outside the served folder (e.g. /../../etc/passwd).
        if (file !== root && !file.startsWith(root.endsWith(sep) ? root : root + sep)) {
          res.writeHead(403).end('forbidden');
          return;
        }
        const info = await stat(file).catch(() => null);
        const target = info?.isDirectory() ? join(file, 'index.html') : file;
        const body = await readFile(target).catch(() => null);
        if (body === null) {
          res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
          return;
        }
        res.writeHead(200, {
          'content-type': MIME[extname(target)] ?? 'application/octet-stream',
          'content-length': body.length,
          'cache-control': 'no-cache',
        });
        res.end(req.method === 'HEAD' ? undefined : body);
      } catch {
        if (!res.headersSent) res.writeHead(400, { 'content-type': 'text/plain' });
        res.end('bad request');
      }
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address();
  const actualPort = typeof address === 'object' && address !== null ? address.port : port;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  return { server, url: `http://${shownHost}:${actualPort}/` };
}
