// Build and step events pushed by the master over its www WebSocket (`/ws`, Buildbot's legacy
// `startConsuming` protocol), so the benchmark learns that a build finished without polling REST: every
// REST request costs the master CPU, and that would be charged to the worker being measured.
import WebSocket from 'ws';

interface WsFrame {
  /** routing key, e.g. "builds/12/finished" */
  k?: string;
  m?: Record<string, unknown>;
  _id?: number;
  code?: number;
  error?: string;
}

export interface StepTiming {
  number: number;
  /** performance.now() when the event arrived. */
  startedMs?: number;
  finishedMs?: number;
  results?: number | null;
}

export interface BuildTiming {
  buildid: number;
  buildrequestid: number;
  newMs: number;
  finishedMs?: number;
  results?: number | null;
  steps: Map<number, StepTiming>;
}

type Waiter = { brid: number; resolve: (b: BuildTiming) => void; reject: (err: Error) => void };

export class MasterEvents {
  private readonly builds = new Map<number, BuildTiming>();
  private readonly byBrid = new Map<number, number>();
  /** step events that arrived before their build's 'new' event */
  private readonly orphanSteps = new Map<number, { stepid: number; key: string; m: Record<string, unknown>; at: number }[]>();
  private readonly waiters = new Set<Waiter>();
  private readonly pendingAcks = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private closed = false;

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data) => this.onMessage(String(data)));
    ws.on('close', () => {
      this.closed = true;
      const closed = new Error('the master WebSocket closed');
      for (const ack of this.pendingAcks.values()) ack.reject(closed);
      for (const w of this.waiters) w.reject(closed);
      this.waiters.clear();
    });
    ws.on('error', () => undefined);
  }

  /** Connects to `ws://127.0.0.1:<wwwPort>/ws` and subscribes to build and step events. */
  static async connect(wwwPort: number): Promise<MasterEvents> {
    const ws = new WebSocket(`ws://127.0.0.1:${wwwPort}/ws`);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', (err) => reject(new Error(`master WebSocket on port ${wwwPort}: ${err.message}`)));
    });
    const events = new MasterEvents(ws);
    await events.consume('builds/*/*');
    await events.consume('steps/*/*');
    return events;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private consume(path: string): Promise<void> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pendingAcks.set(id, { resolve, reject });
      this.ws.send(JSON.stringify({ cmd: 'startConsuming', path, _id: id }));
    });
  }

  private onMessage(text: string): void {
    const at = performance.now();
    let frame: WsFrame;
    try {
      frame = JSON.parse(text) as WsFrame;
    } catch {
      return;
    }
    if (frame._id !== undefined) {
      const ack = this.pendingAcks.get(frame._id);
      this.pendingAcks.delete(frame._id);
      if (frame.code === 200) ack?.resolve();
      else ack?.reject(new Error(`master WebSocket: ${frame.error ?? `code ${frame.code}`}`));
      return;
    }
    if (!frame.k || !frame.m) return;
    const [kind, idText, event] = frame.k.split('/');
    const m = frame.m;
    if (kind === 'builds') {
      const buildid = Number(idText);
      let b = this.builds.get(buildid);
      if (!b) {
        b = { buildid, buildrequestid: Number(m['buildrequestid']), newMs: at, steps: new Map() };
        this.builds.set(buildid, b);
        this.byBrid.set(b.buildrequestid, buildid);
        for (const s of this.orphanSteps.get(buildid) ?? []) this.onStep(b, s.key, s.m, s.at);
        this.orphanSteps.delete(buildid);
      }
      if (event === 'finished') {
        b.finishedMs = at;
        b.results = (m['results'] as number | null | undefined) ?? null;
        for (const w of this.waiters) {
          if (w.brid === b.buildrequestid) {
            this.waiters.delete(w);
            w.resolve(b);
          }
        }
      }
    } else if (kind === 'steps') {
      const buildid = Number(m['buildid']);
      const b = this.builds.get(buildid);
      if (b) this.onStep(b, event ?? '', m, at);
      else {
        const list = this.orphanSteps.get(buildid) ?? [];
        list.push({ stepid: Number(idText), key: event ?? '', m, at });
        this.orphanSteps.set(buildid, list);
      }
    }
  }

  private onStep(b: BuildTiming, event: string, m: Record<string, unknown>, at: number): void {
    const number = Number(m['number']);
    const s = b.steps.get(number) ?? { number };
    b.steps.set(number, s);
    if (event === 'started') s.startedMs = at;
    if (event === 'finished') {
      s.finishedMs = at;
      s.results = (m['results'] as number | null | undefined) ?? null;
    }
  }

  /** The buildid of request `brid`, once its 'new' event arrived. */
  buildOf(brid: number): number | undefined {
    return this.byBrid.get(brid);
  }

  /** Resolves when the (first) build of request `brid` has finished. */
  waitForBuild(brid: number, timeoutMs: number): Promise<BuildTiming> {
    const buildid = this.byBrid.get(brid);
    const done = buildid === undefined ? undefined : this.builds.get(buildid);
    if (done?.finishedMs !== undefined) return Promise.resolve(done);
    if (this.closed) return Promise.reject(new Error('the master WebSocket is closed'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`build request ${brid} did not finish within ${Math.round(timeoutMs / 1000)} s`));
      }, timeoutMs);
      const waiter: Waiter = {
        brid,
        resolve: (b) => {
          clearTimeout(timer);
          resolve(b);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      this.waiters.add(waiter);
    });
  }

  close(): void {
    this.ws.close();
  }
}
