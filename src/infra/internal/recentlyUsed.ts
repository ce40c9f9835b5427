/**
 * A function's results for the keys used most recently: the least recently used is dropped beyond `capacity`.
 *
 * @internal
 */
export interface RecentlyUsed<K, V> {
  readonly get: (key: K) => V
  readonly clear: () => void
}

export const recentlyUsed = <K, V>(capacity: number, compute: (key: K) => V): RecentlyUsed<K, V> => {
  // A Map keeps insertion order: re-inserting on use makes its first key the least recently used.
  const values = new Map<K, V>()
  return {
    get: (key) => {
      if (values.has(key)) {
        const known = values.get(key) as V
        values.delete(key)
        values.set(key, known)
        return known
      }
      const value = compute(key)
      values.set(key, value)
      if (values.size > capacity) {
        const oldest = values.keys().next()
        if (oldest.done !== true) values.delete(oldest.value)
      }
      return value
    },
    clear: () => values.clear()
  }
}
