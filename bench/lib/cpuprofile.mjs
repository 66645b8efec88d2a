// Preload for `npm run bench -- --profile`: samples the main thread's CPU from start to exit and
// writes <BENCH_PROFILE_DIR>/<program>-<pid>.cpuprofile (open in Chrome DevTools or speedscope).
// Node refuses --cpu-prof inside NODE_OPTIONS, hence the inspector session.
import { writeFileSync } from "node:fs"
import inspector from "node:inspector"
import { basename, join } from "node:path"

const dir = process.env.BENCH_PROFILE_DIR
if (dir !== undefined && dir !== "") {
  const session = new inspector.Session()
  session.connect()
  session.post("Profiler.enable")
  session.post("Profiler.setSamplingInterval", { interval: 500 })
  session.post("Profiler.start")
  // A same-thread inspector session answers synchronously, so this works inside 'exit'.
  process.on("exit", () => {
    session.post("Profiler.stop", (error, result) => {
      if (error === null) {
        const name = basename(process.argv[1] ?? "node").replace(/\.m?[jt]s$/, "")
        writeFileSync(join(dir, `${name}-${process.pid}.cpuprofile`), JSON.stringify(result.profile))
      }
    })
  })
}
