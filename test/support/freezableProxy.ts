/**
 * A TCP proxy in front of a server that can stop passing bytes either way while every connection stays open (a
 * network partition as a client sees it, or a database server that hangs), or drop every connection and refuse new
 * ones for a while (a server restarting). Doing either to the real server would hit every other test that shares it.
 */
import * as net from "node:net"

export interface FreezableProxy {
  /** The port it listens on, on 127.0.0.1. */
  readonly port: number
  /** `url` with its host and port replaced by the proxy's. */
  readonly through: (url: string) => string
  /** From now on nothing passes, on open connections and new ones alike; nothing is closed either. */
  readonly freeze: () => void
  /** Closes every connection, and closes new ones at once until `up`. */
  readonly down: () => void
  /** Connections pass again (after `down`). */
  readonly up: () => void
  readonly close: () => Promise<void>
}

export const startFreezableProxy = (target: { readonly host: string; readonly port: number }) =>
  new Promise<FreezableProxy>((resolve, reject) => {
    const sockets = new Set<net.Socket>()
    let frozen = false
    let isDown = false
    const track = (socket: net.Socket) => {
      sockets.add(socket)
      socket.on("close", () => sockets.delete(socket))
      // A peer that goes away while frozen is no failure of the test.
      socket.on("error", () => socket.destroy())
      if (frozen) socket.pause()
    }
    const server = net.createServer((client) => {
      if (isDown) {
        client.destroy()
        return
      }
      track(client)
      if (frozen) return
      const upstream = net.connect(target.port, target.host)
      track(upstream)
      client.pipe(upstream)
      upstream.pipe(client)
      const end = () => {
        client.destroy()
        upstream.destroy()
      }
      client.on("close", end)
      upstream.on("close", end)
    })
    server.on("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port
      resolve({
        port,
        through: (url) => {
          const proxied = new URL(url)
          proxied.hostname = "127.0.0.1"
          proxied.port = String(port)
          return proxied.toString()
        },
        freeze: () => {
          frozen = true
          // Paused sockets read nothing more: what was sent stays unread in the kernel, so neither side hears back.
          for (const socket of sockets) {
            socket.unpipe()
            socket.pause()
          }
        },
        down: () => {
          isDown = true
          for (const socket of sockets) socket.destroy()
        },
        up: () => {
          isDown = false
        },
        close: () =>
          new Promise<void>((done) => {
            for (const socket of sockets) socket.destroy()
            server.close(() => done())
          })
      })
    })
  })
