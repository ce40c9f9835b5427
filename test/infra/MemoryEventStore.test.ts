import * as MemoryEventStore from "../../src/infra/MemoryEventStore.js"
import { eventStoreContract } from "./EventStoreContract.js"

// A "database" here is the storage value: two layers over one storage are two instances of one store.
eventStoreContract("MemoryEventStore", {
  freshDatabase: MemoryEventStore.makeStorage,
  layer: (storage) => MemoryEventStore.layerWith(storage)
})
