import { describe, expect, it } from 'vitest'
import { createInProcessBus, type LiveCommand } from '../events/bus.ts'
import { requestRefresh } from './refresh-request.ts'

describe('requestRefresh', () => {
  it('publishes one refresh_now command for the device and site, with a fresh request id each time', async () => {
    const events = createInProcessBus(() => {})
    const heard: LiveCommand[] = []
    events.subscribeCommands((command) => heard.push(command))

    const first = await requestRefresh({ events }, { sessionId: 's1', siteId: 'news' })
    const second = await requestRefresh({ events }, { sessionId: 's1', siteId: 'news' })

    expect(heard).toEqual([
      { type: 'refresh_now', sessionId: 's1', siteId: 'news', requestId: first.requestId },
      { type: 'refresh_now', sessionId: 's1', siteId: 'news', requestId: second.requestId },
    ])
    expect(first.requestId).not.toBe(second.requestId)
  })
})
