// The status page as one HTML document: no framework, no build step, nothing fetched but Ferry's
// own /ui/api/ JSON. Text goes into the DOM with textContent only, so no name or tag from storage
// can become markup.
export const statusPage = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Ferry status</title>
<style>
  :root { color-scheme: light dark; --muted: #6b7280; --ok: #15803d; --warn: #b45309; --bad: #b91c1c; --line: #d1d5db55 }
  body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 1.5rem }
  h1 { font-size: 1.4rem; margin: 0 0 .2rem } h2 { font-size: 1.05rem; margin: 1.6rem 0 .5rem }
  .muted { color: var(--muted) }
  .cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(190px, 1fr)); gap: .8rem; margin-top: 1rem }
  .card { border: 1px solid var(--line); border-radius: 8px; padding: .7rem .9rem }
  .card .value { font-size: 1.35rem; font-weight: 600 }
  table { border-collapse: collapse; width: 100% } th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid var(--line) }
  th { font-weight: 600; font-size: .85rem; color: var(--muted) }
  .closed { color: var(--ok) } .half-open { color: var(--warn) } .open { color: var(--bad) }
  .cols { display: grid; grid-template-columns: minmax(200px, 1fr) 2fr; gap: 1rem }
  #repositories button { all: unset; cursor: pointer; display: block; padding: .25rem .4rem; border-radius: 4px; word-break: break-all }
  #repositories button:hover, #repositories button.selected { background: #3b82f622 }
  code { font: 13px ui-monospace, monospace; word-break: break-all }
  .error { color: var(--bad) }
</style>
</head>
<body>
<h1>Ferry</h1>
<div class="muted" id="about">loading…</div>
<div class="cards">
  <div class="card"><div class="muted">Cache hit ratio</div><div class="value" id="hit-ratio">–</div><div class="muted" id="lookups"></div></div>
  <div class="card"><div class="muted">Bytes saved</div><div class="value" id="bytes-saved">–</div><div class="muted" id="bytes-detail"></div></div>
  <div class="card"><div class="muted">Storage</div><div class="value" id="storage">–</div><div class="muted" id="storage-detail"></div></div>
  <div class="card"><div class="muted">Certificate</div><div class="value" id="certificate">–</div><div class="muted" id="certificate-detail"></div></div>
</div>
<h2>Upstreams</h2>
<table><thead><tr><th>Name</th><th>URL</th><th>Circuit</th><th>OK</th><th>Not found</th><th>Errors</th><th>Received</th></tr></thead>
<tbody id="upstreams"></tbody></table>
<h2>Repositories</h2>
<div class="cols">
  <div id="repositories"><span class="muted">loading…</span></div>
  <div id="tags"><span class="muted">Pick a repository to see its tags and the pull command.</span></div>
</div>
<p class="error" id="error"></p>
<script>
'use strict'
const api = (path) => fetch(location.origin + '/ui/api/' + path, { headers: { accept: 'application/json' } }).then((res) => {
  if (!res.ok) throw new Error(path.split('?')[0] + ': HTTP ' + res.status)
  return res.json()
})
const el = (tag, text, className) => {
  const node = document.createElement(tag)
  if (text !== undefined) node.textContent = String(text)
  if (className) node.className = className
  return node
}
const set = (id, text) => { document.getElementById(id).textContent = text }
const bytes = (n) => {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++ }
  return (i === 0 ? n : n.toFixed(1)) + ' ' + units[i]
}
const duration = (s) => s < 120 ? s + ' s' : s < 7200 ? Math.floor(s / 60) + ' min' : s < 172800 ? Math.floor(s / 3600) + ' h' : Math.floor(s / 86400) + ' days'

function showStatus(status) {
  set('about', 'version ' + status.version + ' · up ' + duration(status.uptimeSeconds))
  const cache = status.cache
  set('hit-ratio', cache.hitRatio === null ? 'no pulls yet' : (cache.hitRatio * 100).toFixed(1) + ' %')
  set('lookups', cache.hits + ' hits · ' + cache.misses + ' misses · ' + cache.staleServes + ' stale')
  set('bytes-saved', bytes(cache.bytesSaved))
  set('bytes-detail', bytes(cache.blobBytesServed) + ' served · ' + bytes(cache.upstreamBytesFetched) + ' fetched upstream')
  const storage = status.storage
  set('storage', storage.freeBytes === undefined ? storage.driver : bytes(storage.freeBytes) + ' free')
  set('storage-detail', storage.totalBytes === undefined ? '' : storage.driver + ' · ' + bytes(storage.totalBytes) + ' volume')
  set('certificate', status.tls ? status.tls.daysLeft + ' days left' : 'plain HTTP')
  set('certificate-detail', status.tls ? 'expires ' + status.tls.expiresAt.slice(0, 10) : 'no serving certificate configured')
  const rows = document.getElementById('upstreams')
  rows.replaceChildren(...status.upstreams.map((u) => {
    const row = el('tr')
    row.append(el('td', u.name), el('td', u.url), el('td', u.circuit, u.circuit), el('td', u.requests.ok),
      el('td', u.requests.notFound), el('td', u.requests.error), el('td', bytes(u.receivedBytes)))
    return row
  }))
  if (status.upstreams.length === 0) {
    const cell = el('td', 'No upstreams configured: Ferry serves only what is pushed to it.', 'muted')
    cell.colSpan = 7
    rows.replaceChildren(el('tr'))
    rows.firstChild.append(cell)
  }
}

async function showTags(name, button) {
  for (const other of document.querySelectorAll('#repositories button')) other.classList.toggle('selected', other === button)
  const box = document.getElementById('tags')
  box.replaceChildren(el('span', 'loading…', 'muted'))
  const { tags, truncated } = await api('tags?repository=' + encodeURIComponent(name))
  const table = el('table')
  const head = el('tr')
  head.append(el('th', 'Tag'), el('th', 'Pull command'))
  table.append(head)
  for (const tag of tags) {
    const row = el('tr')
    const command = el('code', 'crictl pull ' + location.host + '/' + name + ':' + tag)
    const copy = el('button', 'copy')
    copy.addEventListener('click', () => navigator.clipboard?.writeText(command.textContent))
    const cell = el('td')
    cell.append(command, ' ', copy)
    row.append(el('td', tag), cell)
    table.append(row)
  }
  box.replaceChildren(el('div', name + ' · ' + tags.length + (truncated ? '+' : '') + ' tags', 'muted'), table)
}

async function showRepositories() {
  const { repositories, next } = await api('repositories?n=500')
  const box = document.getElementById('repositories')
  if (repositories.length === 0) { box.replaceChildren(el('span', 'No pushed repositories you may pull.', 'muted')); return }
  box.replaceChildren(...repositories.map((name) => {
    const button = el('button', name)
    button.dataset.repository = name
    button.addEventListener('click', () => { location.hash = 'repository=' + encodeURIComponent(name) })
    return button
  }))
  if (next) box.append(el('div', 'first ' + repositories.length + ' shown', 'muted'))
}

// #repository=<name> selects a repository: a link to it can be shared.
function showSelected() {
  const match = /^#repository=(.+)$/.exec(location.hash)
  if (!match) return
  const name = decodeURIComponent(match[1])
  const button = [...document.querySelectorAll('#repositories button')].find((b) => b.dataset.repository === name)
  showTags(name, button).catch(fail)
}

function fail(err) { set('error', String(err.message || err)) }
const refresh = () => api('status').then((status) => { showStatus(status); set('error', '') }).catch(fail)
refresh()
showRepositories().then(showSelected).catch(fail)
addEventListener('hashchange', showSelected)
setInterval(refresh, 10000)
</script>
</body>
</html>
`
