import * as MemoryTaskQueue from "../../src/infra/MemoryTaskQueue.js"
import { taskQueueContract } from "./TaskQueueContract.js"

// A "database" here is the storage value: two layers over one storage are two instances of one queue.
taskQueueContract("MemoryTaskQueue", {
  freshDatabase: MemoryTaskQueue.makeStorage,
  layer: (storage) => MemoryTaskQueue.layerWith(storage),
  wakesOtherInstances: true
})
