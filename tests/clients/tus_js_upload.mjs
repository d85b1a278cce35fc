#!/usr/bin/env node
// Uploads files with the stock tus-js-client (Node build), as tusgallery's admin page would:
// one tus upload per file, bearer token, bounded PATCH size, retries with backoff, a few files at
// a time. Prints one JSON document on stdout so the Python tests can check what the server stored.
//
//   node tus_js_upload.mjs --endpoint http://127.0.0.1:PORT/files/ --token T [options] FILE...
//
// Options:
//   --chunk-size BYTES        largest PATCH body (default 1 MiB)
//   --parallel N              files uploaded at the same time (default 4)
//   --retry-delays MS,MS,...  tus-js-client retryDelays; the attempt count resets whenever the
//                             server accepted more bytes (default 0,100,250,500,1000,2000,4000)
//   --filetype TYPE           metadata filetype for every file (default: none sent)
//   --abort-after-bytes N     stop each upload once the server accepted >= N bytes (a "reload")
//   --resume RESULT.json      resume the files listed in an earlier run's output from their URLs
//
// Output: {"ok": bool, "elapsed_ms": n, "uploads": [{"file", "url", "size", "offset", "ok",
//          "aborted", "retries", "retry_statuses", "error", "elapsed_ms"}]}
// "retry_statuses" holds the HTTP status behind each retry (0: network error, e.g. a reset).
// Exit status: 0 when every upload finished (or was aborted as asked), 1 otherwise, 2 bad usage.

import { createReadStream, readFileSync, statSync } from 'node:fs'
import { basename } from 'node:path'
import { parseArgs } from 'node:util'
import { Upload } from 'tus-js-client'

const USAGE = 'usage: tus_js_upload.mjs --endpoint URL --token TOKEN [options] FILE...'

function parseOptions(argv) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      endpoint: { type: 'string' },
      token: { type: 'string' },
      'chunk-size': { type: 'string', default: String(1024 * 1024) },
      parallel: { type: 'string', default: '4' },
      'retry-delays': { type: 'string', default: '0,100,250,500,1000,2000,4000' },
      filetype: { type: 'string' },
      'abort-after-bytes': { type: 'string' },
      resume: { type: 'string' },
    },
  })
  if (!values.endpoint || !values.token || positionals.length === 0) {
    throw new Error(USAGE)
  }
  const resumeUrls = new Map()
  if (values.resume) {
    for (const upload of JSON.parse(readFileSync(values.resume, 'utf8')).uploads) {
      if (upload.url) resumeUrls.set(upload.file, upload.url)
    }
  }
  return {
    endpoint: values.endpoint,
    token: values.token,
    chunkSize: positiveInt(values['chunk-size'], '--chunk-size'),
    parallel: positiveInt(values.parallel, '--parallel'),
    retryDelays: values['retry-delays'].split(',').map((d) => positiveInt(d, '--retry-delays', 0)),
    filetype: values.filetype,
    abortAfterBytes:
      values['abort-after-bytes'] === undefined
        ? null
        : positiveInt(values['abort-after-bytes'], '--abort-after-bytes'),
    resumeUrls,
    files: positionals,
  }
}

function positiveInt(text, name, minimum = 1) {
  const value = Number(text)
  if (!Number.isInteger(value) || value < minimum) {
    throw new Error(`${name} must be an integer >= ${minimum}, got ${JSON.stringify(text)}`)
  }
  return value
}

// tus-js-client's own rule (retry network errors, 5xx, 409 and 423; give up on other 4xx),
// wrapped so the run can report what every retry was caused by.
function retryRule(record) {
  return (err) => {
    const status = err.originalResponse ? err.originalResponse.getStatus() : 0
    const retry = status < 400 || status >= 500 || status === 409 || status === 423
    if (retry) record.retry_statuses.push(status)
    return retry
  }
}

function uploadOne(file, options) {
  const record = {
    file,
    url: options.resumeUrls.get(file) ?? null,
    size: statSync(file).size,
    offset: 0,
    ok: false,
    aborted: false,
    retries: 0,
    retry_statuses: [],
    error: null,
    elapsed_ms: 0,
  }
  const started = Date.now()
  const metadata = { filename: basename(file) }
  if (options.filetype) metadata.filetype = options.filetype

  return new Promise((resolve) => {
    let done = false
    const finish = (fields) => {
      if (done) return // an abort racing the last chunk's success
      done = true
      Object.assign(record, fields, {
        retries: record.retry_statuses.length,
        elapsed_ms: Date.now() - started,
      })
      resolve(record)
    }
    const upload = new Upload(createReadStream(file), {
      endpoint: options.endpoint,
      uploadUrl: record.url,
      headers: { Authorization: `Bearer ${options.token}` },
      metadata,
      chunkSize: options.chunkSize,
      retryDelays: options.retryDelays,
      onShouldRetry: retryRule(record),
      onChunkComplete: (_chunk, accepted) => {
        record.offset = accepted
        if (options.abortAfterBytes !== null && accepted >= options.abortAfterBytes) {
          upload.abort().then(() => finish({ url: upload.url, aborted: true }))
        }
      },
      onSuccess: () => finish({ url: upload.url, offset: record.size, ok: true }),
      onError: (err) => finish({ url: upload.url, error: String(err) }),
    })
    upload.start()
  })
}

async function uploadAll(options) {
  const results = new Array(options.files.length)
  let next = 0
  async function worker() {
    while (next < options.files.length) {
      const index = next++
      results[index] = await uploadOne(options.files[index], options)
    }
  }
  const workers = Array.from({ length: Math.min(options.parallel, options.files.length) }, worker)
  await Promise.all(workers)
  return results
}

async function main() {
  let options
  try {
    options = parseOptions(process.argv.slice(2))
  } catch (err) {
    process.stderr.write(`${err.message}\n`)
    process.exit(2)
  }
  const started = Date.now()
  const uploads = await uploadAll(options)
  const ok = uploads.every((u) => u.ok || u.aborted)
  process.stdout.write(`${JSON.stringify({ ok, elapsed_ms: Date.now() - started, uploads })}\n`)
  process.exit(ok ? 0 : 1)
}

main()
