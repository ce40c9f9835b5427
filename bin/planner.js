#!/usr/bin/env node
// The compiled CLI lives in dist/ (built by `npm run build`, which `npm ci` runs through the `prepare` script).
import("../dist/app/main.js").catch((error) => {
  if (error && error.code === "ERR_MODULE_NOT_FOUND") {
    console.error("planner is not built: run `npm run build` (or `npm ci`) in the project folder first.")
    process.exit(4)
  }
  throw error
})
