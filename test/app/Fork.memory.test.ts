import * as MemoryEventStore from "../../src/infra/MemoryEventStore.js"
import { forkSuite } from "./forkSuite.js"

forkSuite("the in-memory store", () => MemoryEventStore.layer())
