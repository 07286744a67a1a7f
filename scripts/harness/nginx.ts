// nginx from Debian for the fetch tests and benchmark: a real static server with Range, If-Range and strong ETags.
// start() writes a config into a temp directory (pid, error and access logs, temp paths: nothing outside it),
// starts nginx in the foreground on a free loopback port and waits until it accepts connections; accessLog()
// reads back one JSON object per request (method, uri, status, body bytes sent, Range, If-Range), so a test can
// count what reached the server. Installed by scripts/ensure-nginx (run by scripts/test) when missing.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './ports.js';
import { ManagedProcess, pollUntil, tailFile } from './process.js';

/** How long nginx may take to accept connections after it was started. */
const START_TIMEOUT_MS = 15_000;
/** Fresh ports tried when another process took the one we picked (see ports.ts). */
const PORT_TRIES = 3;

export interface AccessEntry {
  method: string;
  uri: string;
  status: number;
  /** Body bytes nginx sent (what it wrote, as $body_bytes_sent counts it). */
  bytes: number;
  range: string;
  ifRange: string;
}

export interface NginxOptions {
  /** The directory served at `/`. */
  root: string;
  /** Where config and logs go (default: a new temp directory, removed by stop()). */
  dir?: string;
}

/** The nginx binary (Debian puts it in /usr/sbin, often not on a user's PATH), or undefined. */
export function findNginx(): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter), '/usr/sbin', '/usr/local/sbin'];
  for (const d of dirs) {
    const candidate = path.join(d, 'nginx');
    if (d !== '' && existsSync(candidate)) return candidate;
  }
  return undefined;
}

/**
 * Every temp path the binary has, pointed into `dir`: a non-root nginx cannot create the compiled-in ones under
 * /var/lib/nginx, and naming a module the build left out would be a config error (nginx -V lists what is out).
 */
function tempPaths(binary: string, dir: string): string {
  const built = spawnSync(binary, ['-V'], { encoding: 'utf8' }).stderr; // nginx -V writes to stderr
  return ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
    .filter((m) => m === 'client_body' || !built.includes(`--without-http_${m}_module`))
    .map((m) => `  ${m}_temp_path ${path.join(dir, 'temp', m)};`)
    .join('\n');
}

function config(binary: string, dir: string, root: string, port: number): string {
  const asRoot = process.getuid?.() === 0 ? 'user root;' : ''; // else workers run as nobody, who cannot read a 0700 temp dir
  return `daemon off;
master_process on;
worker_processes 1;
${asRoot}
pid ${path.join(dir, 'nginx.pid')};
error_log ${path.join(dir, 'error.log')} warn;
events { worker_connections 256; }
http {
  log_format bbagent escape=json '{"method":"$request_method","uri":"$request_uri","status":$status,"bytes":$body_bytes_sent,"range":"$http_range","ifRange":"$http_if_range"}';
  access_log ${path.join(dir, 'access.log')} bbagent;
${tempPaths(binary, dir)}
  default_type application/octet-stream;
  sendfile on;
  server {
    listen 127.0.0.1:${port};
    root ${root};
  }
}
`;
}

export class Nginx {
  private constructor(
    private readonly proc: ManagedProcess,
    readonly port: number,
    readonly dir: string,
    private readonly ownDir: boolean,
  ) {}

  static async start(opts: NginxOptions): Promise<Nginx> {
    const binary = findNginx();
    if (binary === undefined) throw new Error('nginx not found: run scripts/ensure-nginx (apt-get install nginx-light)');
    const ownDir = opts.dir === undefined;
    const dir = opts.dir ?? mkdtempSync(path.join(os.tmpdir(), 'bbagent-nginx-'));
    if (!existsSync(path.join(dir, 'temp'))) mkdirSync(path.join(dir, 'temp'));
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const conf = path.join(dir, 'nginx.conf');
      writeFileSync(conf, config(binary, dir, path.resolve(opts.root), port));
      const proc = await ManagedProcess.spawn({
        command: binary,
        args: ['-p', dir, '-c', conf, '-e', path.join(dir, 'error.log')],
        cwd: dir,
        env: process.env,
        label: `nginx ${dir}`,
      });
      try {
        await pollUntil(() => accepts(port), {
          timeoutMs: START_TIMEOUT_MS,
          what: `nginx on 127.0.0.1:${port}`,
          failFast: () => (proc.running ? undefined : `nginx exited (${String(proc.exitCode)})`),
          details: () => `${proc.capturedOutput}\n${tailFile(path.join(dir, 'error.log'))}`,
        });
        return new Nginx(proc, port, dir, ownDir);
      } catch (err) {
        await proc.stop(2000);
        const inUse = /Address already in use/.test(tailFile(path.join(dir, 'error.log')) + proc.capturedOutput);
        if (!inUse || attempt >= PORT_TRIES) throw err;
      }
    }
  }

  url(p: string): string {
    return `http://127.0.0.1:${this.port}${p.startsWith('/') ? p : `/${p}`}`;
  }

  /** Every request nginx logged so far, in order (nginx writes the line when the response is over). */
  accessLog(): AccessEntry[] {
    const file = path.join(this.dir, 'access.log');
    if (!existsSync(file)) return [];
    return readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as AccessEntry);
  }

  async stop(): Promise<void> {
    await this.proc.stop(5000);
    if (this.ownDir) rmSync(this.dir, { recursive: true, force: true });
  }
}

function accepts(port: number): Promise<true | undefined> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(undefined));
  });
}
