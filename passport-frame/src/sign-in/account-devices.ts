import { fetchSealed } from './account-sealed.ts'

/** One row of "Your devices" as `POST /account/devices/sealed` answers it (DeviceRow). */
interface SealedDevice {
  id: string
  device: string
  sites: string[]
  signedInAt: number
  lastActivityAt: number | null
  method: string
  current: boolean
}

const when = (ms: number) => new Date(ms).toISOString().replace('T', ' ').slice(0, 16)

/**
 * "Your devices" on the account page, fetched sealed (docs/sign-in.md, "Sealed payloads"): a
 * one-time content key wrapped to the passport's `enc` key (purpose `devices`), the list
 * answered under it, so nothing between this page and the passport's code reads it. Rendered
 * with the same markup as the server's no-JavaScript list (`/account?devices=plain`), by DOM
 * calls only (text, never HTML).
 */
export async function showSealedDevices(list: HTMLElement): Promise<void> {
  const status = document.getElementById('devices-status')
  try {
    const { devices } = await fetchSealed<{ devices: SealedDevice[] }>('devices')
    list.replaceChildren(...devices.map((d) => row(d, list.dataset.csrf ?? '')))
  } catch {
    if (status) {
      status.textContent = 'Your devices could not be loaded. '
      const link = document.createElement('a')
      link.href = '/account?devices=plain'
      link.textContent = 'Show them as a plain page'
      status.append(link)
    }
  }
}

function row(d: SealedDevice, csrf: string): HTMLLIElement {
  const li = document.createElement('li')
  li.className = 'device'
  li.dataset.session = d.id
  const name = document.createElement('strong')
  name.textContent = d.device || 'Unknown browser'
  li.append(name)
  if (d.current) {
    const em = document.createElement('em')
    em.textContent = '(this device)'
    li.append(' ', em)
  }
  const detail = document.createElement('span')
  detail.className = 'site'
  detail.textContent = `Sites: ${d.sites.join(', ') || 'none yet'} · signed in ${when(d.signedInAt)} UTC with ${d.method} · last active ${d.lastActivityAt ? `${when(d.lastActivityAt)} UTC` : 'unknown'}`
  li.append(document.createElement('br'), detail)
  if (!d.current) {
    const form = document.createElement('form')
    form.method = 'post'
    form.action = '/account/sessions/end'
    for (const [name, value] of [
      ['csrf', csrf],
      ['session', d.id],
    ]) {
      const input = document.createElement('input')
      input.type = 'hidden'
      input.name = name as string
      input.value = value as string
      form.append(input)
    }
    const button = document.createElement('button')
    button.type = 'submit'
    button.textContent = 'Sign out this device'
    form.append(button)
    li.append(form)
  }
  return li
}
