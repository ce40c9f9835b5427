/**
 * Who a worker is, and whether a worker of this host is gone: a worker id names its host and process, so a later
 * process on the same host can tell, without waiting for a lease to run out, that the process holding a job died.
 */
import { randomUUID } from "node:crypto"
import * as os from "node:os"

/** A worker id that names this host and process, so a later process can tell when it is gone. */
export const makeWorkerId = (): string => `${os.hostname()}/${process.pid}/${randomUUID().slice(0, 8)}`

/** The process `workerId` names when it is another process of this host (see `makeWorkerId`), else undefined. */
const otherLocalProcess = (workerId: string): number | undefined => {
  const [host, pidText] = workerId.split("/")
  const pid = Number(pidText)
  return host !== os.hostname() || !Number.isInteger(pid) || pid <= 0 || pid === process.pid ? undefined : pid
}

/** True when `workerId` names another process of this host, alive or not: one whose death this process could see. */
export const isOtherLocalWorker = (workerId: string): boolean => otherLocalProcess(workerId) !== undefined

/** True when `workerId` names a process of this host that no longer exists. */
export const isDeadLocalWorker = (workerId: string): boolean => {
  const pid = otherLocalProcess(workerId)
  if (pid === undefined) return false
  try {
    process.kill(pid, 0)
    return false
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === "ESRCH"
  }
}
