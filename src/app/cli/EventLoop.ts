/** The CLI's runs and workers keep the event loop turning: see `../EventLoop.ts` (the library's own runs do too). */
export { makeScheduler, withEventLoopTurns } from "../EventLoop.js"
