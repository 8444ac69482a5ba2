// Runs dynalite's command line (the path of its cli.js comes first, then dynalite's own
// flags) and keeps the server up when a client drops a connection in the middle of a
// request. dynalite's httpHandler rethrows the request stream's error
// (req.on('error', function (err) { throw err })), so one client whose context ends while
// it sends a body would otherwise stop the emulator for every test that follows. Such an
// error only ends that request; anything else still ends the process, as before.
'use strict'

const dropped = new Set(['ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ERR_STREAM_PREMATURE_CLOSE'])

process.on('uncaughtException', (err) => {
  if (err && (dropped.has(err.code) || err.message === 'aborted')) {
    console.error(`dynalite: a client dropped its connection mid-request (${err.code || err.message}); still serving`)
    return
  }
  console.error(err)
  process.exit(1)
})

const cli = process.argv.splice(2, 1)[0]
if (!cli) {
  console.error('usage: node dynalite.js PATH/TO/dynalite/cli.js [dynalite flags]')
  process.exit(2)
}
require(cli)
