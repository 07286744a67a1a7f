// Buildbot's objects over PB (buildbot_worker/pb.py): the worker "Worker" (the login mind) and one object per
// builder, translated into calls on the protocol-neutral Worker; each command gets a CommandLink.

import { errorMessage } from '../../errors.js';
import type { Logger } from '../../log.js';
import { PyTuple } from '../../py/values.js';
import type { Worker } from '../../worker/worker.js';
import { argError, commandArgs, param, textOf } from './arguments.js';
import { Referenceable, RemoteReference } from './references.js';
import { CommandLink } from './command-link.js';
import { isPlainObject } from './jelly.js';

export interface PbWorkerOptions {
  worker: Worker;
  logger: Logger;
  /** Bytes written to the connection and not yet sent (output backpressure). */
  backlog?: () => number;
}

/** The objects one PB connection exposes: the Worker (login mind) and the builders it hands out. */
export class PbWorker {
  readonly mind: Referenceable;
  private readonly builders = new Map<string, Referenceable>();

  constructor(private readonly opts: PbWorkerOptions) {
    const { worker } = opts;
    this.mind = new Referenceable('worker', {
      print: (args, kw) => {
        worker.print(textOf(param(args, kw, 0, 'message', 'print'), 'message'));
        return null;
      },
      getWorkerInfo: () => worker.workerInfo(),
      setBuilderList: (args, kw) => this.setBuilderList(param(args, kw, 0, 'wanted', 'setBuilderList')),
      getCommands: () => worker.commandVersions(),
      getVersion: () => worker.version,
      shutdown: () => {
        // answer first, then stop (buildbot-worker stops its reactor 0.2 s later, without a goodbye)
        setImmediate(() => worker.shutdown());
        return null;
      },
    });
  }

  private setBuilderList(wanted: unknown): Record<string, Referenceable> {
    const list = wanted instanceof PyTuple ? wanted.items : Array.isArray(wanted) ? wanted : undefined;
    if (!list) throw argError('setBuilderList() wants a list of (name, builddir) pairs');
    const pairs = list.map((p: unknown): [string, string] => {
      const items = p instanceof PyTuple ? p.items : Array.isArray(p) ? p : [];
      if (items.length !== 2) throw argError('setBuilderList() wants (name, builddir) pairs');
      return [textOf(items[0], 'builder name'), textOf(items[1], 'builddir')];
    });
    const names = this.opts.worker.setBuilderList(pairs);
    const keep = new Set(names);
    // builders no longer wanted are forgotten here; the master releases its references to them
    for (const name of [...this.builders.keys()]) if (!keep.has(name)) this.builders.delete(name);
    const out: Record<string, Referenceable> = {};
    for (const name of names) {
      let b = this.builders.get(name);
      if (!b) {
        b = this.builder(name);
        this.builders.set(name, b);
      }
      out[name] = b;
    }
    return out;
  }

  /** WorkerForBuilderPb: what the master calls for one builder. */
  private builder(name: string): Referenceable {
    const { worker, logger } = this.opts;
    return new Referenceable(`builder ${name}`, {
      startBuild: () => null,
      startCommand: (args, kw) => {
        const ref = param(args, kw, 0, 'command_ref', 'startCommand');
        const stepId = textOf(param(args, kw, 1, 'stepId', 'startCommand'), 'stepId');
        const command = textOf(param(args, kw, 2, 'command', 'startCommand'), 'command');
        const cmdArgs = param(args, kw, 3, 'args', 'startCommand');
        if (!(ref instanceof RemoteReference)) throw argError('startCommand(): command_ref is not a remote reference');
        if (!isPlainObject(cmdArgs)) throw argError(`startCommand ${command}: args is not a dictionary`);
        const writerRef = cmdArgs['writer'] instanceof RemoteReference ? cmdArgs['writer'] : undefined;
        const readerRef = cmdArgs['reader'] instanceof RemoteReference ? cmdArgs['reader'] : undefined;
        const link = new CommandLink(ref, writerRef, readerRef, `command ${command} (${stepId}) on builder ${name}`, logger, this.opts.backlog);
        // throws synchronously for an unknown command or missing args: the master gets an error answer,
        // and the broker releases the references we did not keep
        const done = worker.startCommand(command, stepId, commandArgs(cmdArgs), link.channel(), { builder: name });
        ref.keep();
        writerRef?.keep();
        readerRef?.keep();
        done
          .catch((err: unknown) => logger.warn(`command ${command} (${stepId}) failed: ${errorMessage(err)}`))
          .then(() => link.finish())
          .catch((err: unknown) => logger.warn(`command ${command} (${stepId}): ${errorMessage(err)}`));
        return null;
      },
      interruptCommand: (args, kw) => {
        param(args, kw, 0, 'stepId', 'interruptCommand');
        const why = param(args, kw, 1, 'why', 'interruptCommand');
        worker.interruptBuilderCommand(name, typeof why === 'string' || Buffer.isBuffer(why) ? textOf(why, 'why') : String(why));
        return null;
      },
      print: (args, kw) => {
        logger.info(`builder ${name}: message from master: ${textOf(param(args, kw, 0, 'message', 'print'), 'message')}`);
        return null;
      },
      // legacy: masters before 0.9 handed the builder a reference; 3.7 never calls it
      setMaster: () => null,
    });
  }
}
