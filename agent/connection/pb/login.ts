// twisted.cred login over PB, as PBClientFactory.login does it: root.login(username) gives a challenge and a
// challenger; challenger.respond(MD5(MD5(password) + challenge), mind) gives the avatar. The master attaches
// the worker (calls on the mind) before it answers respond, so the broker keeps serving calls meanwhile.

import { createHash } from 'node:crypto';
import { AgentError } from '../../errors.js';
import { ConnectionLostError } from '../errors.js';
import type { Broker } from './broker.js';
import { PbRemoteError } from './errors.js';
import { RemoteReference, type Referenceable } from './references.js';
import { PyTuple } from '../../py/values.js';

/** pb.respond: the password hashed twice, the second time with the challenge. */
export function challengeResponse(challenge: Buffer, password: Buffer): Buffer {
  const hashed = createHash('md5').update(password).digest();
  return createHash('md5').update(hashed).update(challenge).digest();
}

const UNAUTHORIZED = 'twisted.cred.error.UnauthorizedLogin';

export interface LoginOptions {
  name: string;
  password: string;
  /** Describes the master in error messages, e.g. "127.0.0.1:9989". */
  master: string;
}

/**
 * Logs in; resolves with the avatar (kept for the connection's lifetime). A refused password rejects with
 * E_AUTH, other refusals (e.g. "rejecting duplicate worker") with E_LOGIN.
 */
export async function pbLogin(broker: Broker, mind: Referenceable, o: LoginOptions): Promise<RemoteReference> {
  const who = `worker '${o.name}'`;
  const fail = (err: unknown, stage: string): AgentError => {
    if (err instanceof ConnectionLostError)
      return new AgentError('E_CONNECTION_LOST', `master at ${o.master} closed the connection during login of ${who} (${stage}): ${err.message}`);
    if (err instanceof PbRemoteError) {
      if (err.failure?.check(UNAUTHORIZED)) return new AgentError('E_AUTH', `master at ${o.master} refused ${who}: wrong worker name or password`);
      return new AgentError(
        'E_LOGIN',
        `master at ${o.master} refused the login of ${who} (${stage}): ${err.failure ? `${err.failure.type}: ${err.failure.value}` : err.message}`,
      );
    }
    if (err instanceof AgentError) return err;
    return new AgentError('E_LOGIN', `login of ${who} at ${o.master} failed (${stage}): ${String(err)}`);
  };

  let answer: unknown;
  try {
    // the username goes as raw bytes (UsernamePassword holds bytes), not as unicode
    answer = await broker.root().callRemote('login', Buffer.from(o.name, 'utf8'));
  } catch (err) {
    throw fail(err, 'login');
  }
  const items = answer instanceof PyTuple ? answer.items : Array.isArray(answer) ? answer : [];
  const [challenge, challenger] = items;
  if (!Buffer.isBuffer(challenge) || !(challenger instanceof RemoteReference)) {
    if (challenger instanceof RemoteReference) challenger.release();
    throw new AgentError('E_LOGIN', `master at ${o.master} answered login of ${who} with something other than (challenge, challenger)`);
  }
  const responded = challenger.callRemote('respond', challengeResponse(challenge, Buffer.from(o.password, 'utf8')), mind);
  // the challenger is done with once respond is sent (buildbot-worker's decref 1 follows respond on the wire)
  challenger.release();
  let avatar: unknown;
  try {
    avatar = await responded;
  } catch (err) {
    throw fail(err, 'respond');
  }
  if (!(avatar instanceof RemoteReference)) throw new AgentError('E_LOGIN', `master at ${o.master} answered respond of ${who} without an avatar`);
  return avatar;
}
