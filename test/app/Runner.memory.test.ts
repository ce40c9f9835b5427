import * as MemoryEventStore from "../../src/infra/MemoryEventStore.js"
import { runnerSuite } from "./runnerSuite.js"

runnerSuite("the in-memory store", () => MemoryEventStore.layer())
