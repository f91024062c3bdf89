/**
 * Key names. A group's keys all start with `PREFIX:{gid}:` (its hash tag: one cluster slot, so a
 * script may touch any of them atomically); the few keys that span groups are their own, and
 * the scripts cannot write them in the same step, so their readers check what they point at.
 */
export class Keys {
  /** Every group's gid (a gid is added before its group is written, removed after it is deleted). */
  readonly groups: string;
  /** The groups that have shared memory keys with a TTL (expire() visits only them). */
  readonly shmExpiring: string;
  /** The Resource Scheduler's fork order, across groups. */
  readonly scheduleSeq: string;
  /** The kernel runs that have pipe ends open (see pipeEnds). */
  readonly pipeRuns: string;

  constructor(private readonly prefix: string) {
    this.groups = `${prefix}:groups`;
    this.shmExpiring = `${prefix}:shm-expiring`;
    this.scheduleSeq = `${prefix}:schedule-seq`;
    this.pipeRuns = `${prefix}:pipe-runs`;
  }

  /** The pipe ends a kernel run has open, each `gid NL pipe NL end`: forgotten when the run is over. */
  pipeEnds(run: string): string {
    return `${this.prefix}:pipe-ends:${run}`;
  }

  group(gid: string): string {
    return `${this.prefix}:{${gid}}:`;
  }

  /** Token hash -> gid; the group's own record of the token says whose it is. */
  token(hash: string): string {
    return `${this.prefix}:token:${hash}`;
  }

  /** Compute id -> [gid, pid]; the process's own compute_id confirms it. */
  compute(id: string): string {
    return `${this.prefix}:compute:${id}`;
  }
}
