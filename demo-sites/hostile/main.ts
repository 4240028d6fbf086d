// An attacker page, registered nowhere. It frames News's passport frame directly and throws
// every message it can at it, with '*' as target origin. Whatever comes back is recorded in
// window.received for the tests (which expect nothing).
const meta = (name: string) => document.querySelector<HTMLMetaElement>(`meta[name="${name}"]`)?.content ?? ''
const passportOrigin = meta('passport-origin')
const authkey = meta('passport-authkey')
const received: unknown[] = []
Object.assign(window, { received })
window.addEventListener('message', (event) => {
  received.push({ origin: event.origin, data: event.data })
  ;(document.getElementById('log') as HTMLElement).textContent = JSON.stringify(received)
})

const frame = document.createElement('iframe')
frame.src = `${passportOrigin}/frame/news`
document.body.appendChild(frame)
const attack = () => {
  for (const type of ['hello', 'token_request', 'check', 'logout']) {
    frame.contentWindow?.postMessage(
      { v: 1, type, id: `evil-${type}`, ...(type === 'hello' ? { authkey } : {}) },
      '*',
    )
  }
}
frame.addEventListener('load', () => {
  attack()
  setTimeout(attack, 300)
  Object.assign(window, { attackDone: true })
})
