/**
 * Why a file could not be read, in words a user acts on, from the error Node gave: the request file, a script
 * executor's file and the price table say the same thing for the same cause.
 */

export interface FileProblem {
  /** What is wrong: "there is no such file", "permission denied", "it is a folder", or the error code. */
  readonly problem: string
  /** What to do: "check the path", "check its permissions", "give the path of a file". */
  readonly remedy: string
}

export const fileProblem = (error: unknown): FileProblem => {
  const code = typeof error === "object" && error !== null ? Reflect.get(error, "code") : undefined
  switch (code) {
    case "ENOENT":
    case "ENOTDIR":
      return { problem: "there is no such file", remedy: "check the path" }
    case "EACCES":
    case "EPERM":
      return { problem: "permission denied", remedy: "check its permissions" }
    case "EISDIR":
      return { problem: "it is a folder", remedy: "give the path of a file" }
    default:
      return { problem: typeof code === "string" ? code : String(error), remedy: "check the path" }
  }
}
